package dev.mobexport.benchkit

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test

class ResultEncodingTest {
    /** Read from benchmarks/schema/examples, which the Gradle build (and the host's kotlinc run) puts on the test classpath. */
    private fun fixture(name: String): String {
        val stream = javaClass.getResourceAsStream("/$name")
        assumeTrue("fixture $name is not in benchmarks/schema/examples yet", stream != null)
        return stream!!.bufferedReader().use { it.readText() }
    }

    @Suppress("UNCHECKED_CAST")
    private fun plainObject(text: String): Map<String, Any?> = parsePlainJson(text) as Map<String, Any?>

    private fun sample(samples: DoubleArray = doubleArrayOf(1.5, 1.25, 2.0)) = buildResult(
        measurement = Measurement(samples, DoubleArray(samples.size) { samples[it] + 1.0 }, 12.5, 20, "nominal", "light"),
        manifest = ManifestTest.sampleManifest(),
        device = DeviceDescription("Pixel 8 Pro", "Android", "15 (API 35)", "Google Tensor G3"),
        context = RunContext(runtime = "litert", runtimeVersion = "1.4.1", computeUnit = "xnnpack"),
        timestamp = utcTimestamp(),
    )

    @Test
    fun encodingReproducesTheSharedExample() {
        val text = fixture("android_result.json")
        val result = BenchmarkResult.fromJson(text)
        assertEquals(HARNESS_NAME, result.harness)
        assertEquals(SCHEMA_VERSION, result.schemaVersion)
        val example = plainObject(text)
        val encoded = plainObject(result.toJson())
        assertEquals(example.keys, encoded.keys)
        assertEquals(example, encoded)
    }

    @Test
    fun nullsAndDefaultsAreWritten() {
        val result = sample()
        val encoded = plainObject(result.toJson())
        assertEquals(34, encoded.size)
        assertTrue(encoded.containsKey("threads"))
        assertNull(encoded["threads"])
        assertNull(encoded["git_commit"])
        assertEquals(1.25, encoded["min_ms"])
        assertEquals(12.5, encoded["load_ms"])
        assertEquals(20.0, encoded["warmup"])
        assertEquals("nominal", encoded["thermal_state_before"])
        assertEquals("android_app", encoded["harness"])
        assertEquals("1.0", encoded["schema_version"])
        assertEquals("UNVALIDATED_NO_RUNTIME", encoded["validation_status"])
        assertEquals(result, BenchmarkResult.fromJson(result.toJson()))
    }

    @Test
    fun theRoundTripGoesIntoNotes() {
        val notes = sample().notes!!
        assertTrue(notes, notes.startsWith("timed region: invoke; round trip (write input + invoke + read output) min 2.2500 p50 2.5000 ms"))
    }

    @Test
    fun decodingIsStrict() {
        val good = sample().toJsonObject()
        for (mutate in listOf<(org.json.JSONObject) -> Unit>(
            { it.remove("runs") },
            { it.put("runs", "10") },
            { it.put("runs", 1.5) },
            { it.put("unknown", 1) },
            { it.put("samples_ms", org.json.JSONArray().put("x")) },
        )) {
            val copy = org.json.JSONObject(good.toString())
            mutate(copy)
            assertThrows(BenchmarkException::class.java) {
                BenchmarkResult.fromJson(copy.toString())
            }
        }
        assertThrows(BenchmarkException::class.java) {
            BenchmarkResult.fromJson("{not json")
        }
    }

    @Test
    fun nonFiniteSamplesAreRefused() {
        assertThrows(BenchmarkException::class.java) {
            sample(doubleArrayOf(1.0, Double.NaN))
        }
    }

    @Test
    fun timestampIsUtcInternetDateTime() {
        assertEquals("1970-01-01T00:00:00Z", utcTimestamp(java.time.Instant.ofEpochMilli(123)))
    }
}
