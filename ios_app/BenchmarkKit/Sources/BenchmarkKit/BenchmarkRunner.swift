import Dispatch
import Foundation

/// A model the runtime has loaded, its input and output allocated and the input values prepared. Implemented by
/// the Core ML model in the app and by fakes in tests. The same protocol as benchkit's `LoadedModel` (Android).
public protocol LoadedModel: AnyObject {
    /// Puts the prepared input in place for the next call: before the timer starts.
    func writeInput() throws
    /// Runs the model once: the timed region.
    func invoke() throws
    /// Reads the output out of the last call: after the timer stops.
    func readOutput() throws
    /// Called once, after the first (untimed) call's `readOutput`: throws when the output is empty or not finite.
    func checkOutput() throws
}

extension LoadedModel {
    public func checkOutput() throws {}
}

/// A monotonic nanosecond clock (never the wall clock).
public protocol MonotonicClock {
    func nowNanoseconds() -> UInt64
}

/// `DispatchTime.now().uptimeNanoseconds`: monotonic, does not jump with the wall clock.
public struct SystemMonotonicClock: MonotonicClock {
    public init() {}

    public func nowNanoseconds() -> UInt64 {
        DispatchTime.now().uptimeNanoseconds
    }
}

/// The host harness protocol (benchmarks/harness.py): optional cool-down, load (timed), one checked call plus
/// `warmup` untimed calls, then `runs` timed calls. The defaults are the host's (`mobexport bench`).
public struct BenchmarkConfig: Equatable, Sendable {
    public static let defaultWarmup = 20
    public static let defaultRuns = 1000
    /// result.schema.json's samples_ms maxItems: the server stores at most this many samples per record.
    public static let maxRuns = 100_000
    public static let maxWarmup = 10_000
    public static let maxCooldownSeconds: Double = 600

    public var warmup: Int
    public var runs: Int
    public var cooldownSeconds: Double

    public init(warmup: Int = BenchmarkConfig.defaultWarmup, runs: Int = BenchmarkConfig.defaultRuns,
                cooldownSeconds: Double = 0) {
        self.warmup = warmup
        self.runs = runs
        self.cooldownSeconds = cooldownSeconds
    }

    public func validate() throws {
        guard warmup >= 0 && warmup <= Self.maxWarmup else {
            throw BenchmarkError.invalidConfig("warm-up must be in 0...\(Self.maxWarmup), got \(warmup)")
        }
        guard runs >= 1 && runs <= Self.maxRuns else {
            throw BenchmarkError.invalidConfig("runs must be in 1...\(Self.maxRuns), got \(runs)")
        }
        guard cooldownSeconds.isFinite && cooldownSeconds >= 0 && cooldownSeconds <= Self.maxCooldownSeconds else {
            throw BenchmarkError.invalidConfig("cool-down must be in 0...\(Int(Self.maxCooldownSeconds)) s, got \(cooldownSeconds)")
        }
    }
}

/// Reported between steps, never from inside the timed loop (poll `BenchmarkRunner.completedRuns` there).
public struct BenchmarkProgress: Equatable, Sendable {
    public enum Phase: String, Sendable {
        case cooldown
        case loading
        case warmup
        case timed
    }

    public let phase: Phase
    public let completed: Int
    public let total: Int

    public init(phase: Phase, completed: Int, total: Int) {
        self.phase = phase
        self.completed = completed
        self.total = total
    }
}

/// What one protocol run measured: `samplesMs` are the timed invokes, `roundTripMs` the full round trips.
public struct Measurement: Equatable, Sendable {
    public var samplesMs: [Double]
    public var roundTripMs: [Double]
    public var loadMs: Double
    public var warmup: Int
    public var thermalStateBefore: String?
    public var thermalStateAfter: String?

    public init(samplesMs: [Double], roundTripMs: [Double], loadMs: Double, warmup: Int,
                thermalStateBefore: String?, thermalStateAfter: String?) {
        self.samplesMs = samplesMs
        self.roundTripMs = roundTripMs
        self.loadMs = loadMs
        self.warmup = warmup
        self.thermalStateBefore = thermalStateBefore
        self.thermalStateAfter = thermalStateAfter
    }
}

