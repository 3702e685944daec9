import BenchmarkKit
import XCTest

/// Counts calls; optionally fails on a given call.
private final class FakePredictor: Predictor {
    var calls = 0
    var failOnCall: Int?

    func predict() throws {
        calls += 1
        if calls == failOnCall {
            throw BenchmarkError.badResponse("fake failure")
        }
    }
}

/// Advances by a fixed step on every reading, so each timed call measures exactly one step.
private final class SteppingClock: MonotonicClock {
    private var now: UInt64 = 1_000
    let stepNanoseconds: UInt64
    private(set) var readings = 0

    init(stepNanoseconds: UInt64) {
        self.stepNanoseconds = stepNanoseconds
    }

    func nowNanoseconds() -> UInt64 {
        readings += 1
        now += stepNanoseconds
        return now
    }
}

final class BenchmarkRunnerTests: XCTestCase {
    func testWarmupIsUntimedAndRunsAreTimed() throws {
        let predictor = FakePredictor()
        let clock = SteppingClock(stepNanoseconds: 2_500_000)
        let runner = BenchmarkRunner(clock: clock, sleeper: { _ in XCTFail("no cool-down requested") })
        let samples = try runner.run(predictor, config: BenchmarkConfig(warmup: 1, runs: 10))
        XCTAssertEqual(predictor.calls, 11)
        XCTAssertEqual(samples.count, 10)
        XCTAssertEqual(clock.readings, 20)
        XCTAssertEqual(samples, Array(repeating: 2.5, count: 10))
    }

    func testDefaultProtocolIsOneWarmupAndThousandRuns() throws {
        let predictor = FakePredictor()
        let samples = try BenchmarkRunner(clock: SteppingClock(stepNanoseconds: 1)).run(predictor, config: BenchmarkConfig())
        XCTAssertEqual(predictor.calls, 1001)
        XCTAssertEqual(samples.count, 1000)
    }

    func testCooldownSleepsOnceBeforeTheRun() throws {
        var slept: [Double] = []
        let runner = BenchmarkRunner(clock: SteppingClock(stepNanoseconds: 1), sleeper: { slept.append($0) })
        _ = try runner.run(FakePredictor(), config: BenchmarkConfig(warmup: 0, runs: 3, cooldownSeconds: 30))
        XCTAssertEqual(slept, [30])
    }

    func testProgressEndsWithAllRuns() throws {
        var events: [BenchmarkProgress] = []
        let runner = BenchmarkRunner(clock: SteppingClock(stepNanoseconds: 1))
        _ = try runner.run(FakePredictor(), config: BenchmarkConfig(warmup: 2, runs: 250)) { events.append($0) }
        XCTAssertEqual(events.filter { $0.phase == .warmup }.count, 2)
        XCTAssertEqual(events.last, BenchmarkProgress(phase: .timed, completed: 250, total: 250))
    }

    func testPredictorErrorPropagates() {
        let predictor = FakePredictor()
        predictor.failOnCall = 5
        let runner = BenchmarkRunner(clock: SteppingClock(stepNanoseconds: 1))
        XCTAssertThrowsError(try runner.run(predictor, config: BenchmarkConfig(warmup: 1, runs: 10)))
        XCTAssertEqual(predictor.calls, 5)
    }

    func testCancellationStopsTheLoop() {
        let predictor = FakePredictor()
        let runner = BenchmarkRunner(clock: SteppingClock(stepNanoseconds: 1))
        XCTAssertThrowsError(
            try runner.run(predictor, config: BenchmarkConfig(warmup: 1, runs: 100), isCancelled: { predictor.calls >= 4 })
        ) { error in
            XCTAssertEqual(error as? BenchmarkError, .cancelled)
        }
        XCTAssertEqual(predictor.calls, 4)
    }

    func testInvalidConfigIsRejected() {
        let runner = BenchmarkRunner(clock: SteppingClock(stepNanoseconds: 1))
        XCTAssertThrowsError(try runner.run(FakePredictor(), config: BenchmarkConfig(warmup: 1, runs: 0)))
        XCTAssertThrowsError(try runner.run(FakePredictor(), config: BenchmarkConfig(warmup: -1, runs: 5)))
        XCTAssertThrowsError(try runner.run(FakePredictor(), config: BenchmarkConfig(warmup: 1, runs: 5, cooldownSeconds: -1)))
    }
}
