package dev.mobexport.bench

import android.app.Application
import android.util.Log
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.mobexport.benchkit.ApiClient
import dev.mobexport.benchkit.ArtifactManifest
import dev.mobexport.benchkit.BenchmarkCancelledException
import dev.mobexport.benchkit.BenchmarkConfig
import dev.mobexport.benchkit.BenchmarkException
import dev.mobexport.benchkit.BenchmarkProgress
import dev.mobexport.benchkit.BenchmarkResult
import dev.mobexport.benchkit.HeadlessJob
import dev.mobexport.benchkit.Phase
import dev.mobexport.benchkit.ServerConfig
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** The number fields are kept as typed (so they can be cleared) and checked when a run starts. */
data class UiState(
    val server: ServerConfig? = null,
    val artifacts: List<ArtifactManifest> = emptyList(),
    val selected: ArtifactManifest? = null,
    val accelerator: Accelerator = Accelerator.CPU,
    val threadsText: String = "4",
    val runsText: String = BenchmarkConfig.DEFAULT_RUNS.toString(),
    val warmupText: String = BenchmarkConfig.DEFAULT_WARMUP.toString(),
    val cooldownText: String = "0",
    val busy: Boolean = false,
    val status: String = "",
    val progress: Float = 0f,
    val result: BenchmarkResult? = null,
    val posted: Boolean = false,
    val pendingUploads: Int = 0,
    val error: String? = null,
)

class BenchViewModel(application: Application) : AndroidViewModel(application) {
    private val settings = SecureSettings(application)
    private val repository = ArtifactRepository(application)
    private val job = BenchmarkJob(application)
    private val uploads = pendingUploads(application)
    private val _state = MutableStateFlow(
        UiState(server = settings.load(), threadsText = minOf(4, Runtime.getRuntime().availableProcessors()).toString()),
    )
    val state: StateFlow<UiState> = _state.asStateFlow()

    @Volatile
    private var cancelled = false

    private fun client(): ApiClient? = _state.value.server?.let { ApiClient(it) }

    fun saveServer(url: String, token: String) {
        try {
            val config = ServerConfig.parse(url, token)
            settings.save(config)
            _state.update { it.copy(server = config, error = null) }
            refresh()
        } catch (e: Exception) {
            _state.update { it.copy(error = e.message ?: e.toString()) }
        }
    }

    fun forgetServer() {
        settings.clear()
        _state.update { UiState(threadsText = it.threadsText, pendingUploads = it.pendingUploads) }
    }

    /** LiteRT artifacts only: this app runs .tflite files. Results kept from failed uploads are retried first. */
    fun refresh() {
        val client = client() ?: return
        viewModelScope.launch {
            _state.update { it.copy(busy = true, status = "Loading artifacts") }
            try {
                flushPending(client)
                val list = withContext(Dispatchers.IO) { client.listArtifacts() }.filter { it.format == "tflite" }
                val message = if (list.isEmpty()) "The server lists no LiteRT artifacts (mobexport tflite MODEL)." else null
                _state.update { it.copy(artifacts = list, error = message) }
            } catch (e: Exception) {
                _state.update { it.copy(error = e.message ?: e.toString()) }
            } finally {
                _state.update { it.copy(busy = false, status = "") }
            }
        }
    }

    fun select(manifest: ArtifactManifest?) {
        _state.update { it.copy(selected = manifest, result = null, posted = false, error = null) }
    }

    fun setAccelerator(accelerator: Accelerator) {
        _state.update { it.copy(accelerator = accelerator) }
    }

    fun setThreads(text: String) = _state.update { it.copy(threadsText = digits(text)) }

    fun setRuns(text: String) = _state.update { it.copy(runsText = digits(text)) }

    fun setWarmup(text: String) = _state.update { it.copy(warmupText = digits(text)) }

    fun setCooldown(text: String) = _state.update { it.copy(cooldownText = digits(text)) }

    fun cancel() {
        cancelled = true
    }

    /** The job the fields describe, checked with the kit's rules (the headless parser), or an error message. */
    private fun fieldsJob(snapshot: UiState, server: ServerConfig): HeadlessJob = HeadlessJob.parse(
        mapOf(
            "server" to server.baseUrl, "token" to server.token, "runs" to snapshot.runsText,
            "warmup" to snapshot.warmupText, "cooldown" to snapshot.cooldownText, "threads" to snapshot.threadsText,
            "delegate" to snapshot.accelerator.key,
        ),
        Accelerator.entries.map { it.key },
    )!!

