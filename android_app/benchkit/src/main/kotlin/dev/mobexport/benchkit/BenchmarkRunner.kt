package dev.mobexport.benchkit

import java.util.concurrent.atomic.AtomicInteger

/**
 * A model the runtime has loaded, its input and output buffers allocated and the input values prepared.
 * Implemented by the LiteRT model in the app and by fakes in tests.
 */
interface LoadedModel : AutoCloseable {
    /** Copies the prepared input into the runtime's input buffer: before the timer starts. */
    fun writeInput()

    /** Runs the model once: the timed region. */
    fun invoke()

    /** Copies the output out of the runtime: after the timer stops. */
    fun readOutput()

    /** Called once, after the first (untimed) call's [readOutput]: throws when the output is empty or not finite. */
    fun checkOutput() {}
}

/**
 * Creates the runtime's model object from the artifact file, which is already on disk and checked. The time this
 * takes is `load_ms` (see docs/apps.md: the same span on the host, Android and iOS).
 */
fun interface ModelLoader {
    fun load(): LoadedModel
}

/** A monotonic nanosecond clock (never the wall clock). */
fun interface MonotonicClock {
    fun nanoTime(): Long
}

/** [System.nanoTime]: monotonic on the JVM and on Android. */
object SystemMonotonicClock : MonotonicClock {
    override fun nanoTime(): Long = System.nanoTime()
}

/**
 * The host harness protocol (benchmarks/harness.py): optional cool-down, load (timed), one checked call plus
 * [warmup] untimed calls, then [runs] timed calls. The defaults are the host's (`mobexport bench`).
 */
data class BenchmarkConfig(
    val warmup: Int = DEFAULT_WARMUP,
    val runs: Int = DEFAULT_RUNS,
    val cooldownMillis: Long = 0,
) {
    fun validate(): BenchmarkConfig {
        if (warmup !in 0..MAX_WARMUP) {
            throw BenchmarkException("warm-up must be in 0..$MAX_WARMUP, got $warmup")
        }
        if (runs !in 1..MAX_RUNS) {
            throw BenchmarkException("runs must be in 1..$MAX_RUNS, got $runs")
        }
        if (cooldownMillis !in 0..MAX_COOLDOWN_MILLIS) {
            throw BenchmarkException("cool-down must be in 0..${MAX_COOLDOWN_MILLIS / 1000} s, got ${cooldownMillis / 1000} s")
        }
        return this
    }

    companion object {
        const val DEFAULT_WARMUP = 20
        const val DEFAULT_RUNS = 1000

        /** result.schema.json's samples_ms maxItems: the server stores at most this many samples per record. */
        const val MAX_RUNS = 100_000
        const val MAX_WARMUP = 10_000
        const val MAX_COOLDOWN_MILLIS = 600_000L
    }
}

enum class Phase {
    COOLDOWN,
    LOADING,
    WARMUP,
    TIMED,
}

/** Reported between steps, never from inside the timed loop (poll [BenchmarkRunner.completedRuns] there). */
data class BenchmarkProgress(
    val phase: Phase,
    val completed: Int,
    val total: Int,
)

/** What one protocol run measured; [samplesMs] are the timed invokes, [roundTripMs] the full round trips. */
class Measurement(
    val samplesMs: DoubleArray,
    val roundTripMs: DoubleArray,
    val loadMs: Double,
    val warmup: Int,
    val thermalStateBefore: String?,
    val thermalStateAfter: String?,
)

/**
 * Runs the protocol over any [ModelLoader]. Per timed run: write the input, start the timer, invoke, stop the
 * timer, read the output (as LiteRT's benchmark_model does); the round trip from before the write to after the
 * read is recorded too. The thermal state is read after loading and before the warm-up, and again at the end.
 */
class BenchmarkRunner(
    private val clock: MonotonicClock = SystemMonotonicClock,
    private val sleeper: (Long) -> Unit = { Thread.sleep(it) },
) {
    private val completed = AtomicInteger(0)

    /** Timed runs finished so far: a plain counter the UI may poll while the loop runs. */
    val completedRuns: Int
        get() = completed.get()

    fun run(
        loader: ModelLoader,
        config: BenchmarkConfig,
        thermalState: () -> String? = { null },
        isCancelled: () -> Boolean = { false },
        progress: (BenchmarkProgress) -> Unit = {},
    ): Measurement {
        config.validate()
        completed.set(0)
        coolDown(config.cooldownMillis, isCancelled, progress)
        checkCancelled(isCancelled)
        progress(BenchmarkProgress(Phase.LOADING, 0, 1))
        val loadStart = clock.nanoTime()
        loader.load().use { model ->
            val loadMs = millis(clock.nanoTime() - loadStart)
            val before = thermalState()
            warmUp(model, config.warmup, isCancelled, progress)
            progress(BenchmarkProgress(Phase.TIMED, 0, config.runs))
            val samples = DoubleArray(config.runs)
            val roundTrips = DoubleArray(config.runs)
            for (i in 0 until config.runs) {
                if (isCancelled()) {
                    throw BenchmarkCancelledException()
                }
                val t0 = clock.nanoTime()
                model.writeInput()
                val t1 = clock.nanoTime()
                model.invoke()
                val t2 = clock.nanoTime()
                model.readOutput()
                val t3 = clock.nanoTime()
                samples[i] = millis(t2 - t1)
                roundTrips[i] = millis(t3 - t0)
                completed.lazySet(i + 1)
            }
            progress(BenchmarkProgress(Phase.TIMED, config.runs, config.runs))
            return Measurement(samples, roundTrips, loadMs, config.warmup, before, thermalState())
        }
    }

    private fun coolDown(millis: Long, isCancelled: () -> Boolean, progress: (BenchmarkProgress) -> Unit) {
        if (millis <= 0) {
            return
        }
        val seconds = ((millis + 999) / 1000).toInt()
        var left = millis
        while (left > 0) {
            checkCancelled(isCancelled)
            progress(BenchmarkProgress(Phase.COOLDOWN, seconds - ((left + 999) / 1000).toInt(), seconds))
            val step = minOf(left, COOLDOWN_SLICE_MILLIS)
            sleeper(step)
            left -= step
        }
    }

    private fun warmUp(model: LoadedModel, warmup: Int, isCancelled: () -> Boolean, progress: (BenchmarkProgress) -> Unit) {
        for (i in 0..warmup) {
            checkCancelled(isCancelled)
            model.writeInput()
            model.invoke()
            model.readOutput()
            if (i == 0) {
                model.checkOutput()
            } else {
                progress(BenchmarkProgress(Phase.WARMUP, i, warmup))
            }
        }
    }

    private fun checkCancelled(isCancelled: () -> Boolean) {
        if (isCancelled()) {
            throw BenchmarkCancelledException()
        }
    }

    private companion object {
        const val COOLDOWN_SLICE_MILLIS = 250L

        fun millis(nanos: Long): Double = nanos / 1_000_000.0
    }
}
