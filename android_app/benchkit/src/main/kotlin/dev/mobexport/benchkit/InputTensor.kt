package dev.mobexport.benchkit

import kotlin.math.roundToInt

enum class TensorDType {
    FLOAT32,
    FLOAT16,
    INT8,
    UINT8,
    ;

    companion object {
        /** Accepts the spellings the host tools use: float32 / fp32 / FLOAT32, int8, uint8 ... */
        fun fromManifest(value: String): TensorDType = when (value.lowercase()) {
            "float32", "fp32", "float", "f32" -> FLOAT32
            "float16", "fp16", "half", "f16" -> FLOAT16
            "int8", "i8" -> INT8
            "uint8", "u8" -> UINT8
            else -> throw BenchmarkException("Unsupported input dtype '$value'.")
        }
    }
}

enum class TensorLayout {
    NCHW,
    NHWC,
    ;

    companion object {
        /** The manifest's layout, or inferred from a 4-D shape with 3 channels. */
        fun of(value: String?, shape: List<Int>): TensorLayout {
            if (value != null) {
                return entries.firstOrNull { it.name == value.uppercase() }
                    ?: throw BenchmarkException("Unsupported input layout '$value'.")
            }
            if (shape.size != 4) {
                throw BenchmarkException("Cannot infer the layout of a ${shape.size}-D input $shape.")
            }
            return if (shape[3] == 3 && shape[1] != 3) NHWC else NCHW
        }
    }
}

/** The input to preallocate for a manifest: shape, dtype and layout come from the host, never from the app. */
class InputTensorPlan(manifest: ArtifactManifest) {
    val name: String = manifest.input.name
    val shape: List<Int> = manifest.input.shape
    val dtype: TensorDType = TensorDType.fromManifest(manifest.input.dtype)
    val layout: TensorLayout = TensorLayout.of(manifest.input.layout, shape)

    init {
        if (shape.size != 4) {
            throw BenchmarkException("Expected a 4-D image input, got shape $shape.")
        }
    }

    val elementCount: Int
        get() = shape.fold(1) { acc, d -> acc * d }

    val batch: Int
        get() = shape[0]

    val channels: Int
        get() = if (layout == TensorLayout.NCHW) shape[1] else shape[3]

    val height: Int
        get() = if (layout == TensorLayout.NCHW) shape[2] else shape[1]

    val width: Int
        get() = if (layout == TensorLayout.NCHW) shape[3] else shape[2]

    /** Row-major offset of element (n, c, y, x) in this layout. */
    fun offset(n: Int, c: Int, y: Int, x: Int): Int = when (layout) {
        TensorLayout.NCHW -> ((n * channels + c) * height + y) * width + x
        TensorLayout.NHWC -> ((n * height + y) * width + x) * channels + c
    }

    /**
     * A deterministic synthetic image of the input's size, normalised with the manifest's mean/std
     * ((pixel / 255 - mean[c]) / std[c]) and laid out in the input's layout. Latency does not depend on the
     * pixel values; the real preprocessing keeps activations in the range the model was exported for.
     */
    fun normalizedValues(preprocessing: PreprocessingDescription?): FloatArray {
        val mean = preprocessing?.mean ?: List(channels) { 0.0 }
        val std = preprocessing?.std ?: List(channels) { 1.0 }
        if (mean.size != channels || std.size != channels || std.any { it == 0.0 }) {
            throw BenchmarkException("mean/std need $channels values with std != 0.")
        }
        val values = FloatArray(elementCount)
        for (n in 0 until batch) {
            for (c in 0 until channels) {
                for (y in 0 until height) {
                    for (x in 0 until width) {
                        val pixel = ((x * 7 + y * 13 + c * 29 + n * 31) % 256).toDouble()
                        values[offset(n, c, y, x)] = ((pixel / 255.0 - mean[c]) / std[c]).toFloat()
                    }
                }
            }
        }
        return values
    }
}

/** Affine quantisation of float values for int8/uint8 model inputs: q = round(v / scale) + zeroPoint. */
fun quantize(values: FloatArray, scale: Float, zeroPoint: Int, dtype: TensorDType): ByteArray {
    if (scale <= 0f) {
        throw BenchmarkException("Quantised input needs a positive scale, got $scale.")
    }
    val (lo, hi) = when (dtype) {
        TensorDType.INT8 -> -128 to 127
        TensorDType.UINT8 -> 0 to 255
        else -> throw BenchmarkException("quantize() is for int8/uint8 inputs, not $dtype.")
    }
    return ByteArray(values.size) { i ->
        ((values[i] / scale).roundToInt() + zeroPoint).coerceIn(lo, hi).toByte()
    }
}
