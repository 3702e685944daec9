package dev.mobexport.bench

import android.content.Context
import dev.mobexport.benchkit.ApiClient
import dev.mobexport.benchkit.ArtifactManifest
import dev.mobexport.benchkit.BenchmarkConfig
import dev.mobexport.benchkit.BenchmarkProgress
import dev.mobexport.benchkit.BenchmarkResult
import dev.mobexport.benchkit.BenchmarkRunner
import dev.mobexport.benchkit.InputTensorPlan
import dev.mobexport.benchkit.PendingUploads
import dev.mobexport.benchkit.ProcStatus
import dev.mobexport.benchkit.RunContext
import dev.mobexport.benchkit.buildResult
import dev.mobexport.benchkit.utcTimestamp
import java.io.File

/** Downloads each .tflite once into app storage, keyed and checked by the manifest's sha256 (ApiClient.download). */
class ArtifactRepository(context: Context) {
    private val root = File(context.filesDir, "artifacts")

    fun modelFile(manifest: ArtifactManifest, client: ApiClient): File {
        root.mkdirs()
        return client.download(manifest, File(root, "${manifest.sha256}.tflite"))
    }
}

/** Results not yet taken by the server, kept in app storage until they are (benchkit's PendingUploads). */
fun pendingUploads(context: Context): PendingUploads = PendingUploads(File(context.filesDir, "pending-results"))

/**
 * One measurement: benchkit's protocol over the LiteRT model, then the result record. Blocking; the input values
 * are prepared before the load, so load_ms is the Interpreter's creation with its delegate and buffers only.
 */
class BenchmarkJob(private val context: Context) {
    /** The runner of the measurement in progress: the UI polls its completedRuns during the timed loop. */
    @Volatile
    var runner: BenchmarkRunner? = null
        private set

    fun measure(
        modelFile: File,
        manifest: ArtifactManifest,
        accelerator: Accelerator,
        threads: Int,
        config: BenchmarkConfig,
        isCancelled: () -> Boolean = { false },
        progress: (BenchmarkProgress) -> Unit = {},
    ): BenchmarkResult {
        val plan = InputTensorPlan(manifest)
        val values = plan.normalizedValues(manifest.preprocessing)
        val current = BenchmarkRunner()
        runner = current
        val measurement = current.run(
            loader = { LiteRtModel(modelFile, accelerator, threads, plan, values) },
            config = config,
            thermalState = { DeviceInfo.thermalStatus(context) },
            isCancelled = isCancelled,
            progress = progress,
        )
        val runContext = RunContext(
            runtime = "litert",
            runtimeVersion = DeviceInfo.runtimeVersion(),
            computeUnit = accelerator.computeUnit,
            threads = threads,
            peakRssMb = ProcStatus.peakRssMb(),
            toolVersions = DeviceInfo.toolVersions(),
            notes = listOfNotNull(
                "Interpreter.run copies the input and output inside the timed invoke",
                if (config.cooldownMillis > 0) "cool-down ${config.cooldownMillis / 1000} s before the run" else null,
            ).joinToString("; "),
        )
        return buildResult(measurement, manifest, DeviceInfo.describe(), runContext, utcTimestamp())
    }
}