    fun start() {
        val client = client() ?: return
        val snapshot = _state.value
        val manifest = snapshot.selected ?: return
        val request = try {
            fieldsJob(snapshot, client.config)
        } catch (e: BenchmarkException) {
            _state.update { it.copy(error = e.message) }
            return
        }
        cancelled = false
        _state.update { it.copy(busy = true, result = null, posted = false, error = null, progress = 0f) }
        viewModelScope.launch {
            try {
                val result = measureAndKeep(client, manifest, request)
                _state.update { it.copy(result = result, status = "Posting the result") }
                val report = flushPending(client)
                _state.update { it.copy(posted = report.kept + report.rejected == 0, error = report.lastError) }
            } catch (e: BenchmarkCancelledException) {
                _state.update { it.copy(error = "Cancelled.") }
            } catch (e: Exception) {
                _state.update { it.copy(error = e.message ?: e.toString()) }
            } finally {
                _state.update { it.copy(busy = false, status = "") }
            }
        }
    }

    /**
     * A headless run (intent extras): every selected artifact in turn, each result stored and posted, then [done]
     * with whether everything was measured and taken by the server. Progress goes to logcat (tag mobexport).
     */
    fun runHeadless(request: HeadlessJob, done: (Boolean) -> Unit) {
        val client = ApiClient(request.server)
        cancelled = false
        _state.update { it.copy(server = request.server, busy = true, error = null) }
        viewModelScope.launch {
            var ok = true
            try {
                flushPending(client)
                val listed = withContext(Dispatchers.IO) { client.listArtifacts() }.filter { it.format == "tflite" }
                for (manifest in request.select(listed)) {
                    _state.update { it.copy(selected = manifest) }
                    try {
                        val result = measureAndKeep(client, manifest, request)
                        Log.i(TAG, "${manifest.id}: min ${result.minMs} ms, p50 ${result.p50Ms} ms over ${result.runs} runs")
                    } catch (e: BenchmarkCancelledException) {
                        throw e
                    } catch (e: Exception) {
                        ok = false
                        Log.e(TAG, "${manifest.id}: ${e.message ?: e}")
                    }
                }
                val report = flushPending(client)
                Log.i(TAG, "posted ${report.posted}, kept for retry ${report.kept}, refused ${report.rejected}")
                ok = ok && report.kept + report.rejected == 0
            } catch (e: Exception) {
                ok = false
                Log.e(TAG, "headless run failed: ${e.message ?: e}")
                _state.update { it.copy(error = e.message ?: e.toString()) }
            } finally {
                _state.update { it.copy(busy = false, status = "") }
            }
            Log.i(TAG, if (ok) "headless run finished" else "headless run finished with errors")
            done(ok)
        }
    }

    /** Downloads, measures, and stores the result on the device before any upload (a failed upload is kept). */
    private suspend fun measureAndKeep(client: ApiClient, manifest: ArtifactManifest, request: HeadlessJob): BenchmarkResult {
        _state.update { it.copy(status = "Downloading ${manifest.id}") }
        val file = withContext(Dispatchers.IO) { repository.modelFile(manifest, client) }
        val accelerator = Accelerator.ofKey(request.delegate)
        val poller = pollTimedRuns(request.config.runs)
        try {
            val result = withContext(Dispatchers.Default) {
                job.measure(file, manifest, accelerator, request.threads, request.config, { cancelled }) { show(it) }
            }
            withContext(Dispatchers.IO) { uploads.add(result) }
            return result
        } finally {
            poller.cancel()
        }
    }

    private suspend fun flushPending(client: ApiClient) = withContext(Dispatchers.IO) {
        uploads.flush(client).also { report ->
            _state.update { it.copy(pendingUploads = uploads.pending().size) }
            if (report.kept > 0) {
                Log.w(TAG, "${report.kept} result(s) kept on the device for the next upload: ${report.lastError}")
            }
        }
    }

    /** The timed loop reports nothing itself: this polls the runner's counter four times a second. */
    private fun pollTimedRuns(total: Int): Job = viewModelScope.launch {
        while (isActive) {
            delay(250)
            val done = job.runner?.completedRuns ?: 0
            if (done > 0) {
                _state.update { it.copy(status = "Timed runs $done/$total", progress = done.toFloat() / total) }
            }
        }
    }

    private fun show(event: BenchmarkProgress) {
        val text = when (event.phase) {
            Phase.COOLDOWN -> "Cooling down ${event.completed}/${event.total} s"
            Phase.LOADING -> "Loading the model"
            Phase.WARMUP -> "Warm-up ${event.completed}/${event.total}"
            Phase.TIMED -> "Timed runs ${event.completed}/${event.total}"
        }
        val fraction = if (event.phase == Phase.TIMED) event.completed.toFloat() / event.total else 0f
        _state.update { it.copy(status = text, progress = fraction) }
    }

    private companion object {
        const val TAG = "mobexport"

        fun digits(text: String): String = text.filter { it.isDigit() }.take(7)
    }
}
