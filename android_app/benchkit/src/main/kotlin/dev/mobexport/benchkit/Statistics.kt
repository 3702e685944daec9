package dev.mobexport.benchkit

import kotlin.math.floor
import kotlin.math.sqrt

/**
 * Latency statistics of one run in milliseconds, computed exactly like the host harness: percentiles
 * interpolate linearly between closest ranks (numpy's default `linear` method) and [std] is the population
 * standard deviation (ddof = 0). The minimum is the headline number.
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
            val sorted = samples.sortedArray()
            val mean = samples.sum() / samples.size
            val variance = samples.sumOf { (it - mean) * (it - mean) } / samples.size
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
    }
}
