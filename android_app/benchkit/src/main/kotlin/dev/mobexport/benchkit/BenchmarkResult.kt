package dev.mobexport.benchkit

import org.json.JSONObject

const val SCHEMA_VERSION = "1.0"
const val HARNESS_NAME = "android_app"

/**
 * One benchmark run of one artifact on one device: the record of benchmarks/schema/result.schema.json.
 * [toJsonObject] writes every key, nulls included, each exactly a schema property name: tests/test_apps.py reads
 * its `.field("key", property)` calls with tree-sitter on the host, and ResultEncodingTest checks the encoding
 * against the shared example here.
 */
data class BenchmarkResult(
    val schemaVersion: String = SCHEMA_VERSION,
    val model: String,
    val weights: String,
    val target: String,
    val artifactSha256: String,
    val harness: String = HARNESS_NAME,
    val deviceModel: String,
    val os: String,
    val osVersion: String,
    val chip: String,
    val runtime: String,
    val runtimeVersion: String,
    val computeUnit: String,
    val threads: Int? = null,
    val inputShape: List<Int>,
    val batchSize: Int,
    val warmup: Int,
    val runs: Int,
    val minMs: Double,
    val p50Ms: Double,
    val p90Ms: Double,
    val meanMs: Double,
    val stdMs: Double,
    val maxMs: Double,
    val samplesMs: List<Double>,
    val loadMs: Double? = null,
    val peakRssMb: Double? = null,
    val thermalStateBefore: String? = null,
    val thermalStateAfter: String? = null,
    val validationStatus: String,
    val toolVersions: Map<String, String> = emptyMap(),
    val gitCommit: String? = null,
    val timestamp: String,
    val notes: String? = null,
) {
    /** The record as JSON: one `.field(key, property)` per schema property, in schema order. */
    fun toJsonObject(): JSONObject = JSONObject()
        .field("schema_version", schemaVersion)
        .field("model", model)
        .field("weights", weights)
        .field("target", target)
        .field("artifact_sha256", artifactSha256)
        .field("harness", harness)
        .field("device_model", deviceModel)
        .field("os", os)
        .field("os_version", osVersion)
        .field("chip", chip)
        .field("runtime", runtime)
        .field("runtime_version", runtimeVersion)
        .field("compute_unit", computeUnit)
        .field("threads", threads)
        .field("input_shape", inputShape)
        .field("batch_size", batchSize)
        .field("warmup", warmup)
        .field("runs", runs)
        .field("min_ms", minMs)
        .field("p50_ms", p50Ms)
        .field("p90_ms", p90Ms)
        .field("mean_ms", meanMs)
        .field("std_ms", stdMs)
        .field("max_ms", maxMs)
        .field("samples_ms", samplesMs)
        .field("load_ms", loadMs)
        .field("peak_rss_mb", peakRssMb)
        .field("thermal_state_before", thermalStateBefore)
        .field("thermal_state_after", thermalStateAfter)
        .field("validation_status", validationStatus)
        .field("tool_versions", toolVersions)
        .field("git_commit", gitCommit)
        .field("timestamp", timestamp)
        .field("notes", notes)

    fun toJson(): String = toJsonObject().toString()

    companion object {
        /** Strict: every schema key must be there with its type (unknown keys are refused too). */
        fun fromJson(text: String): BenchmarkResult {
            val o = StrictObject(parseJson(text, "result").asObject("result"))
            val result = fromObject(o)
            o.refuseUnread()
            return result
        }

        private fun fromObject(o: StrictObject) = BenchmarkResult(
            schemaVersion = o.str("schema_version"),
            model = o.str("model"),
            weights = o.str("weights"),
            target = o.str("target"),
            artifactSha256 = o.str("artifact_sha256"),
            harness = o.str("harness"),
            deviceModel = o.str("device_model"),
            os = o.str("os"),
            osVersion = o.str("os_version"),
            chip = o.str("chip"),
            runtime = o.str("runtime"),
            runtimeVersion = o.str("runtime_version"),
            computeUnit = o.str("compute_unit"),
            threads = o.intOrNull("threads"),
            inputShape = o.intList("input_shape"),
            batchSize = o.int("batch_size"),
            warmup = o.int("warmup"),
            runs = o.int("runs"),
            minMs = o.num("min_ms"),
            p50Ms = o.num("p50_ms"),
            p90Ms = o.num("p90_ms"),
            meanMs = o.num("mean_ms"),
            stdMs = o.num("std_ms"),
            maxMs = o.num("max_ms"),
            samplesMs = o.numList("samples_ms"),
            loadMs = o.numOrNull("load_ms"),
            peakRssMb = o.numOrNull("peak_rss_mb"),
            thermalStateBefore = o.strOrNull("thermal_state_before"),
            thermalStateAfter = o.strOrNull("thermal_state_after"),
            validationStatus = o.str("validation_status"),
            toolVersions = o.stringMap("tool_versions"),
            gitCommit = o.strOrNull("git_commit"),
            timestamp = o.str("timestamp"),
            notes = o.strOrNull("notes"),
        )
    }
}

