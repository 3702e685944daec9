package dev.mobexport.benchkit

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Test

class ManifestTest {
    companion object {
        val SHA = "ab".repeat(32)

        fun sampleManifest(layout: String? = "NCHW", shape: List<Int> = listOf(1, 3, 4, 5)) = ArtifactManifest(
            model = "mobileone_s0",
            target = "tflite-fp32",
            sha256 = SHA,
            input = InputDescription("input", shape, "float32", layout),
            preprocessing = PreprocessingDescription(
                256, listOf(224, 224), listOf(0.5, 0.5, 0.5), listOf(0.25, 0.5, 1.0),
            ),
        )
    }

    @Test
    fun parsesNestedInputObject() {
        val manifest = ArtifactManifest.parse(
            """
            {"model": "mnv4_conv_s", "target": "tflite-w8a8", "sha256": "$SHA", "status": "OK",
             "input": {"name": "args_0", "shape": [1, 3, 224, 224], "dtype": "int8", "layout": "NCHW"},
             "preprocessing": {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
                               "std": [0.229, 0.224, 0.225], "color": "RGB"}, "extra": 1}
            """.trimIndent(),
        )
        assertEquals(listOf(1, 3, 224, 224), manifest.input.shape)
        assertEquals("tflite", manifest.format)
        assertEquals(TensorDType.INT8, InputTensorPlan(manifest).dtype)
        assertEquals(listOf(224, 224), manifest.preprocessing?.crop)
    }

    @Test
    fun parsesInputsArrayAndWrappedList() {
        val list = ArtifactManifest.parseList(
            """{"artifacts": [{"model": "m", "target": "tflite-fp32", "sha256": "$SHA",
                "inputs": [{"name": "x", "shape": [1, 224, 224, 3], "dtype": "float32"}]}]}""",
        )
        assertEquals(1, list.size)
        assertEquals(TensorLayout.NHWC, InputTensorPlan(list[0]).layout)
        assertNull(list[0].status)
    }

    @Test
    fun dynamicDimensionSkipsOnlyThatEntry() {
        val list = ArtifactManifest.parseList(
            """[{"model": "a", "target": "onnx-fp32", "sha256": "$SHA",
                 "input": {"name": "input", "shape": ["batch", 3, 224, 224], "dtype": "float32"}},
                {"model": "b", "target": "onnx-fp32", "sha256": "$SHA",
                 "input": {"name": "input", "shape": [null, 3, 224, 224], "dtype": "float32"}},
                {"model": "c", "target": "tflite-fp32", "sha256": "$SHA",
                 "input": {"name": "input", "shape": [1, 3, 192, 256], "dtype": "float32"},
                 "preprocessing": {"resize": 256, "crop": [192, 256],
                                   "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}]""",
        )
        assertEquals(listOf("c"), list.map { it.model })
        assertEquals(listOf(192, 256), list[0].preprocessing?.crop)
    }

    @Test
    fun anyBadEntrySkipsOnlyItself() {
        val good = """{"model": "ok", "target": "tflite-fp32", "sha256": "$SHA",
            "input": {"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}}"""
        val list = ArtifactManifest.parseList(
            """[$good, 7, null, {"model": "no_input", "target": "tflite-fp32", "sha256": "$SHA"},
                {"model": "bad_mean", "target": "tflite-fp32", "sha256": "$SHA",
                 "input": {"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"},
                 "preprocessing": {"mean": ["a", 0, 0], "std": [1, 1, 1]}},
                {"model": "huge", "target": "tflite-fp32", "sha256": "$SHA",
                 "input": {"name": "x", "shape": [1e30, 3, 8, 8], "dtype": "float32"}}]""",
        )
        assertEquals(listOf("ok"), list.map { it.model })
        assertThrows(BenchmarkException::class.java) {
            ArtifactManifest.parseList("""{"artifacts": 5}""")
        }
        assertThrows(BenchmarkException::class.java) {
            ArtifactManifest.parseList("[{")
        }
    }

    @Test
    fun rejectsBadShapeAndChecksum() {
        assertThrows(BenchmarkException::class.java) {
            ArtifactManifest.parse(
                """{"model": "m", "target": "t", "sha256": "$SHA", "input": {"name": "x", "shape": [-1, 3, 8, 8], "dtype": "float32"}}""",
            )
        }
        assertThrows(BenchmarkException::class.java) {
            ArtifactManifest.parse(
                """{"model": "m", "target": "t", "sha256": "abc", "input": {"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}}""",
            )
        }
    }

    @Test
    fun normalizedValuesUseManifestMeanStdAndLayout() {
        val nchw = InputTensorPlan(sampleManifest("NCHW", listOf(1, 3, 4, 5)))
        val nhwc = InputTensorPlan(sampleManifest("NHWC", listOf(1, 4, 5, 3)))
        val pre = sampleManifest().preprocessing
        val a = nchw.normalizedValues(pre)
        val b = nhwc.normalizedValues(pre)
        assertEquals(60, a.size)
        assertEquals(60, b.size)
        // pixel (c=1, y=2, x=3) = (3*7 + 2*13 + 29) % 256 = 76; (76/255 - 0.5) / 0.5
        val expected = ((76.0 / 255.0 - 0.5) / 0.5).toFloat()
        assertEquals(expected, a[nchw.offset(0, 1, 2, 3)], 1e-6f)
        assertEquals(expected, b[nhwc.offset(0, 1, 2, 3)], 1e-6f)
    }

    @Test
    fun quantizeRoundsAndClamps() {
        val q = quantize(floatArrayOf(0f, 0.5f, 100f, -100f), scale = 0.5f, zeroPoint = -3, dtype = TensorDType.INT8)
        assertEquals(listOf<Byte>(-3, -2, 127, -128), q.toList())
    }

    @Test
    fun serverUrlAndHeaders() {
        val config = ServerConfig.parse(" 192.168.1.20:8765/ ", "  ")
        assertEquals("http://192.168.1.20:8765", config.baseUrl)
        assertNull(config.token)
        assertThrows(BenchmarkException::class.java) {
            ServerConfig.parse("ftp://host", null)
        }
        val client = ApiClient(ServerConfig.parse("http://h:1", "s3cret"))
        assertEquals(
            "http://h:1/api/v1/artifacts/mobileone_s0/tflite-fp32/download",
            client.url(listOf("api", "v1", "artifacts", "mobileone_s0", "tflite-fp32", "download")).toString(),
        )
        assertEquals("Bearer s3cret", client.headers()["Authorization"])
    }

    @Test
    fun peakRssFromProcStatus() {
        val text = "Name:\tjava\nVmPeak:\t  100 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 1000 kB\n"
        assertEquals(20.0, ProcStatus.parseVmHwmMb(text)!!, 0.0)
        assertNull(ProcStatus.parseVmHwmMb("Name: x\n"))
    }
}

class ChecksumTest {
    @Test
    fun sha256OfAKnownString() {
        val file = java.io.File.createTempFile("benchkit", ".bin")
        try {
            file.writeText("abc")
            assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", sha256Hex(file))
        } finally {
            file.delete()
        }
    }
}
