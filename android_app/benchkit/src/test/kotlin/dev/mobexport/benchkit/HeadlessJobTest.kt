package dev.mobexport.benchkit

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class HeadlessJobTest {
    private val delegates = listOf("cpu", "gpu", "nnapi")

    private fun manifest(model: String, target: String = "tflite-fp32") =
        ManifestTest.sampleManifest().copy(model = model, target = target)

    @Test
    fun noServerMeansAnInteractiveLaunch() {
        assertNull(HeadlessJob.parse(emptyMap(), delegates))
        assertNull(HeadlessJob.parse(mapOf("server" to " ", "runs" to "5"), delegates))
    }

    @Test
    fun everyKeyIsRead() {
        val job = HeadlessJob.parse(
            mapOf(
                "server" to "192.168.1.20:8765", "token" to "s3cret", "artifacts" to "a/tflite-fp32, b/tflite-w8a8",
                "runs" to "500", "warmup" to "5", "cooldown" to "30", "threads" to "2", "delegate" to "GPU",
            ),
            delegates,
        )!!
        assertEquals(ServerConfig("http://192.168.1.20:8765", "s3cret"), job.server)
        assertEquals(listOf("a/tflite-fp32", "b/tflite-w8a8"), job.artifacts)
        assertEquals(BenchmarkConfig(warmup = 5, runs = 500, cooldownMillis = 30_000), job.config)
        assertEquals(2, job.threads)
        assertEquals("gpu", job.delegate)
    }

    @Test
    fun defaultsAreTheHostProtocolAndAllArtifacts() {
        val job = HeadlessJob.parse(mapOf("server" to "http://h:1", "artifacts" to "all"), delegates)!!
        assertEquals(BenchmarkConfig(), job.config)
        assertEquals(emptyList<String>(), job.artifacts)
        assertEquals("cpu", job.delegate)
        assertEquals(HeadlessJob.DEFAULT_THREADS, job.threads)
        assertNull(job.server.token)
        val list = listOf(manifest("a"), manifest("b"))
        assertEquals(list, job.select(list))
    }

    @Test
    fun selectKeepsTheAskedOrderAndNamesWhatIsMissing() {
        val job = HeadlessJob.parse(mapOf("server" to "h:1", "artifacts" to "b/tflite-fp32,a/tflite-fp32"), delegates)!!
        val list = listOf(manifest("a"), manifest("b"))
        assertEquals(listOf("b", "a"), job.select(list).map { it.model })
        val e = assertThrows(BenchmarkException::class.java) {
            job.select(listOf(manifest("a")))
        }
        assertTrue(e.message!!, e.message!!.contains("b/tflite-fp32"))
    }

    @Test
    fun badValuesAreRefusedWithTheirName() {
        val cases = mapOf(
            "runs" to mapOf("runs" to "many"),
            "runs must be in" to mapOf("runs" to "1000000"),
            "warm-up" to mapOf("warmup" to "-1"),
            "cool-down" to mapOf("cooldown" to "601"),
            "threads" to mapOf("threads" to "0"),
            "delegate" to mapOf("delegate" to "npu"),
            "artifacts" to mapOf("artifacts" to "justamodel"),
            "Unknown headless argument" to mapOf("run" to "5"),
            "not a server URL" to mapOf("server" to "ftp://h"),
        )
        for ((expected, extra) in cases) {
            val e = assertThrows(BenchmarkException::class.java) {
                HeadlessJob.parse(mapOf("server" to "h:1") + extra, delegates)
            }
            assertTrue("${e.message} should mention $expected", e.message!!.contains(expected))
        }
    }
}
