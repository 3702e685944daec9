package dev.mobexport.benchkit

import kotlinx.serialization.ExperimentalSerializationApi
import kotlinx.serialization.SerialName
import kotlinx.serialization.Serializable
import kotlinx.serialization.json.Json

const val SCHEMA_VERSION = "1.0"
const val HARNESS_NAME = "android_app"

/**
 * One benchmark run of one artifact on one device: the record of benchmarks/schema/result.schema.json.
 * Every @SerialName is exactly a schema property name (checked by tests/test_apps.py on the host and by
 * ResultEncodingTest here). [ResultJson] writes every key, nulls included.
 */
@Serializable
data class BenchmarkResult(
    @SerialName("schema_version")
    val schemaVersion: String = SCHEMA_VERSION,
    @SerialName("model")
    val model: String,
    @SerialName("weights")
    val weights: String,
    @SerialName("target")
    val target: String,
    @SerialName("artifact_sha256")
    val artifactSha256: String,
    @SerialName("harness")
    val harness: String = HARNESS_NAME,
    @SerialName("device_model")
    val deviceModel: String,
    @SerialName("os")
    val os: String,
    @SerialName("os_version")
    val osVersion: String,
    @SerialName("chip")
    val chip: String,
    @SerialName("runtime")
    val runtime: String,
    @SerialName("runtime_version")
    val runtimeVersion: String,
    @SerialName("compute_unit")
    val computeUnit: String,
    @SerialName("threads")
    val threads: Int? = null,
    @SerialName("input_shape")
    val inputShape: List<Int>,
    @SerialName("batch_size")
    val batchSize: Int,
    @SerialName("warmup")
    val warmup: Int,
    @SerialName("runs")
    val runs: Int,
    @SerialName("min_ms")
    val minMs: Double,
    @SerialName("p50_ms")
    val p50Ms: Double,
    @SerialName("p90_ms")
    val p90Ms: Double,
    @SerialName("mean_ms")
    val meanMs: Double,
    @SerialName("std_ms")
    val stdMs: Double,
    @SerialName("max_ms")
    val maxMs: Double,
    @SerialName("samples_ms")
    val samplesMs: List<Double>,
    @SerialName("load_ms")
    val loadMs: Double? = null,
    @SerialName("peak_rss_mb")
    val peakRssMb: Double? = null,
    @SerialName("thermal_state_before")
    val thermalStateBefore: String? = null,
    @SerialName("thermal_state_after")
    val thermalStateAfter: String? = null,
    @SerialName("validation_status")
    val validationStatus: String,
    @SerialName("tool_versions")
    val toolVersions: Map<String, String> = emptyMap(),
    @SerialName("git_commit")
    val gitCommit: String? = null,
    @SerialName("timestamp")
    val timestamp: String,
    @SerialName("notes")
    val notes: String? = null,
) {
    fun toJson(): String = ResultJson.encodeToString(serializer(), this)

    companion object {
        fun fromJson(text: String): BenchmarkResult = ResultJson.decodeFromString(serializer(), text)
    }
}

/** Defaults and nulls are written, so every payload carries the schema's full key set. */
@OptIn(ExperimentalSerializationApi::class)
val ResultJson: Json = Json {
    encodeDefaults = true
    explicitNulls = true
    ignoreUnknownKeys = false
}

/** What the app knows about the device (Build.MODEL, Build.SOC_MODEL, ...). */
data class DeviceDescription(
    val deviceModel: String,
    val os: String,
    val osVersion: String,
    val chip: String,
)

/** How the run was done, beyond the samples. */
data class RunContext(
    val runtime: String,
    val runtimeVersion: String,
    val computeUnit: String,
    val threads: Int? = null,
    val loadMs: Double? = null,
    val peakRssMb: Double? = null,
    val thermalStateBefore: String? = null,
    val thermalStateAfter: String? = null,
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
 */
fun buildResult(
    samples: DoubleArray,
    config: BenchmarkConfig,
    manifest: ArtifactManifest,
    device: DeviceDescription,
    context: RunContext,
    timestamp: String,
): BenchmarkResult {
    val stats = LatencyStatistics.of(samples)
    val status = ValidationStatus.entries.firstOrNull { it.name == manifest.status }
        ?: ValidationStatus.UNVALIDATED_NO_RUNTIME
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
        warmup = config.warmup,
        runs = samples.size,
        minMs = stats.min,
        p50Ms = stats.p50,
        p90Ms = stats.p90,
        meanMs = stats.mean,
        stdMs = stats.std,
        maxMs = stats.max,
        samplesMs = samples.toList(),
        loadMs = context.loadMs,
        peakRssMb = context.peakRssMb,
        thermalStateBefore = context.thermalStateBefore,
        thermalStateAfter = context.thermalStateAfter,
        validationStatus = status.name,
        toolVersions = context.toolVersions,
        gitCommit = manifest.gitCommit,
        timestamp = timestamp,
        notes = context.notes,
    )
}
