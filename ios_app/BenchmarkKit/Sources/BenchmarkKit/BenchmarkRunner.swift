import Dispatch
import Foundation

/// One timed round trip on a model that is already loaded and whose input is already preallocated:
/// set the input, invoke, read the output. Implemented by the Core ML predictor in the app and by fakes in tests.
public protocol Predictor: AnyObject {
    func predict() throws
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

/// The host harness protocol: optional cool-down, `warmup` untimed calls, then `runs` timed calls.
public struct BenchmarkConfig: Equatable, Sendable {
    public static let defaultRuns = 1000
    public static let maxRuns = 1_000_000

    public var warmup: Int
    public var runs: Int
    public var cooldownSeconds: Double

    public init(warmup: Int = 1, runs: Int = BenchmarkConfig.defaultRuns, cooldownSeconds: Double = 0) {
        self.warmup = warmup
        self.runs = runs
        self.cooldownSeconds = cooldownSeconds
    }

    public func validate() throws {
        guard warmup >= 0 else {
            throw BenchmarkError.invalidConfig("warm-up must be >= 0, got \(warmup)")
        }
        guard runs >= 1 && runs <= Self.maxRuns else {
            throw BenchmarkError.invalidConfig("runs must be in 1...\(Self.maxRuns), got \(runs)")
        }
        guard cooldownSeconds >= 0 && cooldownSeconds.isFinite else {
            throw BenchmarkError.invalidConfig("cool-down must be >= 0 s, got \(cooldownSeconds)")
        }
    }
}

public struct BenchmarkProgress: Equatable, Sendable {
    public enum Phase: String, Sendable {
        case cooldown
        case warmup
        case timed
    }

    public let phase: Phase
    public let completed: Int
    public let total: Int
}

/// Runs the protocol over any `Predictor`. Samples are milliseconds, in call order.
public final class BenchmarkRunner {
    private let clock: MonotonicClock
    private let sleeper: (Double) -> Void

    public init(
        clock: MonotonicClock = SystemMonotonicClock(),
        sleeper: @escaping (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }
    ) {
        self.clock = clock
        self.sleeper = sleeper
    }

    public func run(
        _ predictor: Predictor,
        config: BenchmarkConfig,
        isCancelled: () -> Bool = { false },
        progress: (BenchmarkProgress) -> Void = { _ in }
    ) throws -> [Double] {
        try config.validate()
        if config.cooldownSeconds > 0 {
            progress(BenchmarkProgress(phase: .cooldown, completed: 0, total: config.runs))
            sleeper(config.cooldownSeconds)
        }
        for index in 0..<config.warmup {
            try predictor.predict()
            progress(BenchmarkProgress(phase: .warmup, completed: index + 1, total: config.warmup))
        }
        let reportEvery = Swift.max(1, config.runs / 100)
        var samples = [Double]()
        samples.reserveCapacity(config.runs)
        for index in 0..<config.runs {
            if isCancelled() {
                throw BenchmarkError.cancelled
            }
            let start = clock.nowNanoseconds()
            try predictor.predict()
            let end = clock.nowNanoseconds()
            samples.append(Double(end &- start) / 1_000_000)
            if (index + 1) % reportEvery == 0 || index + 1 == config.runs {
                progress(BenchmarkProgress(phase: .timed, completed: index + 1, total: config.runs))
            }
        }
        return samples
    }
}
