package dev.mobexport.benchkit

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

/** Counts calls; optionally fails on a given call. */
private class FakePredictor(private val failOnCall: Int? = null) : Predictor {
    var calls = 0

    override fun predict() {
        calls += 1
        if (calls == failOnCall) {
            throw IllegalStateException("fake failure")
        }
    }
}

/** Advances by a fixed step on every reading, so each timed call measures exactly one step. */
private class SteppingClock(private val stepNanos: Long) : MonotonicClock {
    private var now = 1_000L
    var readings = 0

    override fun nanoTime(): Long {
        readings += 1
        now += stepNanos
        return now
    }
}

class BenchmarkRunnerTest {
    @Test
    fun warmupIsUntimedAndRunsAreTimed() {
        val predictor = FakePredictor()
        val clock = SteppingClock(2_500_000)
        val runner = BenchmarkRunner(clock) { throw AssertionError("no cool-down requested") }
        val samples = runner.run(predictor, BenchmarkConfig(warmup = 1, runs = 10))
        assertEquals(11, predictor.calls)
        assertEquals(20, clock.readings)
        assertArrayEquals(DoubleArray(10) { 2.5 }, samples, 0.0)
    }

    @Test
    fun defaultProtocolIsOneWarmupAndThousandRuns() {
        val predictor = FakePredictor()
        val samples = BenchmarkRunner(SteppingClock(1)).run(predictor, BenchmarkConfig())
        assertEquals(1001, predictor.calls)
        assertEquals(1000, samples.size)
    }

    @Test
    fun cooldownSleepsOnceBeforeTheRun() {
        val slept = mutableListOf<Long>()
        val runner = BenchmarkRunner(SteppingClock(1)) { slept.add(it) }
        runner.run(FakePredictor(), BenchmarkConfig(warmup = 0, runs = 3, cooldownMillis = 30_000))
        assertEquals(listOf(30_000L), slept)
    }

    @Test
    fun progressEndsWithAllRuns() {
        val events = mutableListOf<BenchmarkProgress>()
        BenchmarkRunner(SteppingClock(1)).run(FakePredictor(), BenchmarkConfig(warmup = 2, runs = 250)) {
            events.add(it)
        }
        assertEquals(2, events.count { it.phase == Phase.WARMUP })
        assertEquals(BenchmarkProgress(Phase.TIMED, 250, 250), events.last())
    }

    @Test
    fun predictorErrorPropagates() {
        val predictor = FakePredictor(failOnCall = 5)
        assertThrows(IllegalStateException::class.java) {
            BenchmarkRunner(SteppingClock(1)).run(predictor, BenchmarkConfig(warmup = 1, runs = 10))
        }
        assertEquals(5, predictor.calls)
    }

    @Test
    fun cancellationStopsTheLoop() {
        val predictor = FakePredictor()
        assertThrows(BenchmarkCancelledException::class.java) {
            BenchmarkRunner(SteppingClock(1)).run(predictor, BenchmarkConfig(warmup = 1, runs = 100), { predictor.calls >= 4 })
        }
        assertEquals(4, predictor.calls)
    }

    @Test
    fun invalidConfigIsRejected() {
        val runner = BenchmarkRunner(SteppingClock(1))
        for (config in listOf(BenchmarkConfig(runs = 0), BenchmarkConfig(warmup = -1), BenchmarkConfig(cooldownMillis = -1))) {
            assertThrows(BenchmarkException::class.java) {
                runner.run(FakePredictor(), config)
            }
        }
    }
}
