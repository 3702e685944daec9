package dev.mobexport.benchkit

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Before
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File

/**
 * ApiClient against a real `mobexport serve` on 127.0.0.1, which tests/test_kotlin.py starts with a token and one
 * exported artifact, and names in the system properties mobexport.live.url / .token / .artifact (the artifact's
 * file, to compare the download with). Skipped when run without them (e.g. `gradle test`).
 */
class ApiClientLiveTest {
    @get:Rule
    val tmp = TemporaryFolder()

    private lateinit var url: String
    private lateinit var token: String
    private lateinit var artifact: File

    @Before
    fun server() {
        val u = System.getProperty("mobexport.live.url")
        assumeTrue("no live server (mobexport.live.url)", u != null)
        url = u!!
        token = System.getProperty("mobexport.live.token")!!
        artifact = File(System.getProperty("mobexport.live.artifact")!!)
    }

    private fun client(token: String? = this.token) = ApiClient(ServerConfig.parse(url, token), timeoutMillis = 20_000)

    private fun result(manifest: ArtifactManifest, samples: DoubleArray) = buildResult(
        Measurement(samples, DoubleArray(samples.size) { samples[it] + 0.5 }, 7.5, 20, "nominal", "nominal"),
        manifest,
        DeviceDescription("JVM live test", "Android", "15 (API 35)", "host JVM"),
        RunContext("litert", "1.4.1", "xnnpack", threads = 2, notes = "live ApiClient test"),
        utcTimestamp(),
    )

    @Test
    fun listManifestAndDownloadWithSha256() {
        val list = client().listArtifacts()
        assertEquals(1, list.size)
        val listed = list.single()
        val manifest = client().manifest(listed.model, listed.target)
        assertEquals(listed, manifest)
        assertEquals("tflite", manifest.format)
        val file = client().download(manifest, File(tmp.root, "model.tflite"))
        assertArrayEquals(artifact.readBytes(), file.readBytes())
        assertEquals(manifest.sha256, sha256Hex(file))
    }

    @Test
    fun aDownloadThatDoesNotMatchTheManifestIsRefusedAndRemoved() {
        val manifest = client().listArtifacts().single().copy(sha256 = "0".repeat(64))
        val destination = File(tmp.root, "model.tflite")
        val e = assertThrows(BenchmarkException::class.java) {
            client().download(manifest, destination)
        }
        assertTrue(e.message!!, e.message!!.contains("sha256"))
        assertFalse(destination.exists())
        assertTrue(tmp.root.listFiles()!!.isEmpty())
    }

    @Test
    fun postTheLargestRunCount() {
        val manifest = client().listArtifacts().single()
        val samples = DoubleArray(BenchmarkConfig.MAX_RUNS) { 1.0 + (it % 977) * 1.0e-3 + it * 1.0e-9 }
        val body = result(manifest, samples).toJson()
        assertTrue("${body.length} bytes", body.length > (1 shl 20))
        client().postJson(body)
    }

    @Test
    fun wrongOrMissingTokenIs401() {
        for (bad in listOf("wrong-token", null)) {
            val e = assertThrows(HttpStatusException::class.java) {
                client(bad).listArtifacts()
            }
            assertEquals(401, e.status)
        }
        val manifest = client().listArtifacts().single()
        val e = assertThrows(HttpStatusException::class.java) {
            client("wrong-token").postResult(result(manifest, doubleArrayOf(1.0)))
        }
        assertEquals(401, e.status)
        assertTrue(e.message!!.contains("token"))
    }

    @Test
    fun pendingUploadsReachTheServerOnceItAcceptsThem() {
        val manifest = client().listArtifacts().single()
        val queue = PendingUploads(tmp.newFolder("pending"))
        queue.add(result(manifest, doubleArrayOf(2.0, 3.0, 4.0)))
        val refused = queue.flush(client("wrong-token"))
        assertEquals(1, refused.kept)
        assertEquals(1, queue.pending().size)
        val posted = queue.flush(client())
        assertEquals(FlushReport(posted = 1, kept = 0, rejected = 0, lastError = null), posted)
        assertTrue(queue.pending().isEmpty())
    }
}