/** What the app knows about the device (Build.MODEL, Build.SOC_MODEL, ...). */
data class DeviceDescription(
    val deviceModel: String,
    val os: String,
    val osVersion: String,
    val chip: String,
)

/** How the run was done, beyond what [Measurement] holds. */
data class RunContext(
    val runtime: String,
    val runtimeVersion: String,
    val computeUnit: String,
    val threads: Int? = null,
    val peakRssMb: Double? = null,
    val toolVersions: Map<String, String> = emptyMap(),
    val notes: String? = null,
)

/** The validation statuses of the schema (the host's `Status` enum). */
enum class ValidationStatus {
    OK,
    CONVERT_FAILED,
    LOAD_FAILED,
    RUN_FAILED,
    MISMATCH,
    UNVALIDATED_NO_RUNTIME,
    SKIPPED,
}

/**
 * Builds the record of one finished run. The app does not compare outputs with PyTorch itself: the
 * validation status is the host's verdict on this artifact from its manifest (UNVALIDATED_NO_RUNTIME if none).
 * samples_ms are the timed invokes; the round trips' summary goes into notes ([roundTripNote]).
 */
fun buildResult(
    measurement: Measurement,
    manifest: ArtifactManifest,
    device: DeviceDescription,
    context: RunContext,
    timestamp: String,
): BenchmarkResult {
    val samples = measurement.samplesMs
    val stats = LatencyStatistics.of(samples)
    val status = ValidationStatus.entries.firstOrNull { it.name == manifest.status }
        ?: ValidationStatus.UNVALIDATED_NO_RUNTIME
    val notes = listOfNotNull(context.notes, roundTripNote(measurement.roundTripMs)).joinToString("; ")
    return BenchmarkResult(
        model = manifest.model,
        weights = manifest.weights ?: "unknown",
        target = manifest.target,
        artifactSha256 = manifest.sha256,
        deviceModel = device.deviceModel,
        os = device.os,
        osVersion = device.osVersion,
        chip = device.chip,
        runtime = context.runtime,
        runtimeVersion = context.runtimeVersion,
        computeUnit = context.computeUnit,
        threads = context.threads,
        inputShape = manifest.input.shape,
        batchSize = manifest.input.shape.firstOrNull() ?: 1,
        warmup = measurement.warmup,
        runs = samples.size,
        minMs = stats.min,
        p50Ms = stats.p50,
        p90Ms = stats.p90,
        meanMs = stats.mean,
        stdMs = stats.std,
        maxMs = stats.max,
        samplesMs = samples.toList(),
        loadMs = measurement.loadMs,
        peakRssMb = context.peakRssMb,
        thermalStateBefore = measurement.thermalStateBefore,
        thermalStateAfter = measurement.thermalStateAfter,
        validationStatus = status.name,
        toolVersions = context.toolVersions,
        gitCommit = manifest.gitCommit,
        timestamp = timestamp,
        notes = notes.ifEmpty { null },
    )
}

/** "timed region: invoke; round trip (write input + invoke + read output) min 1.234 p50 1.300 ms", or null. */
fun roundTripNote(roundTripMs: DoubleArray): String? {
    if (roundTripMs.isEmpty()) {
        return null
    }
    val stats = LatencyStatistics.of(roundTripMs)
    return "timed region: invoke; round trip (write input + invoke + read output) " +
        "min ${"%.4f".format(java.util.Locale.ROOT, stats.min)} p50 ${"%.4f".format(java.util.Locale.ROOT, stats.p50)} ms"
}
