package dev.mobexport.benchkit

import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.booleanOrNull
import kotlinx.serialization.json.doubleOrNull
import kotlinx.serialization.json.jsonObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test

class ResultEncodingTest {
    private val schemaKeys: Set<String> = BenchmarkResult.serializer().descriptor.let { d ->
        (0 until d.elementsCount).map { d.getElementName(it) }.toSet()
    }

    /** Read from benchmarks/schema/examples, which the Gradle build adds as a test resources directory. */
    private fun fixture(name: String): String {
        val stream = javaClass.getResourceAsStream("/$name")
        assumeTrue("fixture $name is not in benchmarks/schema/examples yet", stream != null)
        return stream!!.bufferedReader().use { it.readText() }
    }

    /** Numbers compared as doubles (12 and 12.0 are the same JSON value). */
    private fun normalize(element: JsonElement): Any? = when (element) {
        is JsonNull -> null
        is JsonObject -> element.mapValues { normalize(it.value) }
        is JsonArray -> element.map { normalize(it) }
        is JsonPrimitive -> when {
            element.isString -> element.content
            element.booleanOrNull != null -> element.booleanOrNull
            else -> element.doubleOrNull
        }
    }

    @Test
    fun encodingReproducesTheSharedExample() {
        val text = fixture("android_result.json")
        val result = BenchmarkResult.fromJson(text)
        assertEquals(HARNESS_NAME, result.harness)
        assertEquals(SCHEMA_VERSION, result.schemaVersion)
        val example = Json.parseToJsonElement(text).jsonObject
        val encoded = Json.parseToJsonElement(result.toJson()).jsonObject
        assertEquals(schemaKeys, example.keys)
        assertEquals(schemaKeys, encoded.keys)
        assertEquals(normalize(example), normalize(encoded))
    }

    @Test
    fun nullsAndDefaultsAreWritten() {
        val result = buildResult(
            samples = doubleArrayOf(1.5, 1.25, 2.0),
            config = BenchmarkConfig(warmup = 1, runs = 3),
            manifest = ManifestTest.sampleManifest(),
            device = DeviceDescription("Pixel 8 Pro", "Android", "15 (API 35)", "Google Tensor G3"),
            context = RunContext(runtime = "litert", runtimeVersion = "1.4.1", computeUnit = "xnnpack"),
            timestamp = utcTimestamp(),
        )
        val encoded = Json.parseToJsonElement(result.toJson()).jsonObject
        assertEquals(schemaKeys, encoded.keys)
        assertTrue(encoded["threads"] is JsonNull)
        assertEquals(1.25, (encoded["min_ms"] as JsonPrimitive).doubleOrNull!!, 0.0)
        assertEquals("android_app", (encoded["harness"] as JsonPrimitive).content)
        assertEquals("1.0", (encoded["schema_version"] as JsonPrimitive).content)
        assertEquals("UNVALIDATED_NO_RUNTIME", (encoded["validation_status"] as JsonPrimitive).content)
        assertEquals(result, BenchmarkResult.fromJson(result.toJson()))
    }

    @Test
    fun timestampIsUtcInternetDateTime() {
        assertEquals("1970-01-01T00:00:00Z", utcTimestamp(java.time.Instant.ofEpochMilli(123)))
    }
}
