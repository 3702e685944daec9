import Foundation

/// One benchmark run of one artifact on one device: the record of benchmarks/schema/result.schema.json.
/// The CodingKeys raw values are exactly the schema's property names (checked by tests/test_apps.py on the
/// host and by ResultEncodingTests here). Every key is always written, nil as JSON null, so a payload always
/// carries the full key set of the schema.
public struct BenchmarkResult: Codable, Equatable, Sendable {
    public static let schemaVersion = "1.0"
    public static let harnessName = "ios_app"

    public var schemaVersion: String
    public var model: String
    public var weights: String
    public var target: String
    public var artifactSha256: String
    public var harness: String
    public var deviceModel: String
    public var os: String
    public var osVersion: String
    public var chip: String
    public var runtime: String
    public var runtimeVersion: String
    public var computeUnit: String
    public var threads: Int?
    public var inputShape: [Int]
    public var batchSize: Int
    public var warmup: Int
    public var runs: Int
    public var minMs: Double
    public var p50Ms: Double
    public var p90Ms: Double
    public var meanMs: Double
    public var stdMs: Double
    public var maxMs: Double
    public var samplesMs: [Double]
    public var loadMs: Double?
    public var peakRssMb: Double?
    public var thermalStateBefore: String?
    public var thermalStateAfter: String?
    public var validationStatus: String
    public var toolVersions: [String: String]
    public var gitCommit: String?
    public var timestamp: String
    public var notes: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case schemaVersion = "schema_version"
        case model = "model"
        case weights = "weights"
        case target = "target"
        case artifactSha256 = "artifact_sha256"
        case harness = "harness"
        case deviceModel = "device_model"
        case os = "os"
        case osVersion = "os_version"
        case chip = "chip"
        case runtime = "runtime"
        case runtimeVersion = "runtime_version"
        case computeUnit = "compute_unit"
        case threads = "threads"
        case inputShape = "input_shape"
        case batchSize = "batch_size"
        case warmup = "warmup"
        case runs = "runs"
        case minMs = "min_ms"
        case p50Ms = "p50_ms"
        case p90Ms = "p90_ms"
        case meanMs = "mean_ms"
        case stdMs = "std_ms"
        case maxMs = "max_ms"
        case samplesMs = "samples_ms"
        case loadMs = "load_ms"
        case peakRssMb = "peak_rss_mb"
        case thermalStateBefore = "thermal_state_before"
        case thermalStateAfter = "thermal_state_after"
        case validationStatus = "validation_status"
        case toolVersions = "tool_versions"
        case gitCommit = "git_commit"
        case timestamp = "timestamp"
        case notes = "notes"
    }

    /// Written out so that nil optionals become JSON null instead of a missing key.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(model, forKey: .model)
        try c.encode(weights, forKey: .weights)
        try c.encode(target, forKey: .target)
        try c.encode(artifactSha256, forKey: .artifactSha256)
        try c.encode(harness, forKey: .harness)
        try c.encode(deviceModel, forKey: .deviceModel)
        try c.encode(os, forKey: .os)
        try c.encode(osVersion, forKey: .osVersion)
        try c.encode(chip, forKey: .chip)
        try c.encode(runtime, forKey: .runtime)
        try c.encode(runtimeVersion, forKey: .runtimeVersion)
        try c.encode(computeUnit, forKey: .computeUnit)
        try c.encode(threads, forKey: .threads)
        try c.encode(inputShape, forKey: .inputShape)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(runs, forKey: .runs)
        try c.encode(minMs, forKey: .minMs)
        try c.encode(p50Ms, forKey: .p50Ms)
        try c.encode(p90Ms, forKey: .p90Ms)
        try c.encode(meanMs, forKey: .meanMs)
        try c.encode(stdMs, forKey: .stdMs)
        try c.encode(maxMs, forKey: .maxMs)
        try c.encode(samplesMs, forKey: .samplesMs)
        try c.encode(loadMs, forKey: .loadMs)
        try c.encode(peakRssMb, forKey: .peakRssMb)
        try c.encode(thermalStateBefore, forKey: .thermalStateBefore)
        try c.encode(thermalStateAfter, forKey: .thermalStateAfter)
        try c.encode(validationStatus, forKey: .validationStatus)
        try c.encode(toolVersions, forKey: .toolVersions)
        try c.encode(gitCommit, forKey: .gitCommit)
        try c.encode(timestamp, forKey: .timestamp)
        try c.encode(notes, forKey: .notes)
    }

    /// JSON as POSTed to /api/v1/results.
    public func jsonData(pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return try encoder.encode(self)
    }
}

/// What the app knows about the device (filled by the app from utsname, ProcessInfo, ...).
public struct DeviceDescription: Equatable, Sendable {
    public var deviceModel: String
    public var os: String
    public var osVersion: String
    public var chip: String

    public init(deviceModel: String, os: String, osVersion: String, chip: String) {
        self.deviceModel = deviceModel
        self.os = os
        self.osVersion = osVersion
        self.chip = chip
    }
}

/// How the run was done, beyond what `Measurement` holds.
public struct RunContext: Equatable, Sendable {
    public var runtime: String
    public var runtimeVersion: String
    public var computeUnit: String
    public var threads: Int?
    public var peakRssMb: Double?
    public var toolVersions: [String: String]
    public var notes: String?

    public init(
        runtime: String,
        runtimeVersion: String,
        computeUnit: String,
        threads: Int? = nil,
        peakRssMb: Double? = nil,
        toolVersions: [String: String] = [:],
        notes: String? = nil
    ) {
        self.runtime = runtime
        self.runtimeVersion = runtimeVersion
        self.computeUnit = computeUnit
        self.threads = threads
        self.peakRssMb = peakRssMb
        self.toolVersions = toolVersions
        self.notes = notes
    }
}
