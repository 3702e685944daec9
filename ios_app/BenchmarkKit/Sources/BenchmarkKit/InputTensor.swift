import Foundation

public enum TensorDType: String, CaseIterable, Sendable {
    case float32
    case float16
    case int8
    case uint8

    /// Accepts the spellings the host tools use: float32 / fp32 / FLOAT32, float16 / fp16 / half ...
    public init(manifestValue: String) throws {
        switch manifestValue.lowercased() {
        case "float32", "fp32", "float", "f32":
            self = .float32
        case "float16", "fp16", "half", "f16":
            self = .float16
        case "int8", "i8":
            self = .int8
        case "uint8", "u8":
            self = .uint8
        default:
            throw BenchmarkError.invalidManifest("unsupported input dtype '\(manifestValue)'")
        }
    }
}

public enum TensorLayout: String, Sendable {
    case nchw = "NCHW"
    case nhwc = "NHWC"
    /// A Core ML ImageType input (shape N, C, H, W; pixels 0...255, scale/mean/std baked into the model).
    case image = "IMAGE"

    /// The manifest's layout, or inferred from a 4-D shape with 3 channels.
    public init(manifestValue: String?, shape: [Int]) throws {
        if let value = manifestValue {
            guard let layout = TensorLayout(rawValue: value.uppercased()) else {
                throw BenchmarkError.invalidManifest("unsupported input layout '\(value)'")
            }
            self = layout
            return
        }
        guard shape.count == 4 else {
            throw BenchmarkError.invalidManifest("cannot infer the layout of a \(shape.count)-D input \(shape)")
        }
        self = shape[3] == 3 && shape[1] != 3 ? .nhwc : .nchw
    }
}

/// The input to preallocate for a manifest: shape, dtype and layout come from the host, never from the app.
public struct InputTensorPlan: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let dtype: TensorDType
    public let layout: TensorLayout

    public init(manifest: ArtifactManifest) throws {
        name = manifest.input.name
        shape = manifest.input.shape
        dtype = try TensorDType(manifestValue: manifest.input.dtype)
        layout = try TensorLayout(manifestValue: manifest.input.layout, shape: manifest.input.shape)
        guard shape.count == 4 else {
            throw BenchmarkError.invalidManifest("expected a 4-D image input, got shape \(shape)")
        }
    }

    public var elementCount: Int {
        shape.reduce(1, *)
    }

    /// (batch, channels, height, width) whatever the layout.
    public var dimensions: (n: Int, c: Int, h: Int, w: Int) {
        switch layout {
        case .nchw, .image:
            return (shape[0], shape[1], shape[2], shape[3])
        case .nhwc:
            return (shape[0], shape[3], shape[1], shape[2])
        }
    }

    /// The synthetic image's pixel (0...255) at (n, c, y, x): the same pattern on iOS, Android and in tests.
    public static func syntheticPixel(n: Int, c: Int, y: Int, x: Int) -> UInt8 {
        UInt8((x * 7 + y * 13 + c * 29 + n * 31) % 256)
    }

    /// A deterministic synthetic image of the input's size, normalised with the manifest's mean/std
    /// ((pixel / 255 - mean[c]) / std[c]) and laid out in the input's layout. Latency does not depend on the
    /// pixel values; using the real preprocessing keeps activations in the range the model was exported for.
    public func normalizedValues(preprocessing: PreprocessingDescription?) throws -> [Float] {
        let dims = dimensions
        let mean = preprocessing?.mean ?? Array(repeating: 0, count: dims.c)
        let std = preprocessing?.std ?? Array(repeating: 1, count: dims.c)
        guard mean.count == dims.c, std.count == dims.c, std.allSatisfy({ $0 != 0 }) else {
            throw BenchmarkError.invalidManifest("mean/std need \(dims.c) values with std != 0")
        }
        var values = [Float](repeating: 0, count: elementCount)
        for n in 0..<dims.n {
            for c in 0..<dims.c {
                for y in 0..<dims.h {
                    for x in 0..<dims.w {
                        let pixel = Double(Self.syntheticPixel(n: n, c: c, y: y, x: x))
                        let value = (pixel / 255 - mean[c]) / std[c]
                        values[offset(n: n, c: c, y: y, x: x)] = Float(value)
                    }
                }
            }
        }
        return values
    }

    /// Row-major offset of element (n, c, y, x) in this layout.
    public func offset(n: Int, c: Int, y: Int, x: Int) -> Int {
        let dims = dimensions
        switch layout {
        case .nchw, .image:
            return ((n * dims.c + c) * dims.h + y) * dims.w + x
        case .nhwc:
            return ((n * dims.h + y) * dims.w + x) * dims.c + c
        }
    }
}
