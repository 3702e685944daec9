import BenchmarkKit
import Foundation

/// Thread-safe cancel flag read by the benchmark loop on its own thread.
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

/// Results not yet taken by the server, kept in Application Support until they are.
enum ResultOutbox {
    static var queue: PendingUploads {
        let support = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
        return PendingUploads(directory: support.appendingPathComponent("pending-results", isDirectory: true))
    }
}

/// One artifact's benchmark: download + compile (cached), then BenchmarkKit's protocol on a thread of its own,
/// the result stored on the device and posted (kept and retried when the upload fails).
@MainActor
final class BenchmarkSession: ObservableObject {
    enum Phase: Equatable {
        case idle
        case preparing
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
    private var runTask: Task<Void, Never>?

    @Published private(set) var phase: Phase = .idle
    @Published private(set) var progress: Double = 0
    @Published private(set) var result: BenchmarkResult?
    @Published private(set) var postError: String?
    @Published var computeUnit: ComputeUnitChoice = .all
    @Published var runs = BenchmarkConfig.defaultRuns
    @Published var warmup = BenchmarkConfig.defaultWarmup
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
        guard !isBusy else {
            return
        }
        cancelFlag = CancelFlag()
        result = nil
        postError = nil
        progress = 0
        let config = BenchmarkConfig(warmup: warmup, runs: runs, cooldownSeconds: cooldownSeconds)
        runTask = Task {
            await run(config: config)
        }
    }

    func cancel() {
        cancelFlag.set()
    }

    private func run(config: BenchmarkConfig) async {
        do {
            try config.validate()
            phase = .preparing
            let compiled = try await ArtifactStore.shared.compiledModel(for: manifest, client: client)
            let job = MeasureJob(compiledModel: compiled, manifest: manifest, unit: computeUnit, config: config,
                                 device: DeviceInfo.description(), flag: cancelFlag, runner: BenchmarkRunner())
            let poller = pollTimedRuns(job.runner, total: config.runs)
            defer {
                poller.cancel()
            }
            let measured = try await runOnDedicatedThread {
                try job.measure { event in
                    Task { @MainActor [weak self] in
                        self?.show(event)
                    }
                }
            }
            result = measured
            phase = .posting
            let outbox = ResultOutbox.queue
            try outbox.add(measured)
            let report = await outbox.flush(to: client)
            if report.kept + report.rejected > 0 {
                postError = "Kept on this device (\(outbox.pending().count) waiting), posted with the next run: "
                    + (report.lastError ?? "upload failed")
            }
            phase = .done
        } catch {
            phase = .failed(error.localizedDescription)
        }
    }

    /// The timed loop reports nothing itself: this polls the runner's counter four times a second.
    private func pollTimedRuns(_ runner: BenchmarkRunner, total: Int) -> Task<Void, Never> {
        Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 250_000_000)
                let done = runner.completedRuns
                if done > 0 {
                    self?.phase = .running("Timed runs \(done)/\(total)")
                    self?.progress = Double(done) / Double(max(total, 1))
                }
            }
        }
    }

    private func show(_ event: BenchmarkProgress) {
        switch event.phase {
        case .cooldown:
            phase = .running("Cooling down \(event.completed)/\(event.total) s")
        case .loading:
            phase = .running("Loading the model")
        case .warmup:
            phase = .running("Warm-up \(event.completed)/\(event.total)")
        case .timed:
            phase = .running("Timed runs \(event.completed)/\(event.total)")
        }
        progress = event.phase == .timed ? Double(event.completed) / Double(max(event.total, 1)) : 0
    }
}

/// Everything the measurement needs, captured by value; it runs on a dedicated thread (`runOnDedicatedThread`),
/// never on the cooperative pool (Core ML work and sleeps of minutes). Sendable by hand: the manifest, config and
/// device are values, the flag and the runner are locked.
struct MeasureJob: @unchecked Sendable {
    let compiledModel: URL
    let manifest: ArtifactManifest
    let unit: ComputeUnitChoice
    let config: BenchmarkConfig
    let device: DeviceDescription
    let flag: CancelFlag
    let runner: BenchmarkRunner

    /// The input values are prepared before the load, so load_ms is MLModel(contentsOf:) and the input's
    /// allocation only (the compile happened once, in ArtifactStore).
    func measure(progress: (BenchmarkProgress) -> Void) throws -> BenchmarkResult {
        let plan = try InputTensorPlan(manifest: manifest)
        var values: [Float] = []
        if plan.layout != .image {
            values = try plan.normalizedValues(preprocessing: manifest.preprocessing)
        }
        let measurement = try runner.run(
            load: {
                try CoreMLModel(compiledModelURL: compiledModel, computeUnits: unit.mlComputeUnits, plan: plan,
                                values: values)
            },
            config: config,
            thermalState: { DeviceInfo.thermalState() },
            isCancelled: { flag.isSet },
            progress: progress
        )
        let context = RunContext(
            runtime: "coreml",
            runtimeVersion: DeviceInfo.coreMLVersion,
            computeUnit: unit.rawValue,
            threads: nil,
            peakRssMb: DeviceInfo.peakMemoryFootprintMB(),
            toolVersions: DeviceInfo.toolVersions,
            notes: config.cooldownSeconds > 0 ? "cool-down \(Int(config.cooldownSeconds)) s before the run" : nil
        )
        return try BenchmarkResult.make(measurement: measurement, manifest: manifest, device: device, context: context)
    }
}
