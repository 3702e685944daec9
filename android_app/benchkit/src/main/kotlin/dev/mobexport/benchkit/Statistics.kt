package dev.mobexport.benchkit

import kotlin.math.floor
import kotlin.math.sqrt

/**
 * Latency statistics of one run in milliseconds, computed exactly like the host harness: percentiles
 * interpolate linearly between closest ranks (numpy's default `linear` method), sums are exactly rounded (Python's
 * math.fsum, which benchmarks/results.py uses) and [std] is the population standard deviation (ddof = 0), so the
 * same samples give the host's numbers bit for bit. The minimum is the headline number.
 */
data class LatencyStatistics(
    val min: Double,
    val p50: Double,
    val p90: Double,
    val mean: Double,
    val std: Double,
    val max: Double,
) {
    companion object {
        fun of(samples: DoubleArray): LatencyStatistics {
            if (samples.isEmpty()) {
                throw BenchmarkException("No latency samples were recorded.")
            }
            if (samples.any { !it.isFinite() || it < 0.0 }) {
                throw BenchmarkException("Latency samples must be finite and non-negative.")
            }
            val sorted = samples.sortedArray()
            val mean = exactSum(samples) / samples.size
            val variance = exactSum(DoubleArray(samples.size) { (samples[it] - mean) * (samples[it] - mean) }) / samples.size
            return LatencyStatistics(
                min = sorted.first(),
                p50 = percentile(sorted, 50.0),
                p90 = percentile(sorted, 90.0),
                mean = mean,
                std = sqrt(variance),
                max = sorted.last(),
            )
        }

        /** The q-th percentile (0..100) of already sorted values, linear interpolation. */
        fun percentile(sorted: DoubleArray, q: Double): Double {
            require(sorted.isNotEmpty()) { "percentile of no values" }
            require(q in 0.0..100.0) { "percentile $q outside 0..100" }
            val rank = q / 100.0 * (sorted.size - 1)
            val lower = floor(rank).toInt()
            val upper = minOf(lower + 1, sorted.size - 1)
            return sorted[lower] + (sorted[upper] - sorted[lower]) * (rank - lower)
        }

        /**
         * The correctly rounded sum of finite values: Shewchuk's partials, as CPython's math.fsum computes it
         * (including its round-half-even correction), so the mean and std equal the host's.
         */
        fun exactSum(values: DoubleArray): Double {
            val partials = ArrayList<Double>()
            for (value in values) {
                var x = value
                var i = 0
                for (j in partials.indices) {
                    var y = partials[j]
                    if (Math.abs(x) < Math.abs(y)) {
                        val t = x
                        x = y
                        y = t
                    }
                    val hi = x + y
                    val lo = y - (hi - x)
                    if (lo != 0.0) {
                        partials[i] = lo
                        i += 1
                    }
                    x = hi
                }
                while (partials.size > i) {
                    partials.removeAt(partials.size - 1)
                }
                partials.add(x)
            }
            return roundPartials(partials)
        }

        private fun roundPartials(partials: List<Double>): Double {
            var n = partials.size
            if (n == 0) {
                return 0.0
            }
            n -= 1
            var hi = partials[n]
            var lo = 0.0
            while (n > 0) {
                val x = hi
                n -= 1
                val y = partials[n]
                hi = x + y
                lo = y - (hi - x)
                if (lo != 0.0) {
                    break
                }
            }
            if (n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0))) {
                val y = lo * 2
                val x = hi + y
                if (y == x - hi) {
                    hi = x
                }
            }
            return hi
        }
    }
}
