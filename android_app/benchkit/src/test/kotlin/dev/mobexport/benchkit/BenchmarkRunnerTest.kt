package dev.mobexport.benchkit

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/** A monotonic clock the test moves: [FakeModel] advances it by fixed steps per call. */
private class ManualClock : MonotonicClock {
    var now = 1_000L

    override fun nanoTime(): Long = now
}

/**
 * Records every call in order; each step advances the clock: write 1 ms, invoke 3 ms, read 2 ms (so an invoke
 * sample is 3 ms and a round trip 6 ms). Optionally fails on a given invoke, or cancels.
 */
private class FakeModel(
    private val clock: ManualClock,
    private val failOnInvoke: Int? = null,
    private val badOutput: Boolean = false,
) : LoadedModel {
    val calls = mutableListOf<String>()
    var invokes = 0
    var closed = false

    override fun writeInput() {
        calls.add("write")
        clock.now += 1_000_000
    }

    override fun invoke() {
        calls.add("invoke")
        invokes += 1
        clock.now += 3_000_000
        if (invokes == failOnInvoke) {
            throw IllegalStateException("fake failure")
        }
    }

    override fun readOutput() {
        calls.add("read")
        clock.now += 2_000_000
    }

    override fun checkOutput() {
        calls.add("check")
        if (badOutput) {
            throw BenchmarkException("output is not finite")
        }
    }

    override fun close() {
        closed = true
    }
}

class BenchmarkRunnerTest {
    private val clock = ManualClock()

    private fun loaderOf(model: FakeModel, loadNanos: Long = 40_000_000) = ModelLoader {
        clock.now += loadNanos
        model
    }

    @Test
    fun invokeIsTimedAndTheRoundTripRecorded() {
        val model = FakeModel(clock)
        val m = BenchmarkRunner(clock) { throw AssertionError("no cool-down requested") }
            .run(loaderOf(model), BenchmarkConfig(warmup = 2, runs = 5))
        assertArrayEquals(DoubleArray(5) { 3.0 }, m.samplesMs, 0.0)
        assertArrayEquals(DoubleArray(5) { 6.0 }, m.roundTripMs, 0.0)
        assertEquals(40.0, m.loadMs, 0.0)
        assertEquals(2, m.warmup)
        // one checked call, then 2 warm-up calls, then 5 timed: each write -> invoke -> read
        assertEquals(listOf("write", "invoke", "read", "check"), model.calls.take(4))
        assertEquals(8, model.invokes)
        assertEquals(List(7) { listOf("write", "invoke", "read") }.flatten(), model.calls.drop(4))
        assertTrue(model.closed)
    }

    @Test
    fun defaultsAreTheHostProtocol() {
        val model = FakeModel(clock)
        val m = BenchmarkRunner(clock).run(loaderOf(model), BenchmarkConfig())
        assertEquals(20, BenchmarkConfig.DEFAULT_WARMUP)
        assertEquals(20, m.warmup)
        assertEquals(1 + 20 + 1000, model.invokes)
        assertEquals(1000, m.samplesMs.size)
    }

    @Test
    fun thermalStateIsReadAfterLoadBeforeWarmupAndAtTheEnd() {
        val model = FakeModel(clock)
        val readAt = mutableListOf<Int>()
        val m = BenchmarkRunner(clock).run(loaderOf(model), BenchmarkConfig(warmup = 3, runs = 4), {
            readAt.add(model.invokes)
            "state${readAt.size}"
        })
        assertEquals(listOf(0, 1 + 3 + 4), readAt)
        assertEquals("state1", m.thermalStateBefore)
        assertEquals("state2", m.thermalStateAfter)
    }

    @Test
    fun progressIsNeverReportedInsideTheTimedLoop() {
        val model = FakeModel(clock)
        val events = mutableListOf<Pair<BenchmarkProgress, Int>>()
        val runner = BenchmarkRunner(clock)
        runner.run(loaderOf(model), BenchmarkConfig(warmup = 2, runs = 250), progress = { events.add(it to model.invokes) })
        val timed = events.filter { it.first.phase == Phase.TIMED }
        assertEquals(listOf(BenchmarkProgress(Phase.TIMED, 0, 250), BenchmarkProgress(Phase.TIMED, 250, 250)),
            timed.map { it.first })
        assertEquals(listOf(3, 253), timed.map { it.second })
        assertEquals(2, events.count { it.first.phase == Phase.WARMUP })
        assertEquals(250, runner.completedRuns)
    }

    @Test
    fun cooldownSleepsInSlicesBeforeLoading() {
        val slept = mutableListOf<Long>()
        val model = FakeModel(clock)
        BenchmarkRunner(clock) { slept.add(it) }.run(
            loaderOf(model), BenchmarkConfig(warmup = 0, runs = 3, cooldownMillis = 1_100),
        )
        assertEquals(listOf(250L, 250L, 250L, 250L, 100L), slept)
    }

    @Test
    fun cancelStopsCooldownWarmupAndTimedLoop() {
        // during the cool-down: the model is never loaded
        var sleeps = 0
        var loaded = false
        assertThrows(BenchmarkCancelledException::class.java) {
            BenchmarkRunner(clock) { sleeps += 1 }.run(
                { loaded = true; FakeModel(clock) }, BenchmarkConfig(cooldownMillis = 600_000), isCancelled = { sleeps >= 3 },
            )
        }
        assertEquals(3, sleeps)
        assertEquals(false, loaded)
        // during the warm-up, and the model is closed
        val warm = FakeModel(clock)
        assertThrows(BenchmarkCancelledException::class.java) {
            BenchmarkRunner(clock).run(loaderOf(warm), BenchmarkConfig(warmup = 50, runs = 10), isCancelled = { warm.invokes >= 5 })
        }
        assertEquals(5, warm.invokes)
        assertTrue(warm.closed)
        // during the timed loop
        val timed = FakeModel(clock)
        assertThrows(BenchmarkCancelledException::class.java) {
            BenchmarkRunner(clock).run(loaderOf(timed), BenchmarkConfig(warmup = 1, runs = 100), isCancelled = { timed.invokes >= 12 })
        }
        assertEquals(12, timed.invokes)
        assertTrue(timed.closed)
    }

    @Test
    fun modelErrorsPropagateAndCloseTheModel() {
        val failing = FakeModel(clock, failOnInvoke = 5)
        assertThrows(IllegalStateException::class.java) {
            BenchmarkRunner(clock).run(loaderOf(failing), BenchmarkConfig(warmup = 1, runs = 10))
        }
        assertEquals(5, failing.invokes)
        assertTrue(failing.closed)
        val bad = FakeModel(clock, badOutput = true)
        assertThrows(BenchmarkException::class.java) {
            BenchmarkRunner(clock).run(loaderOf(bad), BenchmarkConfig(warmup = 1, runs = 10))
        }
        assertEquals(1, bad.invokes)
        assertTrue(bad.closed)
    }

    @Test
    fun invalidConfigIsRejectedBeforeLoading() {
        val runner = BenchmarkRunner(clock)
        val configs = listOf(
            BenchmarkConfig(runs = 0), BenchmarkConfig(runs = BenchmarkConfig.MAX_RUNS + 1), BenchmarkConfig(warmup = -1),
            BenchmarkConfig(cooldownMillis = -1), BenchmarkConfig(cooldownMillis = 600_001),
        )
        for (config in configs) {
            assertThrows(BenchmarkException::class.java) {
                runner.run({ throw AssertionError("loaded despite a bad config") }, config)
            }
        }
        assertEquals(100_000, BenchmarkConfig.MAX_RUNS)
    }
}