/// Runs the protocol over any model loader. Per timed run: write the input, start the timer, invoke, stop the
/// timer, read the output (as LiteRT's benchmark_model does); the round trip from before the write to after the
/// read is recorded too. The thermal state is read after loading and before the warm-up, and again at the end.
/// Blocking, for minutes: call it on a thread of its own (`runOnDedicatedThread`), never on the cooperative pool.
public final class BenchmarkRunner: @unchecked Sendable {
    private static let cooldownSlice: Double = 0.25

    private let clock: MonotonicClock
    private let sleeper: (Double) -> Void
    private let lock = NSLock()
    private var completed = 0

    public init(
        clock: MonotonicClock = SystemMonotonicClock(),
        sleeper: @escaping (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }
    ) {
        self.clock = clock
        self.sleeper = sleeper
    }

    /// Timed runs finished so far: a counter the UI may poll while the loop runs.
    public var completedRuns: Int {
        lock.lock()
        defer {
            lock.unlock()
        }
        return completed
    }

    private func setCompleted(_ value: Int) {
        lock.lock()
        completed = value
        lock.unlock()
    }

    public func run(
        load: () throws -> LoadedModel,
        config: BenchmarkConfig,
        thermalState: () -> String? = { nil },
        isCancelled: () -> Bool = { false },
        progress: (BenchmarkProgress) -> Void = { _ in }
    ) throws -> Measurement {
        try config.validate()
        setCompleted(0)
        try coolDown(config.cooldownSeconds, isCancelled: isCancelled, progress: progress)
        if isCancelled() {
            throw BenchmarkError.cancelled
        }
        progress(BenchmarkProgress(phase: .loading, completed: 0, total: 1))
        let loadStart = clock.nowNanoseconds()
        let model = try load()
        let loadMs = Self.millis(clock.nowNanoseconds() &- loadStart)
        let before = thermalState()
        try warmUp(model, count: config.warmup, isCancelled: isCancelled, progress: progress)
        progress(BenchmarkProgress(phase: .timed, completed: 0, total: config.runs))
        var samples = [Double](repeating: 0, count: config.runs)
        var roundTrips = [Double](repeating: 0, count: config.runs)
        for index in 0..<config.runs {
            if isCancelled() {
                throw BenchmarkError.cancelled
            }
            let t0 = clock.nowNanoseconds()
            try model.writeInput()
            let t1 = clock.nowNanoseconds()
            try model.invoke()
            let t2 = clock.nowNanoseconds()
            try model.readOutput()
            let t3 = clock.nowNanoseconds()
            samples[index] = Self.millis(t2 &- t1)
            roundTrips[index] = Self.millis(t3 &- t0)
            setCompleted(index + 1)
        }
        progress(BenchmarkProgress(phase: .timed, completed: config.runs, total: config.runs))
        return Measurement(samplesMs: samples, roundTripMs: roundTrips, loadMs: loadMs, warmup: config.warmup,
                           thermalStateBefore: before, thermalStateAfter: thermalState())
    }

    private func coolDown(_ seconds: Double, isCancelled: () -> Bool, progress: (BenchmarkProgress) -> Void) throws {
        guard seconds > 0 else {
            return
        }
        let total = Int(seconds.rounded(.up))
        var left = seconds
        while left > 0 {
            if isCancelled() {
                throw BenchmarkError.cancelled
            }
            progress(BenchmarkProgress(phase: .cooldown, completed: total - Int(left.rounded(.up)), total: total))
            let step = Swift.min(left, Self.cooldownSlice)
            sleeper(step)
            left -= step
        }
    }

    private func warmUp(_ model: LoadedModel, count: Int, isCancelled: () -> Bool,
                        progress: (BenchmarkProgress) -> Void) throws {
        for index in 0...count {
            if isCancelled() {
                throw BenchmarkError.cancelled
            }
            try model.writeInput()
            try model.invoke()
            try model.readOutput()
            if index == 0 {
                try model.checkOutput()
            } else {
                progress(BenchmarkProgress(phase: .warmup, completed: index, total: count))
            }
        }
    }

    private static func millis(_ nanoseconds: UInt64) -> Double {
        Double(nanoseconds) / 1_000_000
    }
}

/// Runs blocking work (model compilation, a benchmark of minutes, sleeps) on a thread of its own, so it never
/// occupies a thread of Swift concurrency's cooperative pool, and returns its result to the awaiting task.
public func runOnDedicatedThread<T: Sendable>(name: String = "mobexport.benchmark",
                                              _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.name = name
        thread.qualityOfService = .userInitiated
        thread.stackSize = 8 << 20
        thread.start()
    }
}
