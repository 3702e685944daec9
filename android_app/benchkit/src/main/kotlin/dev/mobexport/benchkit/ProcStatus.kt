package dev.mobexport.benchkit

import java.io.File

/** Peak resident set size of this process from /proc/self/status (VmHWM), in MiB; null when unreadable. */
object ProcStatus {
    fun peakRssMb(statusFile: File = File("/proc/self/status")): Double? =
        runCatching { parseVmHwmMb(statusFile.readText()) }.getOrNull()

    fun parseVmHwmMb(statusText: String): Double? {
        val line = statusText.lineSequence().firstOrNull { it.startsWith("VmHWM:") } ?: return null
        val kib = line.removePrefix("VmHWM:").trim().removeSuffix("kB").trim().toLongOrNull() ?: return null
        return kib / 1024.0
    }
}

/** Lower-case hex SHA-256 of a file, streamed. */
fun sha256Hex(file: File): String {
    val digest = java.security.MessageDigest.getInstance("SHA-256")
    file.inputStream().use { input ->
        val buffer = ByteArray(1 shl 20)
        while (true) {
            val read = input.read(buffer)
            if (read < 0) {
                break
            }
            digest.update(buffer, 0, read)
        }
    }
    return digest.digest().joinToString("") { "%02x".format(it) }
}
