package dev.mobexport.benchkit

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.IOException

class PendingUploadsTest {
    @get:Rule
    val tmp = TemporaryFolder()

    private fun result(model: String) = buildResult(
        Measurement(doubleArrayOf(1.0, 2.0), doubleArrayOf(1.5, 2.5), 3.0, 20, null, null),
        ManifestTest.sampleManifest().copy(model = model),
        DeviceDescription("Pixel", "Android", "15 (API 35)", "Tensor"),
        RunContext("litert", "1.4.1", "xnnpack"),
        "2025-01-31T12:00:00Z",
    )

    @Test
    fun aFailedUploadIsKeptAndRetried() {
        val queue = PendingUploads(tmp.newFolder("pending"))
        queue.add(result("a"))
        queue.add(result("b"))
        assertEquals(2, queue.pending().size)
        val failed = queue.flush { throw IOException("network is unreachable") }
        assertEquals(FlushReport(posted = 0, kept = 2, rejected = 0, lastError = "network is unreachable"), failed)
        assertEquals(2, queue.pending().size)
        val unavailable = queue.flush { throw HttpStatusException(503, "HTTP 503") }
        assertEquals(2, unavailable.kept)
        val bodies = mutableListOf<String>()
        val ok = queue.flush { bodies.add(it) }
        assertEquals(FlushReport(posted = 2, kept = 0, rejected = 0, lastError = null), ok)
        assertEquals(listOf("a", "b"), bodies.map { BenchmarkResult.fromJson(it).model })
        assertTrue(queue.pending().isEmpty())
    }

    @Test
    fun aRefusedResultMovesAsideAndIsNeverLost() {
        val queue = PendingUploads(tmp.newFolder("pending"))
        queue.add(result("a"))
        val report = queue.flush { throw HttpStatusException(422, "HTTP 422") }
        assertEquals(1, report.rejected)
        assertTrue(queue.pending().isEmpty())
        assertEquals("a", BenchmarkResult.fromJson(queue.rejected().single().readText()).model)
        assertEquals(0, queue.flush { throw AssertionError("a rejected result is not retried") }.posted)
    }

    @Test
    fun unauthorizedIsRetriedLater() {
        val queue = PendingUploads(tmp.newFolder("pending"))
        queue.add(result("a"))
        assertEquals(1, queue.flush { throw HttpStatusException(401, "HTTP 401") }.kept)
        assertEquals(1, queue.pending().size)
        assertTrue(queue.rejected().isEmpty())
    }
}
