package dev.mobexport.benchkit

import java.io.File
import java.io.IOException
import java.net.HttpURLConnection
import java.net.URI
import java.net.URL
import java.net.URLEncoder

/** Where `mobexport serve` runs, and its bearer token (null when the server has none). */
data class ServerConfig(
    val baseUrl: String,
    val token: String?,
) {
    companion object {
        /** Parses what the user typed: "192.168.1.20:8765" or "http://host:8765/"; only http and https. */
        fun parse(url: String, token: String?): ServerConfig {
            var text = url.trim()
            if (!text.contains("://")) {
                text = "http://$text"
            }
            text = text.trimEnd('/')
            val uri = runCatching { URI(text) }.getOrNull()
            val scheme = uri?.scheme?.lowercase()
            if (uri == null || (scheme != "http" && scheme != "https") || uri.host.isNullOrEmpty()) {
                throw BenchmarkException("'$url' is not a server URL (expected e.g. http://192.168.1.20:8765).")
            }
            return ServerConfig(text, token?.trim()?.takeIf { it.isNotEmpty() })
        }
    }
}

/** Blocking client of the mobexport serve HTTP API (v1); call it off the main thread. */
class ApiClient(
    val config: ServerConfig,
    private val timeoutMillis: Int = 60_000,
) {
    /** GET /api/v1/artifacts */
    fun listArtifacts(): List<ArtifactManifest> = ArtifactManifest.parseList(getText(listOf("api", "v1", "artifacts")))

    /** GET /api/v1/artifacts/{model}/{target}/manifest */
    fun manifest(model: String, target: String): ArtifactManifest =
        ArtifactManifest.parse(getText(listOf("api", "v1", "artifacts", model, target, "manifest")))

    /**
     * GET /api/v1/artifacts/{model}/{target}/download into [destination], checked against the manifest's sha256:
     * written to a temporary file, hashed, and renamed only when the digest matches (else deleted, and an error).
     * A file already there with the right digest is not downloaded again.
     */
    fun download(manifest: ArtifactManifest, destination: File): File {
        if (destination.isFile && sha256Hex(destination) == manifest.sha256) {
            return destination
        }
        val partial = File(destination.parentFile, destination.name + ".part")
        val connection = open(listOf("api", "v1", "artifacts", manifest.model, manifest.target, "download"), "GET")
        try {
            check(connection)
            connection.inputStream.use { input ->
                partial.outputStream().use { output -> input.copyTo(output) }
            }
        } catch (e: IOException) {
            partial.delete()
            throw e
        } finally {
            connection.disconnect()
        }
        val actual = sha256Hex(partial)
        if (actual != manifest.sha256) {
            partial.delete()
            throw BenchmarkException("The download of ${manifest.id} has sha256 $actual, the manifest says ${manifest.sha256}.")
        }
        if (!partial.renameTo(destination)) {
            partial.delete()
            throw IOException("cannot move ${partial.name} to ${destination.name}")
        }
        return destination
    }

    /** POST /api/v1/results, one result per request; see [PendingUploads] for the upload that is never lost. */
    fun postResult(result: BenchmarkResult) = postJson(result.toJson())

    /** POST /api/v1/results with a result already encoded as JSON. */
    fun postJson(json: String) {
        val connection = open(listOf("api", "v1", "results"), "POST")
        try {
            connection.doOutput = true
            connection.setRequestProperty("Content-Type", "application/json")
            connection.outputStream.use { it.write(json.toByteArray(Charsets.UTF_8)) }
            check(connection)
        } finally {
            connection.disconnect()
        }
    }

    /** The URL of a path below the base URL, each segment percent-encoded. */
    fun url(path: List<String>): URL {
        val encoded = path.joinToString("/") { URLEncoder.encode(it, "UTF-8").replace("+", "%20") }
        return URL("${config.baseUrl}/$encoded")
    }

    /** Request headers sent with every call (the bearer token when one is configured). */
    fun headers(): Map<String, String> {
        val headers = mutableMapOf("Accept" to "application/json")
        config.token?.let { headers["Authorization"] = "Bearer $it" }
        return headers
    }

    private fun getText(path: List<String>): String {
        val connection = open(path, "GET")
        try {
            check(connection)
            return connection.inputStream.bufferedReader().use { it.readText() }
        } finally {
            connection.disconnect()
        }
    }

    private fun open(path: List<String>, method: String): HttpURLConnection {
        val connection = url(path).openConnection() as HttpURLConnection
        connection.requestMethod = method
        connection.connectTimeout = timeoutMillis
        connection.readTimeout = timeoutMillis
        headers().forEach { (key, value) -> connection.setRequestProperty(key, value) }
        return connection
    }

    private fun check(connection: HttpURLConnection) {
        val status = connection.responseCode
        if (status !in 200..299) {
            val body = connection.errorStream?.bufferedReader()?.use { it.readText() }.orEmpty().take(300)
            val hint = if (status == 401 || status == 403) " Check the token (mobexport serve --token)." else ""
            throw HttpStatusException(status, "The server answered HTTP $status: $body$hint")
        }
    }
}
