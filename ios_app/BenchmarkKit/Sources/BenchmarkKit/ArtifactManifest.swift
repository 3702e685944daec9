import Foundation

/// The model input as the host describes it: name, shape, dtype ("float32", "float16", "int8", "uint8") and
/// layout ("NCHW" / "NHWC"; inferred from the shape when absent).
public struct InputDescription: Codable, Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var dtype: String
    public var layout: String?

    public init(name: String, shape: [Int], dtype: String, layout: String? = nil) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.layout = layout
    }
}

/// How pixels become the input tensor (mirrors exporter.specs.Preprocessing on the host).
public struct PreprocessingDescription: Codable, Equatable, Sendable {
    public var resize: Int?
    public var crop: Int?
    public var mean: [Double]
    public var std: [Double]
    public var color: String

    public init(resize: Int? = nil, crop: Int? = nil, mean: [Double], std: [Double], color: String = "RGB") {
        self.resize = resize
        self.crop = crop
        self.mean = mean
        self.std = std
        self.color = color
    }
}

/// One entry of GET /api/v1/artifacts (and the body of .../manifest). Decoding is tolerant about where the
/// input is described: an `input` object, the first of an `inputs` array, or flat `input_*` keys.
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
        case artifactSha256 = "artifact_sha256"
        case status
        case weights
        case gitCommit = "git_commit"
        case file
        case artifact
        case input
        case inputs
        case inputName = "input_name"
        case inputShape = "input_shape"
        case inputDtype = "input_dtype"
        case inputLayout = "input_layout"
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
        let sha = try c.decodeIfPresent(String.self, forKey: .sha256)
        let artifactSha = try c.decodeIfPresent(String.self, forKey: .artifactSha256)
        sha256 = sha ?? artifactSha ?? ""
        status = try c.decodeIfPresent(String.self, forKey: .status)
        weights = try c.decodeIfPresent(String.self, forKey: .weights)
        gitCommit = try c.decodeIfPresent(String.self, forKey: .gitCommit)
        let artifactName = try c.decodeIfPresent(String.self, forKey: .artifact)
        file = try c.decodeIfPresent(String.self, forKey: .file) ?? artifactName
        preprocessing = try c.decodeIfPresent(PreprocessingDescription.self, forKey: .preprocessing)
        input = try Self.decodeInput(c)
        try validate()
    }

    private static func decodeInput(_ c: KeyedDecodingContainer<Keys>) throws -> InputDescription {
        if let one = try c.decodeIfPresent(InputDescription.self, forKey: .input) {
            return one
        }
        if let many = try c.decodeIfPresent([InputDescription].self, forKey: .inputs), let first = many.first {
            return first
        }
        guard let shape = try c.decodeIfPresent([Int].self, forKey: .inputShape) else {
            throw BenchmarkError.invalidManifest("no input description (input / inputs / input_shape)")
        }
        return InputDescription(
            name: try c.decodeIfPresent(String.self, forKey: .inputName) ?? "input",
            shape: shape,
            dtype: try c.decodeIfPresent(String.self, forKey: .inputDtype) ?? "float32",
            layout: try c.decodeIfPresent(String.self, forKey: .inputLayout)
        )
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

/// GET /api/v1/artifacts answers either a bare array or {"artifacts": [...]}.
public enum ArtifactList {
    struct Wrapped: Decodable {
        let artifacts: [ArtifactManifest]
    }

    public static func decode(_ data: Data) throws -> [ArtifactManifest] {
        let decoder = JSONDecoder()
        if let list = try? decoder.decode([ArtifactManifest].self, from: data) {
            return list
        }
        do {
            return try decoder.decode(Wrapped.self, from: data).artifacts
        } catch {
            throw BenchmarkError.badResponse("artifact list is not a list of manifests: \(error)")
        }
    }
}
