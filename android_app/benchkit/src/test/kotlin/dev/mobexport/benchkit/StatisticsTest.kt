package dev.mobexport.benchkit

import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

class StatisticsTest {
    @Test
    fun knownValues() {
        val stats = LatencyStatistics.of(doubleArrayOf(2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0))
        assertEquals(2.0, stats.min, 0.0)
        assertEquals(9.0, stats.max, 0.0)
        assertEquals(5.0, stats.mean, 1e-12)
        assertEquals(2.0, stats.std, 1e-12)
        assertEquals(4.5, stats.p50, 1e-12)
    }

    @Test
    fun percentilesInterpolateLikeNumpy() {
        val sorted = DoubleArray(10) { (it + 1).toDouble() }
        assertEquals(5.5, LatencyStatistics.percentile(sorted, 50.0), 1e-12)
        assertEquals(9.1, LatencyStatistics.percentile(sorted, 90.0), 1e-12)
        assertEquals(1.0, LatencyStatistics.percentile(sorted, 0.0), 0.0)
        assertEquals(10.0, LatencyStatistics.percentile(sorted, 100.0), 0.0)
        assertEquals(3.0, LatencyStatistics.percentile(doubleArrayOf(3.0), 90.0), 0.0)
    }

    @Test
    fun orderDoesNotMatter() {
        val a = LatencyStatistics.of(doubleArrayOf(5.0, 1.0, 3.0, 2.0, 4.0))
        val b = LatencyStatistics.of(doubleArrayOf(1.0, 2.0, 3.0, 4.0, 5.0))
        assertEquals(a, b)
        assertEquals(4.6, a.p90, 1e-12)
    }

    @Test
    fun emptySamplesAreRejected() {
        assertThrows(BenchmarkException::class.java) {
            LatencyStatistics.of(DoubleArray(0))
        }
    }

    @Test
    fun sumsAreExactlyRoundedLikeFsum() {
        // naive left-to-right addition gives 0.0 here, and 1.0000000000000002 for the second list
        assertEquals(1.0, LatencyStatistics.exactSum(doubleArrayOf(1e100, 1.0, -1e100)), 0.0)
        assertEquals(1.0, LatencyStatistics.exactSum(DoubleArray(10) { 0.1 }), 0.0)
        assertEquals(0.0, LatencyStatistics.exactSum(DoubleArray(0)), 0.0)
        // math.fsum([1, 1e-16, 1e-16]) == 1.0000000000000002 (round-half-even correction of the partials)
        assertEquals(1.0000000000000002, LatencyStatistics.exactSum(doubleArrayOf(1.0, 1e-16, 1e-16)), 0.0)
    }

    @Test
    fun negativeOrNonFiniteSamplesAreRejected() {
        for (bad in listOf(-1.0, Double.NaN, Double.POSITIVE_INFINITY)) {
            assertThrows(BenchmarkException::class.java) {
                LatencyStatistics.of(doubleArrayOf(1.0, bad))
            }
        }
    }
}
