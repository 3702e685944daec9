import BenchmarkKit
import Foundation

/// Thread-safe cancel flag read by the benchmark loop on its background thread.
final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool {
        lock.lock()
        defer {
            lock.unlock()
        }
        return value
    }

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
}

/// One artifact's benchmark: download + compile (cached), load once, time, post the result.
@MainActor
final class BenchmarkSession: ObservableObject {
    enum Phase: Equatable {
        case idle
        case preparing
        case loading
        case running(String)
        case posting
        case done
        case failed(String)

        var title: String {
            switch self {
            case .idle:
                return "Ready"
            case .preparing:
                return "Downloading and compiling on device"
            case .loading:
                return "Loading the model"
            case .running(let what):
                return what
            case .posting:
                return "Posting the result"
            case .done:
                return "Done"
            case .failed:
                return "Failed"
            }
        }
    }

    let manifest: ArtifactManifest
    private let client: APIClient
    private var cancelFlag = CancelFlag()

    @Published private(set) var phase: Phase = .idle
    @Published private(set) var progress: Double = 0
    @Published private(set) var result: BenchmarkResult?
    @Published private(set) var postError: String?
    @Published var computeUnit: ComputeUnitChoice = .all
    @Published var runs = BenchmarkConfig.defaultRuns
    @Published var cooldownSeconds: Double = 0

    init(manifest: ArtifactManifest, client: APIClient) {
        self.manifest = manifest
        self.client = client
    }

    var isBusy: Bool {
        switch phase {
        case .idle, .done, .failed:
            return false
        default:
            return true
        }
    }

    func start() {
        cancelFlag = CancelFlag()
        result = nil
        postError = nil
        progress = 0
        Task {
            await run()
        }
    }

    func cancel() {
        cancelFlag.set()
    }

    private func run() async {
        do {
            phase = .preparing
            let compiled = try await ArtifactStore.shared.compiledModel(for: manifest, client: client)
            phase = .loading
            let job = MeasureJob(
                compiledModel: compiled,
                manifest: manifest,
                unit: computeUnit,
                config: BenchmarkConfig(warmup: 1, runs: runs, cooldownSeconds: cooldownSeconds),
                device: DeviceInfo.description(),
                flag: cancelFlag
            )
            let measured = try await Task.detached(priority: .userInitiated) { [weak self] in
                try job.measure { event in
                    Task { @MainActor in
                        self?.show(event)
                    }
                }
            }.value
            result = measured
            phase = .posting
            do {
                try await client.postResult(measured)
            } catch {
                postError = "Not posted: \(error.localizedDescription)"
            }
            phase = .done
        } catch {
            phase = .failed(error.localizedDescription)
        }
    }

    private func show(_ event: BenchmarkProgress) {
        switch event.phase {
        case .cooldown:
            phase = .running("Cooling down")
        case .warmup:
            phase = .running("Warm-up")
        case .timed:
            phase = .running("Timed runs \(event.completed)/\(event.total)")
        }
        progress = event.phase == .timed ? Double(event.completed) / Double(max(event.total, 1)) : 0
    }
}

/// Everything the background measurement needs, captured by value.
struct MeasureJob: @unchecked Sendable {
    let compiledModel: URL
    let manifest: ArtifactManifest
    let unit: ComputeUnitChoice
    let config: BenchmarkConfig
    let device: DeviceDescription
    let flag: CancelFlag

    func measure(progress: (BenchmarkProgress) -> Void) throws -> BenchmarkResult {
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let plan = try InputTensorPlan(manifest: manifest)
        var values: [Float] = []
        if plan.layout != .image {
            values = try plan.normalizedValues(preprocessing: manifest.preprocessing)
        }
        let predictor = try CoreMLPredictor(
            compiledModelURL: compiledModel,
            computeUnits: unit.mlComputeUnits,
            plan: plan,
            values: values
        )
        let loadMs = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1_000_000
        var thermalBefore = DeviceInfo.thermalState()
        var sawTimedPhase = false
        let samples = try BenchmarkRunner().run(predictor, config: config, isCancelled: { flag.isSet }) { event in
            if event.phase != .cooldown && !sawTimedPhase {
                sawTimedPhase = true
                thermalBefore = DeviceInfo.thermalState()
            }
            progress(event)
        }
        let context = RunContext(
            runtime: "coreml",
            runtimeVersion: DeviceInfo.coreMLVersion,
            computeUnit: unit.rawValue,
            threads: nil,
            loadMs: loadMs,
            peakRssMb: DeviceInfo.peakMemoryFootprintMB(),
            thermalStateBefore: thermalBefore,
            thermalStateAfter: DeviceInfo.thermalState(),
            toolVersions: DeviceInfo.toolVersions,
            notes: config.cooldownSeconds > 0 ? "cool-down \(Int(config.cooldownSeconds)) s before the run" : nil
        )
        return try BenchmarkResult.make(samples: samples, config: config, manifest: manifest, device: device, context: context)
    }
}
