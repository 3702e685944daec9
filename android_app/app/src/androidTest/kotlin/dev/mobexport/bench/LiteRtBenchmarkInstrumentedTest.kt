package dev.mobexport.bench

import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import dev.mobexport.benchkit.ArtifactManifest
import dev.mobexport.benchkit.BenchmarkConfig
import dev.mobexport.benchkit.BenchmarkException
import dev.mobexport.benchkit.BenchmarkResult
import dev.mobexport.benchkit.HARNESS_NAME
import dev.mobexport.benchkit.InputTensorPlan
import dev.mobexport.benchkit.sha256Hex
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import java.io.File

/**
 * Runs the real protocol with LiteRT on the device, on a 4 KB test model (tiny_conv.tflite: conv 3→8,
 * ReLU, global pool, linear 8→10, input 1x3x32x32 float32) shipped as an androidTest asset with its manifest.
 */
@RunWith(AndroidJUnit4::class)
class LiteRtBenchmarkInstrumentedTest {
    private val testContext = InstrumentationRegistry.getInstrumentation().context
    private val appContext = InstrumentationRegistry.getInstrumentation().targetContext

    private fun manifest(): ArtifactManifest =
        ArtifactManifest.parse(testContext.assets.open("tiny_conv.manifest.json").bufferedReader().use { it.readText() })

    private fun modelFile(): File {
        val file = File(appContext.cacheDir, "tiny_conv.tflite")
        testContext.assets.open("tiny_conv.tflite").use { input ->
            file.outputStream().use { output -> input.copyTo(output) }
        }
        return file
    }

    @Test
    fun assetMatchesItsManifest() {
        assertEquals(manifest().sha256, sha256Hex(modelFile()))
    }

    @Test
    fun cpuRunFollowsTheProtocolAndEncodesEveryKey() {
        val config = BenchmarkConfig(warmup = 3, runs = 20)
        val result = BenchmarkJob(appContext).measure(modelFile(), manifest(), Accelerator.CPU, 2, config)
        assertEquals(20, result.runs)
        assertEquals(20, result.samplesMs.size)
        assertEquals(3, result.warmup)
        assertTrue(result.loadMs!! > 0.0)
        assertTrue(result.notes!!.contains("round trip"))
        assertEquals(HARNESS_NAME, result.harness)
        assertEquals("xnnpack", result.computeUnit)
        assertEquals(listOf(1, 3, 32, 32), result.inputShape)
        assertTrue(result.minMs > 0.0 && result.minMs <= result.p50Ms && result.p50Ms <= result.maxMs)
        assertTrue(result.deviceModel.isNotEmpty() && result.chip.isNotEmpty())
        assertEquals(result, BenchmarkResult.fromJson(result.toJson()))
    }

    @Test
    fun modelRunsWriteInvokeRead() {
        val manifest = manifest()
        val plan = InputTensorPlan(manifest)
        LiteRtModel(modelFile(), Accelerator.CPU, 1, plan, plan.normalizedValues(manifest.preprocessing)).use { model ->
            repeat(3) {
                model.writeInput()
                model.invoke()
                model.readOutput()
            }
            model.checkOutput()
        }
    }

    @Test
    fun manifestShapeMismatchIsAClearError() {
        val manifest = manifest()
        val wrong = manifest.copy(input = manifest.input.copy(shape = listOf(1, 3, 64, 64)))
        val plan = InputTensorPlan(wrong)
        assertThrows(BenchmarkException::class.java) {
            LiteRtModel(modelFile(), Accelerator.CPU, 1, plan, plan.normalizedValues(wrong.preprocessing))
        }
    }
}
