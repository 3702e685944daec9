package dev.mobexport.bench

import android.content.Context
import dev.mobexport.benchkit.ApiClient
import dev.mobexport.benchkit.ArtifactManifest
import dev.mobexport.benchkit.BenchmarkConfig
import dev.mobexport.benchkit.BenchmarkException
import dev.mobexport.benchkit.BenchmarkProgress
import dev.mobexport.benchkit.BenchmarkResult
import dev.mobexport.benchkit.BenchmarkRunner
import dev.mobexport.benchkit.InputTensorPlan
import dev.mobexport.benchkit.Phase
import dev.mobexport.benchkit.ProcStatus
import dev.mobexport.benchkit.RunContext
import dev.mobexport.benchkit.buildResult
import dev.mobexport.benchkit.sha256Hex
import dev.mobexport.benchkit.utcTimestamp
import java.io.File

/** Downloads each .tflite once into app storage, keyed and checked by the manifest's sha256. */
class ArtifactRepository(context: Context) {
    private val root = File(context.filesDir, "artifacts")

    fun modelFile(manifest: ArtifactManifest, client: ApiClient): File {
        root.mkdirs()
        val file = File(root, "${manifest.sha256}.tflite")
        if (file.exists() && sha256Hex(file) == manifest.sha256) {
            return file
        }
        client.download(manifest.model, manifest.target, file)
        val actual = sha256Hex(file)
        if (actual != manifest.sha256) {
            file.delete()
            throw BenchmarkException("Downloaded artifact has sha256 $actual, the manifest says ${manifest.sha256}.")
        }
        return file
    }
}

/** One measurement: load once, preallocate, run the protocol, build the result record. Blocking. */
class BenchmarkJob(private val context: Context) {
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
        val loadStart = System.nanoTime()
        LiteRtPredictor(modelFile, accelerator, threads, plan, values).use { predictor ->
            val loadMs = (System.nanoTime() - loadStart) / 1_000_000.0
            var thermalBefore = DeviceInfo.thermalStatus(context)
            var started = false
            val samples = BenchmarkRunner().run(predictor, config, isCancelled) { event ->
                if (event.phase != Phase.COOLDOWN && !started) {
                    started = true
                    thermalBefore = DeviceInfo.thermalStatus(context)
                }
                progress(event)
            }
            val runContext = RunContext(
                runtime = "litert",
                runtimeVersion = DeviceInfo.runtimeVersion(),
                computeUnit = accelerator.computeUnit,
                threads = threads,
                loadMs = loadMs,
                peakRssMb = ProcStatus.peakRssMb(),
                thermalStateBefore = thermalBefore,
                thermalStateAfter = DeviceInfo.thermalStatus(context),
                toolVersions = DeviceInfo.toolVersions(),
                notes = if (config.cooldownMillis > 0) "cool-down ${config.cooldownMillis / 1000} s before the run" else null,
            )
            return buildResult(samples, config, manifest, DeviceInfo.describe(), runContext, utcTimestamp())
        }
    }
}
