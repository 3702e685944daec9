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
    /// the manifest has none, e.g. Core ML artifacts validated only structurally on Linux). samples_ms are the
    /// timed invokes; the round trips' summary goes into notes (`roundTripNote`).
    public static func make(
        measurement: Measurement,
        manifest: ArtifactManifest,
        device: DeviceDescription,
        context: RunContext,
        date: Date = Date()
    ) throws -> BenchmarkResult {
        let samples = measurement.samplesMs
        let stats = try LatencyStatistics(samples: samples)
        let status = manifest.status.flatMap { ValidationStatus(rawValue: $0) } ?? .unvalidatedNoRuntime
        let roundTrip = try roundTripNote(measurement.roundTripMs)
        let noteParts = [context.notes, roundTrip].compactMap { $0 }
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
            warmup: measurement.warmup,
            runs: samples.count,
            minMs: stats.min,
            p50Ms: stats.p50,
            p90Ms: stats.p90,
            meanMs: stats.mean,
            stdMs: stats.std,
            maxMs: stats.max,
            samplesMs: samples,
            loadMs: measurement.loadMs,
            peakRssMb: context.peakRssMb,
            thermalStateBefore: measurement.thermalStateBefore,
            thermalStateAfter: measurement.thermalStateAfter,
            validationStatus: status.rawValue,
            toolVersions: context.toolVersions,
            gitCommit: manifest.gitCommit,
            timestamp: iso8601(date),
            notes: noteParts.isEmpty ? nil : noteParts.joined(separator: "; ")
        )
    }

    /// "timed region: invoke; round trip (write input + invoke + read output) min 1.2340 p50 1.3000 ms", or nil.
    public static func roundTripNote(_ roundTripMs: [Double]) throws -> String? {
        guard !roundTripMs.isEmpty else {
            return nil
        }
        let stats = try LatencyStatistics(samples: roundTripMs)
        return "timed region: invoke; round trip (write input + invoke + read output) min "
            + fixed4(stats.min) + " p50 " + fixed4(stats.p50) + " ms"
    }

    /// Four decimals, locale-independent (as Kotlin's "%.4f" with Locale.ROOT).
    static func fixed4(_ value: Double) -> String {
        String(format: "%.4f", locale: Locale(identifier: "en_US_POSIX"), value)
    }

    /// RFC 3339 / ISO 8601 UTC timestamp, e.g. 2025-01-31T12:00:00Z.
    public static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
