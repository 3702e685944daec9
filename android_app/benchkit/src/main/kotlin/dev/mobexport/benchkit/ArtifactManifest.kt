package dev.mobexport.benchkit

import org.json.JSONArray
import org.json.JSONObject
import java.time.Instant
import java.time.temporal.ChronoUnit

/**
 * The model input as the host describes it (manifest.schema.json's tensor); layout is inferred from the shape
 * when absent. A dynamic dimension (null, or a name such as "batch", in the manifest) is -1, which
 * [ArtifactManifest.validate] refuses for that manifest alone.
 */
data class InputDescription(
    val name: String,
    val shape: List<Int>,
    val dtype: String,
    val layout: String? = null,
)

/**
 * How pixels become the input tensor (mirrors exporter.specs.Preprocessing on the host). The manifest writes the
 * centre crop as one side (square) or as [height, width]; [crop] is [height, width] either way.
 */
data class PreprocessingDescription(
    val resize: Int? = null,
    val crop: List<Int>? = null,
    val mean: List<Double>,
    val std: List<Double>,
    val color: String = "RGB",
)

/**
 * One entry of GET /api/v1/artifacts (and the body of .../manifest): the fields of manifest.schema.json the app
 * uses (tests/test_manifest_schema.py checks each key and type against the schema). The input is the `input`
 * object, or the first of `inputs`; [file] is the manifest's `artifact`.
 */
data class ArtifactManifest(
    val model: String,
    val target: String,
    val sha256: String,
    val input: InputDescription,
    val preprocessing: PreprocessingDescription? = null,
    val status: String? = null,
    val weights: String? = null,
    val gitCommit: String? = null,
    val file: String? = null,
) {
    val id: String
        get() = "$model/$target"

    /** "tflite" for tflite-w8a8, "coreml" for coreml-fp16 ... */
    val format: String
        get() = target.substringBefore('-')

    fun validate(): ArtifactManifest {
        if (model.isEmpty() || target.isEmpty()) {
            throw BenchmarkException("The artifact manifest needs a model and a target.")
        }
        if (input.shape.isEmpty() || input.shape.any { it < 1 }) {
            throw BenchmarkException("Input shape ${input.shape} of $id is not a fixed positive shape.")
        }
        if (!SHA256.matches(sha256)) {
            throw BenchmarkException("sha256 of $id is not 64 lower-case hex digits.")
        }
        return this
    }

    companion object {
        private val SHA256 = Regex("^[0-9a-f]{64}$")

        fun parse(text: String): ArtifactManifest = fromJson(parseJson(text, "manifest").asObject("manifest"))

        /**
         * GET /api/v1/artifacts answers a bare array or {"artifacts": [...]}. An entry this app cannot use (e.g. a
         * dynamic dimension in its input shape) is skipped; the others are listed.
         */
        fun parseList(text: String): List<ArtifactManifest> {
            val root = parseJson(text, "artifact list")
            val items = when (root) {
                is JSONArray -> root
                is JSONObject -> root.optJSONArray("artifacts")
                else -> null
            } ?: throw BenchmarkException("The artifact list is not a list of manifests.")
            return (0 until items.length()).map { items.opt(it) }.mapNotNull {
                try {
                    fromJson(it.asObject("artifact"))
                } catch (e: BenchmarkException) {
                    null
                } catch (e: RuntimeException) {
                    null // any other surprise in one entry (a number out of range ...) skips that entry alone
                }
            }
        }

        fun fromJson(obj: JSONObject): ArtifactManifest = ArtifactManifest(
            model = obj.string("model") ?: "",
            target = obj.string("target") ?: "",
            sha256 = obj.string("sha256") ?: "",
            input = inputOf(obj),
            preprocessing = obj.optJSONObject("preprocessing")?.let { preprocessingOf(it) },
            status = obj.string("status"),
            weights = obj.string("weights"),
            gitCommit = obj.string("git_commit"),
            file = obj.string("artifact"),
        ).validate()

        private fun inputOf(obj: JSONObject): InputDescription {
            val nested = obj.optJSONObject("input") ?: obj.optJSONArray("inputs")?.optJSONObject(0)
                ?: throw BenchmarkException("The manifest has no input description (input / inputs).")
            return tensorOf(nested)
        }

        private fun tensorOf(tensor: JSONObject) = InputDescription(
            name = tensor.string("name") ?: "input",
            shape = tensor.dims("shape") ?: emptyList(),
            dtype = tensor.string("dtype") ?: "float32",
            layout = tensor.string("layout"),
        )

        private fun preprocessingOf(obj: JSONObject) = PreprocessingDescription(
            resize = obj.int("resize"),
            crop = cropOf(obj.opt("crop")),
            mean = obj.doubleList("mean") ?: listOf(0.0, 0.0, 0.0),
            std = obj.doubleList("std") ?: listOf(1.0, 1.0, 1.0),
            color = obj.string("color") ?: "RGB",
        )
    }
}

/** RFC 3339 UTC timestamp for the result, e.g. 2025-01-31T12:00:00Z. */
fun utcTimestamp(now: Instant = Instant.now()): String = now.truncatedTo(ChronoUnit.SECONDS).toString()

/** The centre crop as [height, width]: the manifest writes one side (square) or [height, width]. */
private fun cropOf(value: Any?): List<Int>? {
    val side = intOf(value)
    if (side != null) {
        return listOf(side, side)
    }
    val array = value as? JSONArray ?: return null
    return (0 until array.length()).map {
        intOf(array.opt(it)) ?: throw BenchmarkException("crop must hold integers, got ${array.opt(it)}")
    }
}
