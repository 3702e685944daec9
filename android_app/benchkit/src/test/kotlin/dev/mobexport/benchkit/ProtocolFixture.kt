package dev.mobexport.benchkit

import java.io.File

/**
 * For tests/test_kotlin.py's protocol test: reads a JSON array of latency samples (ms) from the file args[0] and
 * prints the record the kit builds from them (with a fixed manifest, device and context), so the host can compare
 * it with the record its own statistics build from the same samples.
 */
fun main(args: Array<String>) {
    val samples = (parsePlainJson(File(args[0]).readText()) as List<*>).map { (it as Number).toDouble() }.toDoubleArray()
    val manifest = ArtifactManifest.parse(File(args[1]).readText())
    val result = buildResult(
        Measurement(samples, DoubleArray(0), 12.5, BenchmarkConfig.DEFAULT_WARMUP, null, null),
        manifest,
        DeviceDescription("Pixel 8 Pro", "Android", "15 (API 35)", "Google Tensor G3"),
        RunContext("litert", "1.4.1", "xnnpack", threads = 4),
        "2025-01-31T12:00:00Z",
    )
    println(result.toJson())
}
