package dev.mobexport.benchkit

import java.io.File
import java.io.IOException

/** What one [PendingUploads.flush] did. */
data class FlushReport(
    val posted: Int,
    val kept: Int,
    val rejected: Int,
    val lastError: String?,
)

/**
 * Results waiting for the server, one JSON file each. A result is written here before its first upload attempt
 * and deleted only once the server has answered 2xx, so a failed upload (no network, server down, app killed)
 * is kept on the device and retried by the next [flush]. A result the server refuses for good (400, 413, 415,
 * 422: retrying cannot help) moves to `rejected/`, kept for the user, never retried and never lost.
 */
class PendingUploads(private val dir: File) {
    private val rejectedDir = File(dir, "rejected")

    /** Stores the result and returns its file (written to a temporary name first, then renamed). */
    fun add(result: BenchmarkResult): File {
        dir.mkdirs()
        val stem = "${result.timestamp.replace(":", "")}-${result.artifactSha256.take(12)}-${System.nanoTime()}"
        val file = File(dir, "$stem.json")
        val partial = File(dir, "$stem.json.part")
        partial.writeText(result.toJson(), Charsets.UTF_8)
        if (!partial.renameTo(file)) {
            partial.delete()
            throw IOException("cannot store the result as ${file.name}")
        }
        return file
    }

    /** The stored results, oldest first. */
    fun pending(): List<File> =
        dir.listFiles { f -> f.isFile && f.name.endsWith(".json") }?.sortedBy { it.name }.orEmpty()

    fun rejected(): List<File> =
        rejectedDir.listFiles { f -> f.isFile && f.name.endsWith(".json") }?.sortedBy { it.name }.orEmpty()

    /** Posts every stored result with [post] (a JSON body per call); keeps what fails, see the class comment. */
    fun flush(post: (String) -> Unit): FlushReport {
        var posted = 0
        var kept = 0
        var rejected = 0
        var lastError: String? = null
        for (file in pending()) {
            try {
                post(file.readText(Charsets.UTF_8))
                file.delete()
                posted += 1
            } catch (e: HttpStatusException) {
                lastError = e.message
                if (e.status in PERMANENT) {
                    rejectedDir.mkdirs()
                    if (!file.renameTo(File(rejectedDir, file.name))) {
                        kept += 1
                        continue
                    }
                    rejected += 1
                } else {
                    kept += 1
                }
            } catch (e: IOException) {
                lastError = e.message ?: e.toString()
                kept += 1
            } catch (e: BenchmarkException) {
                lastError = e.message
                kept += 1
            }
        }
        return FlushReport(posted, kept, rejected, lastError)
    }

    /** Posts every stored result to the server of [client]. */
    fun flush(client: ApiClient): FlushReport = flush { client.postJson(it) }

    private companion object {
        val PERMANENT = setOf(400, 413, 415, 422)
    }
}
