import Foundation

/// The validation statuses of the schema (one enum shared with the host's `Status`).
public enum ValidationStatus: String, CaseIterable, Sendable {
    case ok = "OK"
    case convertFailed = "CONVERT_FAILED"
    case loadFailed = "LOAD_FAILED"
    case runFailed = "RUN_FAILED"
    case mismatch = "MISMATCH"
    case unvalidatedNoRuntime = "UNVALIDATED_NO_RUNTIME"
    case skipped = "SKIPPED"
}

extension BenchmarkResult {
    /// Builds the record of one finished run. The app does not compare outputs with PyTorch itself, so the
    /// validation status is the host's verdict on this artifact from its manifest (UNVALIDATED_NO_RUNTIME when
    /// the manifest has none, e.g. Core ML artifacts validated only structurally on Linux).
    public static func make(
        samples: [Double],
        config: BenchmarkConfig,
        manifest: ArtifactManifest,
        device: DeviceDescription,
        context: RunContext,
        date: Date = Date()
    ) throws -> BenchmarkResult {
        let stats = try LatencyStatistics(samples: samples)
        let status = manifest.status.flatMap { ValidationStatus(rawValue: $0) } ?? .unvalidatedNoRuntime
        return BenchmarkResult(
            schemaVersion: schemaVersion,
            model: manifest.model,
            weights: manifest.weights ?? "unknown",
            target: manifest.target,
            artifactSha256: manifest.sha256,
            harness: harnessName,
            deviceModel: device.deviceModel,
            os: device.os,
            osVersion: device.osVersion,
            chip: device.chip,
            runtime: context.runtime,
            runtimeVersion: context.runtimeVersion,
            computeUnit: context.computeUnit,
            threads: context.threads,
            inputShape: manifest.input.shape,
            batchSize: manifest.input.shape.first ?? 1,
            warmup: config.warmup,
            runs: samples.count,
            minMs: stats.min,
            p50Ms: stats.p50,
            p90Ms: stats.p90,
            meanMs: stats.mean,
            stdMs: stats.std,
            maxMs: stats.max,
            samplesMs: samples,
            loadMs: context.loadMs,
            peakRssMb: context.peakRssMb,
            thermalStateBefore: context.thermalStateBefore,
            thermalStateAfter: context.thermalStateAfter,
            validationStatus: status.rawValue,
            toolVersions: context.toolVersions,
            gitCommit: manifest.gitCommit,
            timestamp: iso8601(date),
            notes: context.notes
        )
    }

    /// RFC 3339 / ISO 8601 UTC timestamp, e.g. 2025-01-31T12:00:00Z.
    public static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
