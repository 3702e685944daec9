import BenchmarkKit
import XCTest

/// A monotonic clock the test moves: `FakeModel` advances it by fixed steps per call.
private final class ManualClock: MonotonicClock {
    var now: UInt64 = 1_000

    func nowNanoseconds() -> UInt64 {
        now
    }
}

/// Records every call in order; write 1 ms, invoke 3 ms, read 2 ms (an invoke sample is 3 ms, a round trip 6 ms).
private final class FakeModel: LoadedModel {
    let clock: ManualClock
    var failOnInvoke: Int?
    var badOutput = false
    private(set) var calls: [String] = []
    private(set) var invokes = 0

    init(clock: ManualClock) {
        self.clock = clock
    }

    func writeInput() throws {
        calls.append("write")
        clock.now += 1_000_000
    }

    func invoke() throws {
        calls.append("invoke")
        invokes += 1
        clock.now += 3_000_000
        if invokes == failOnInvoke {
            throw BenchmarkError.badResponse("fake failure")
        }
    }

    func readOutput() throws {
        calls.append("read")
        clock.now += 2_000_000
    }

    func checkOutput() throws {
        calls.append("check")
        if badOutput {
            throw BenchmarkError.badResponse("output is not finite")
        }
    }
}

final class BenchmarkRunnerTests: XCTestCase {
    private let clock = ManualClock()

    private func loader(_ model: FakeModel, loadNanoseconds: UInt64 = 40_000_000) -> () throws -> LoadedModel {
        let clock = self.clock
        return {
            clock.now += loadNanoseconds
            return model
        }
    }

    func testInvokeIsTimedAndTheRoundTripRecorded() throws {
        let model = FakeModel(clock: clock)
        let runner = BenchmarkRunner(clock: clock, sleeper: { _ in XCTFail("no cool-down requested") })
        let m = try runner.run(load: loader(model), config: BenchmarkConfig(warmup: 2, runs: 5))
        XCTAssertEqual(m.samplesMs, Array(repeating: 3.0, count: 5))
        XCTAssertEqual(m.roundTripMs, Array(repeating: 6.0, count: 5))
        XCTAssertEqual(m.loadMs, 40.0)
        XCTAssertEqual(m.warmup, 2)
        XCTAssertEqual(Array(model.calls.prefix(4)), ["write", "invoke", "read", "check"])
        XCTAssertEqual(model.invokes, 8)
    }

    func testDefaultsAreTheHostProtocol() throws {
        let model = FakeModel(clock: clock)
        let m = try BenchmarkRunner(clock: clock).run(load: loader(model), config: BenchmarkConfig())
        XCTAssertEqual(BenchmarkConfig.defaultWarmup, 20)
        XCTAssertEqual(m.warmup, 20)
        XCTAssertEqual(model.invokes, 1 + 20 + 1000)
        XCTAssertEqual(m.samplesMs.count, 1000)
    }

    func testThermalStateIsReadAfterLoadBeforeWarmupAndAtTheEnd() throws {
        let model = FakeModel(clock: clock)
        var readAt: [Int] = []
        let m = try BenchmarkRunner(clock: clock).run(
            load: loader(model), config: BenchmarkConfig(warmup: 3, runs: 4),
            thermalState: {
                readAt.append(model.invokes)
                return "state\(readAt.count)"
            })
        XCTAssertEqual(readAt, [0, 1 + 3 + 4])
        XCTAssertEqual(m.thermalStateBefore, "state1")
        XCTAssertEqual(m.thermalStateAfter, "state2")
    }

    func testProgressIsNeverReportedInsideTheTimedLoop() throws {
        let model = FakeModel(clock: clock)
        var timed: [(BenchmarkProgress, Int)] = []
        let runner = BenchmarkRunner(clock: clock)
        _ = try runner.run(load: loader(model), config: BenchmarkConfig(warmup: 2, runs: 250), progress: { event in
            if event.phase == .timed {
                timed.append((event, model.invokes))
            }
        })
        XCTAssertEqual(timed.map { $0.0 }, [BenchmarkProgress(phase: .timed, completed: 0, total: 250),
                                        BenchmarkProgress(phase: .timed, completed: 250, total: 250)])
        XCTAssertEqual(timed.map { $0.1 }, [3, 253])
        XCTAssertEqual(runner.completedRuns, 250)
    }

    func testCooldownSleepsInSlicesBeforeLoading() throws {
        var slept: [Double] = []
        let model = FakeModel(clock: clock)
        _ = try BenchmarkRunner(clock: clock, sleeper: { slept.append($0) })
            .run(load: loader(model), config: BenchmarkConfig(warmup: 0, runs: 3, cooldownSeconds: 1.1))
        XCTAssertEqual(slept.count, 5)
        XCTAssertEqual(slept.reduce(0, +), 1.1, accuracy: 1e-9)
    }

    func testCancelStopsCooldownWarmupAndTimedLoop() {
        var sleeps = 0
        var loaded = false
        XCTAssertThrowsError(try BenchmarkRunner(clock: clock, sleeper: { _ in sleeps += 1 }).run(
            load: {
                loaded = true
                return FakeModel(clock: self.clock)
            },
            config: BenchmarkConfig(cooldownSeconds: 600), isCancelled: { sleeps >= 3 })) { error in
            XCTAssertEqual(error as? BenchmarkError, .cancelled)
        }
        XCTAssertEqual(sleeps, 3)
        XCTAssertFalse(loaded)
        let warm = FakeModel(clock: clock)
        XCTAssertThrowsError(try BenchmarkRunner(clock: clock).run(
            load: loader(warm), config: BenchmarkConfig(warmup: 50, runs: 10), isCancelled: { warm.invokes >= 5 }))
        XCTAssertEqual(warm.invokes, 5)
        let timed = FakeModel(clock: clock)
        XCTAssertThrowsError(try BenchmarkRunner(clock: clock).run(
            load: loader(timed), config: BenchmarkConfig(warmup: 1, runs: 100), isCancelled: { timed.invokes >= 12 }))
        XCTAssertEqual(timed.invokes, 12)
    }

    func testModelErrorsPropagate() {
        let failing = FakeModel(clock: clock)
        failing.failOnInvoke = 5
        XCTAssertThrowsError(try BenchmarkRunner(clock: clock).run(load: loader(failing), config: BenchmarkConfig(warmup: 1, runs: 10)))
        XCTAssertEqual(failing.invokes, 5)
        let bad = FakeModel(clock: clock)
        bad.badOutput = true
        XCTAssertThrowsError(try BenchmarkRunner(clock: clock).run(load: loader(bad), config: BenchmarkConfig(warmup: 1, runs: 10)))
        XCTAssertEqual(bad.invokes, 1)
    }

    func testInvalidConfigIsRejectedBeforeLoading() {
        let runner = BenchmarkRunner(clock: clock)
        let configs = [BenchmarkConfig(runs: 0), BenchmarkConfig(runs: BenchmarkConfig.maxRuns + 1),
                       BenchmarkConfig(warmup: -1), BenchmarkConfig(cooldownSeconds: -1),
                       BenchmarkConfig(cooldownSeconds: 601)]
        for config in configs {
            XCTAssertThrowsError(try runner.run(load: {
                XCTFail("loaded despite a bad config")
                return FakeModel(clock: self.clock)
            }, config: config))
        }
        XCTAssertEqual(BenchmarkConfig.maxRuns, 100_000)
    }

    func testDedicatedThreadReturnsTheResult() async throws {
        let value = try await runOnDedicatedThread { Thread.isMainThread ? -1 : 42 }
        XCTAssertEqual(value, 42)
    }
}
