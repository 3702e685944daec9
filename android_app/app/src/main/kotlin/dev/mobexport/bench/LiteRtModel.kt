package dev.mobexport.bench

import dev.mobexport.benchkit.BenchmarkException
import dev.mobexport.benchkit.InputTensorPlan
import dev.mobexport.benchkit.Predictor
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
 * Where the Interpreter runs the graph, recorded as `compute_unit`.
 * NPU through LiteRT's CompiledModel API is not in this build: see docs/apps.md.
 */
enum class Accelerator(val computeUnit: String, val title: String) {
    CPU("xnnpack", "CPU (XNNPACK)"),
    GPU("gpu", "GPU delegate"),
    NNAPI("nnapi", "NNAPI (deprecated since Android 15)"),
}

/**
 * The LiteRT side of the protocol: the Interpreter is created once with the chosen accelerator and thread
 * count; input and output buffers are allocated once from the model's tensors, the input filled from the
 * manifest's preprocessing; [predict] is one round trip (input copied in, invoke, output copied out).
 */
class LiteRtPredictor(
    model: File,
    accelerator: Accelerator,
    threads: Int,
    plan: InputTensorPlan,
    values: FloatArray,
) : Predictor, AutoCloseable {
    private val delegate: Delegate? = createDelegate(accelerator)
    private val interpreter: Interpreter
    private val input: ByteBuffer
    private val output: ByteBuffer
    var lastOutputByte: Byte = 0
        private set

    init {
        val options = Interpreter.Options()
            .setNumThreads(threads)
            .setUseXNNPACK(true)
        delegate?.let { options.addDelegate(it) }
        interpreter = try {
            Interpreter(model, options)
        } catch (e: IllegalArgumentException) {
            (delegate as? AutoCloseable)?.close()
            throw BenchmarkException("LiteRT cannot load ${model.name} with ${accelerator.title}: ${e.message}", e)
        }
        val inputTensor = interpreter.getInputTensor(0)
        checkMatches(inputTensor, plan)
        input = ByteBuffer.allocateDirect(inputTensor.numBytes()).order(ByteOrder.nativeOrder())
        fill(inputTensor, plan, values)
        output = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes()).order(ByteOrder.nativeOrder())
    }

    override fun predict() {
        input.rewind()
        output.rewind()
        interpreter.run(input, output)
        lastOutputByte = output.get(0)
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
