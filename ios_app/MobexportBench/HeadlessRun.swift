import BenchmarkKit
import Foundation

/// A run without a tap (device farms): the job from the launch arguments or the environment (BenchmarkKit's
/// HeadlessJob), every selected Core ML artifact measured with BenchmarkKit's protocol, each result stored on the
/// device and posted (kept for the next run when the upload fails). Used by the app at launch and by the XCTest
/// entry (MobexportBenchTests/HeadlessRunTests.swift). Lines go to stdout (the device console / xcodebuild log).
enum HeadlessRun {
    /// The job this process was launched with, nil for an interactive launch; a bad argument is thrown.
    static func job(processInfo: ProcessInfo = .processInfo) throws -> HeadlessJob? {
        let values = HeadlessJob.values(arguments: processInfo.arguments, environment: processInfo.environment)
        return try HeadlessJob.parse(values, delegates: ComputeUnitChoice.allCases.map(\.rawValue))
    }

    struct Outcome: Sendable {
        var measured: [String] = []
        var failed: [String: String] = [:]
        var upload = FlushReport(posted: 0, kept: 0, rejected: 0, lastError: nil)

        var ok: Bool {
            failed.isEmpty && upload.kept + upload.rejected == 0
        }
    }

    static func run(_ job: HeadlessJob) async throws -> Outcome {
        let client = APIClient(config: job.server)
        let outbox = ResultOutbox.queue
        var outcome = Outcome()
        _ = await outbox.flush(to: client)
        let listed = try await client.listArtifacts().filter { $0.format == "coreml" }
        guard let unit = ComputeUnitChoice(rawValue: job.delegate) else {
            throw BenchmarkError.invalidConfig("unknown compute unit \(job.delegate)")
        }
        for manifest in try job.select(listed) {
            let id = "\(manifest.model)/\(manifest.target)"
            do {
                let compiled = try await ArtifactStore.shared.compiledModel(for: manifest, client: client)
                let measureJob = MeasureJob(compiledModel: compiled, manifest: manifest, unit: unit, config: job.config,
                                            device: DeviceInfo.description(), flag: CancelFlag(), runner: BenchmarkRunner())
                let result = try await runOnDedicatedThread {
                    try measureJob.measure { _ in }
                }
                try outbox.add(result)
                outcome.measured.append(id)
                print("mobexport: \(id): min \(result.minMs) ms, p50 \(result.p50Ms) ms over \(result.runs) runs")
            } catch {
                outcome.failed[id] = error.localizedDescription
                print("mobexport: \(id) failed: \(error.localizedDescription)")
            }
        }
        outcome.upload = await outbox.flush(to: client)
        print("mobexport: posted \(outcome.upload.posted), kept for retry \(outcome.upload.kept), "
              + "refused \(outcome.upload.rejected)")
        return outcome
    }
}
