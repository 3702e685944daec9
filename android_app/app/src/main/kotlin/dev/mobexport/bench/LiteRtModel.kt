package dev.mobexport.bench

import dev.mobexport.benchkit.BenchmarkException
import dev.mobexport.benchkit.InputTensorPlan
import dev.mobexport.benchkit.LoadedModel
import dev.mobexport.benchkit.TensorDType
import dev.mobexport.benchkit.quantize
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Where the Interpreter runs the graph, recorded as `compute_unit`; [key] is the headless `delegate` value.
 * NPU through LiteRT's CompiledModel API is not in this build: see docs/apps.md.
 */
enum class Accelerator(val computeUnit: String, val title: String, val key: String) {
    CPU("xnnpack", "CPU (XNNPACK)", "cpu"),
    GPU("gpu", "GPU delegate", "gpu"),
    NNAPI("nnapi", "NNAPI (deprecated since Android 15)", "nnapi"),
    ;

    companion object {
        fun ofKey(key: String): Accelerator = entries.first { it.key == key }
    }
}

/**
 * The LiteRT side of the protocol. Creating it is the load (`load_ms`): the Interpreter with the chosen delegate
 * and thread count, the input checked against the manifest, the input and output buffers allocated and the
 * input filled once from the manifest's preprocessing. If any of that fails, the interpreter and the delegate
 * are closed before the error propagates (nothing leaks).
 *
 * [writeInput] rewinds the prepared direct buffers, [invoke] is `Interpreter.run` and [readOutput] reads the
 * output buffer. The Interpreter API copies the input into its tensor and the output out of it inside `run`
 * (it has no separate invoke), so those two copies are in the timed region here; no shape check, conversion or
 * allocation of this app's is.
 */
class LiteRtModel(
    model: File,
    accelerator: Accelerator,
    threads: Int,
    plan: InputTensorPlan,
    values: FloatArray,
) : LoadedModel {
    private val delegate: Delegate?
    private val interpreter: Interpreter
    private val input: ByteBuffer
    private val output: ByteBuffer
    private val outputType: DataType
    var lastOutputByte: Byte = 0
        private set

    init {
        delegate = createDelegate(accelerator)
        var created: Interpreter? = null
        try {
            val options = Interpreter.Options()
                .setNumThreads(threads)
                .setUseXNNPACK(true)
            delegate?.let { options.addDelegate(it) }
            created = try {
                Interpreter(model, options)
            } catch (e: IllegalArgumentException) {
                throw BenchmarkException("LiteRT cannot load ${model.name} with ${accelerator.title}: ${e.message}", e)
            }
            interpreter = created
            val inputTensor = interpreter.getInputTensor(0)
            checkMatches(inputTensor, plan)
            input = ByteBuffer.allocateDirect(inputTensor.numBytes()).order(ByteOrder.nativeOrder())
            fill(inputTensor, plan, values)
            val outputTensor = interpreter.getOutputTensor(0)
            outputType = outputTensor.dataType()
            output = ByteBuffer.allocateDirect(outputTensor.numBytes()).order(ByteOrder.nativeOrder())
        } catch (e: Throwable) {
            created?.close()
            (delegate as? AutoCloseable)?.close()
            throw e
        }
    }

    override fun writeInput() {
        input.rewind()
        output.rewind()
    }

    override fun invoke() {
        interpreter.run(input, output)
    }

    override fun readOutput() {
        lastOutputByte = output.get(0)
    }

    /** The first output must be there and, for a float output, finite (as the host's first checked run). */
    override fun checkOutput() {
        if (output.capacity() == 0) {
            throw BenchmarkException("The model produced no output.")
        }
        if (outputType == DataType.FLOAT32) {
            val floats = output.duplicate().order(ByteOrder.nativeOrder()).apply { rewind() }.asFloatBuffer()
            for (i in 0 until floats.limit()) {
                if (!floats.get(i).isFinite()) {
                    throw BenchmarkException("The model's first output holds a non-finite value at $i.")
                }
            }
        }
    }

    override fun close() {
        interpreter.close()
        (delegate as? AutoCloseable)?.close()
    }

    private fun checkMatches(tensor: Tensor, plan: InputTensorPlan) {
        val shape = tensor.shape().toList()
        if (shape != plan.shape) {
            throw BenchmarkException("The model's input shape $shape differs from the manifest's ${plan.shape}.")
        }
        val expected = when (plan.dtype) {
            TensorDType.FLOAT32 -> DataType.FLOAT32
            TensorDType.INT8 -> DataType.INT8
            TensorDType.UINT8 -> DataType.UINT8
            TensorDType.FLOAT16 -> throw BenchmarkException("float16 model inputs are not supported by the Interpreter API.")
        }
        if (tensor.dataType() != expected) {
            throw BenchmarkException("The model's input is ${tensor.dataType()}, the manifest says ${plan.dtype}.")
        }
    }

    private fun fill(tensor: Tensor, plan: InputTensorPlan, values: FloatArray) {
        if (plan.dtype == TensorDType.FLOAT32) {
            input.asFloatBuffer().put(values)
        } else {
            val params = tensor.quantizationParams()
            input.put(quantize(values, params.scale, params.zeroPoint, plan.dtype))
        }
        input.rewind()
    }

    private companion object {
        fun createDelegate(accelerator: Accelerator): Delegate? = when (accelerator) {
            Accelerator.CPU -> null
            Accelerator.GPU -> {
                val compatibility = CompatibilityList()
                try {
                    if (!compatibility.isDelegateSupportedOnThisDevice) {
                        throw BenchmarkException("The LiteRT GPU delegate is not supported on this device.")
                    }
                    GpuDelegate(compatibility.bestOptionsForThisDevice)
                } finally {
                    compatibility.close()
                }
            }
            Accelerator.NNAPI -> NnApiDelegate()
        }
    }
}
