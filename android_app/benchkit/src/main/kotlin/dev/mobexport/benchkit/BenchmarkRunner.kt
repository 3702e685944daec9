package dev.mobexport.benchkit

/**
 * One timed round trip on a model that is already loaded and whose input buffer is preallocated:
 * write the input, invoke, read the output. Implemented by the LiteRT predictor in the app and by fakes in tests.
 */
fun interface Predictor {
    fun predict()
}

/** A monotonic nanosecond clock (never the wall clock). */
fun interface MonotonicClock {
    fun nanoTime(): Long
}

/** [System.nanoTime]: monotonic on the JVM and on Android. */
object SystemMonotonicClock : MonotonicClock {
    override fun nanoTime(): Long = System.nanoTime()
}

/** The host harness protocol: optional cool-down, [warmup] untimed calls, then [runs] timed calls. */
data class BenchmarkConfig(
    val warmup: Int = 1,
    val runs: Int = DEFAULT_RUNS,
    val cooldownMillis: Long = 0,
) {
    fun validate() {
        if (warmup < 0) {
            throw BenchmarkException("warm-up must be >= 0, got $warmup")
        }
        if (runs !in 1..MAX_RUNS) {
            throw BenchmarkException("runs must be in 1..$MAX_RUNS, got $runs")
        }
        if (cooldownMillis < 0) {
            throw BenchmarkException("cool-down must be >= 0 ms, got $cooldownMillis")
        }
    }

    companion object {
        const val DEFAULT_RUNS = 1000
        const val MAX_RUNS = 1_000_000
    }
}

enum class Phase {
    COOLDOWN,
    WARMUP,
    TIMED,
}

data class BenchmarkProgress(
    val phase: Phase,
    val completed: Int,
    val total: Int,
)

/** Runs the protocol over any [Predictor]. Samples are milliseconds, in call order. */
class BenchmarkRunner(
    private val clock: MonotonicClock = SystemMonotonicClock,
    private val sleeper: (Long) -> Unit = { Thread.sleep(it) },
) {
    fun run(
        predictor: Predictor,
        config: BenchmarkConfig,
        isCancelled: () -> Boolean = { false },
        progress: (BenchmarkProgress) -> Unit = {},
    ): DoubleArray {
        config.validate()
        if (config.cooldownMillis > 0) {
            progress(BenchmarkProgress(Phase.COOLDOWN, 0, config.runs))
            sleeper(config.cooldownMillis)
        }
        for (i in 0 until config.warmup) {
            predictor.predict()
            progress(BenchmarkProgress(Phase.WARMUP, i + 1, config.warmup))
        }
        val reportEvery = maxOf(1, config.runs / 100)
        val samples = DoubleArray(config.runs)
        for (i in 0 until config.runs) {
            if (isCancelled()) {
                throw BenchmarkCancelledException()
            }
            val start = clock.nanoTime()
            predictor.predict()
            val end = clock.nanoTime()
            samples[i] = (end - start) / 1_000_000.0
            if ((i + 1) % reportEvery == 0 || i + 1 == config.runs) {
                progress(BenchmarkProgress(Phase.TIMED, i + 1, config.runs))
            }
        }
        return samples
    }
}
