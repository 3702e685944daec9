import Foundation

/// The model input as the host describes it (manifest.schema.json's tensor): name, shape, dtype ("float32",
/// "float16", "int8", "uint8") and layout ("NCHW" / "NHWC" / "image"; inferred from the shape when absent).
/// A dynamic dimension (the manifest writes null, or a name such as "batch") decodes as -1, which `validate()`
/// refuses for that manifest alone.
public struct InputDescription: Codable, Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var dtype: String
    public var layout: String?

    enum CodingKeys: String, CodingKey {
        case name
        case shape
        case dtype
        case layout
    }

    public init(name: String, shape: [Int], dtype: String, layout: String? = nil) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.layout = layout
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        shape = try c.decode([Dimension].self, forKey: .shape).map(\.size)
        dtype = try c.decode(String.self, forKey: .dtype)
        layout = try c.decodeIfPresent(String.self, forKey: .layout)
    }
}

/// One dimension of a shape: its size, or -1 where the manifest has null or a dimension name.
struct Dimension: Decodable {
    let size: Int

    init(from decoder: Decoder) throws {
        size = (try? decoder.singleValueContainer().decode(Int.self)) ?? -1
    }
}

/// How pixels become the input tensor (mirrors exporter.specs.Preprocessing on the host). The manifest writes
/// the centre crop as one side (square) or as [height, width]; `crop` holds [height, width] either way.
public struct PreprocessingDescription: Decodable, Equatable, Sendable {
    public var resize: Int?
    public var crop: [Int]?
    public var mean: [Double]
    public var std: [Double]
    public var color: String

    enum Keys: String, CodingKey {
        case resize
        case crop
        case mean
        case std
        case color
    }

    public init(resize: Int? = nil, crop: Int? = nil, mean: [Double], std: [Double], color: String = "RGB") {
        self.resize = resize
        self.crop = crop.map { [$0, $0] }
        self.mean = mean
        self.std = std
        self.color = color
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        resize = try c.decodeIfPresent(Int.self, forKey: .resize)
        if let side = try? c.decodeIfPresent(Int.self, forKey: .crop) {
            crop = [side, side]
        } else {
            crop = try c.decodeIfPresent([Int].self, forKey: .crop)
        }
        mean = try c.decode([Double].self, forKey: .mean)
        std = try c.decode([Double].self, forKey: .std)
        color = try c.decodeIfPresent(String.self, forKey: .color) ?? "RGB"
    }
}

/// One entry of GET /api/v1/artifacts (and the body of .../manifest): the fields of manifest.schema.json the
/// app uses (tests/test_manifest_schema.py checks each key and type against the schema). The input is the
/// `input` object, or the first of `inputs`; `file` is the manifest's `artifact`.
public struct ArtifactManifest: Decodable, Equatable, Identifiable, Sendable {
    public var model: String
    public var target: String
    public var sha256: String
    public var status: String?
    public var weights: String?
    public var gitCommit: String?
    public var file: String?
    public var input: InputDescription
    public var preprocessing: PreprocessingDescription?

    public var id: String {
        "\(model)/\(target)"
    }

    /// "coreml" for coreml-fp16, "tflite" for tflite-w8a8 ...
    public var format: String {
        String(target.split(separator: "-").first ?? "")
    }

    enum Keys: String, CodingKey {
        case model
        case target
        case sha256
        case status
        case weights
        case gitCommit = "git_commit"
        case artifact
        case input
        case inputs
        case preprocessing
    }

    public init(
        model: String,
        target: String,
        sha256: String,
        input: InputDescription,
        preprocessing: PreprocessingDescription? = nil,
        status: String? = nil,
        weights: String? = nil,
        gitCommit: String? = nil,
        file: String? = nil
    ) {
        self.model = model
        self.target = target
        self.sha256 = sha256
        self.input = input
        self.preprocessing = preprocessing
        self.status = status
        self.weights = weights
        self.gitCommit = gitCommit
        self.file = file
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        model = try c.decode(String.self, forKey: .model)
        target = try c.decode(String.self, forKey: .target)
        sha256 = try c.decode(String.self, forKey: .sha256)
        status = try c.decodeIfPresent(String.self, forKey: .status)
        weights = try c.decodeIfPresent(String.self, forKey: .weights)
        gitCommit = try c.decodeIfPresent(String.self, forKey: .gitCommit)
        file = try c.decodeIfPresent(String.self, forKey: .artifact)
        preprocessing = try c.decodeIfPresent(PreprocessingDescription.self, forKey: .preprocessing)
        input = try Self.decodeInput(c)
        try validate()
    }

    private static func decodeInput(_ c: KeyedDecodingContainer<Keys>) throws -> InputDescription {
        if let one = try c.decodeIfPresent(InputDescription.self, forKey: .input) {
            return one
        }
        guard let first = try c.decodeIfPresent([InputDescription].self, forKey: .inputs)?.first else {
            throw BenchmarkError.invalidManifest("no input description (input / inputs)")
        }
        return first
    }

    public func validate() throws {
        guard !model.isEmpty, !target.isEmpty else {
            throw BenchmarkError.invalidManifest("model and target must be set")
        }
        guard !input.shape.isEmpty, input.shape.allSatisfy({ $0 >= 1 }) else {
            throw BenchmarkError.invalidManifest("input shape \(input.shape) of \(id) is not a fixed positive shape")
        }
        guard sha256.count == 64, sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw BenchmarkError.invalidManifest("sha256 of \(id) is not 64 lower-case hex digits")
        }
    }
}

/// GET /api/v1/artifacts answers either a bare array or {"artifacts": [...]}. An entry this app cannot use
/// (e.g. a dynamic dimension in its input shape) is skipped; the others are listed.
public enum ArtifactList {
    struct Entry: Decodable {
        let manifest: ArtifactManifest?

        init(from decoder: Decoder) throws {
            manifest = try? ArtifactManifest(from: decoder)
        }
    }

    struct Wrapped: Decodable {
        let artifacts: [Entry]
    }

    public static func decode(_ data: Data) throws -> [ArtifactManifest] {
        let decoder = JSONDecoder()
        if let list = try? decoder.decode([Entry].self, from: data) {
            return list.compactMap(\.manifest)
        }
        do {
            return try decoder.decode(Wrapped.self, from: data).artifacts.compactMap(\.manifest)
        } catch {
            throw BenchmarkError.badResponse("artifact list is not a list of manifests: \(error)")
        }
    }
}
