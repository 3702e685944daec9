package dev.mobexport.bench

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.mobexport.benchkit.ApiClient
import dev.mobexport.benchkit.ArtifactManifest
import dev.mobexport.benchkit.BenchmarkConfig
import dev.mobexport.benchkit.BenchmarkProgress
import dev.mobexport.benchkit.BenchmarkResult
import dev.mobexport.benchkit.Phase
import dev.mobexport.benchkit.ServerConfig
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

data class UiState(
    val server: ServerConfig? = null,
    val artifacts: List<ArtifactManifest> = emptyList(),
    val selected: ArtifactManifest? = null,
    val accelerator: Accelerator = Accelerator.CPU,
    val threads: Int = 4,
    val runs: Int = BenchmarkConfig.DEFAULT_RUNS,
    val cooldownSeconds: Int = 0,
    val busy: Boolean = false,
    val status: String = "",
    val progress: Float = 0f,
    val result: BenchmarkResult? = null,
    val posted: Boolean = false,
    val error: String? = null,
)

class BenchViewModel(application: Application) : AndroidViewModel(application) {
    private val settings = SecureSettings(application)
    private val repository = ArtifactRepository(application)
    private val job = BenchmarkJob(application)
    private val _state = MutableStateFlow(
        UiState(server = settings.load(), threads = minOf(4, Runtime.getRuntime().availableProcessors())),
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
        _state.update { UiState(threads = it.threads) }
    }

    /** LiteRT artifacts only: this app runs .tflite files. */
    fun refresh() {
        val client = client() ?: return
        viewModelScope.launch {
            _state.update { it.copy(busy = true, status = "Loading artifacts") }
            try {
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

    fun setThreads(threads: Int) {
        _state.update { it.copy(threads = threads.coerceIn(1, 16)) }
    }

    fun setRuns(runs: Int) {
        _state.update { it.copy(runs = runs.coerceIn(10, BenchmarkConfig.MAX_RUNS)) }
    }

    fun setCooldown(seconds: Int) {
        _state.update { it.copy(cooldownSeconds = seconds.coerceIn(0, 600)) }
    }

    fun cancel() {
        cancelled = true
    }

    fun start() {
        val client = client() ?: return
        val snapshot = _state.value
        val manifest = snapshot.selected ?: return
        cancelled = false
        _state.update { it.copy(busy = true, result = null, posted = false, error = null, progress = 0f) }
        viewModelScope.launch {
            try {
                _state.update { it.copy(status = "Downloading") }
                val file = withContext(Dispatchers.IO) { repository.modelFile(manifest, client) }
                _state.update { it.copy(status = "Loading the model") }
                val config = BenchmarkConfig(warmup = 1, runs = snapshot.runs, cooldownMillis = snapshot.cooldownSeconds * 1000L)
                val result = withContext(Dispatchers.Default) {
                    job.measure(file, manifest, snapshot.accelerator, snapshot.threads, config, { cancelled }) { show(it) }
                }
                _state.update { it.copy(result = result, status = "Posting the result") }
                withContext(Dispatchers.IO) { client.postResult(result) }
                _state.update { it.copy(posted = true) }
            } catch (e: Exception) {
                _state.update { it.copy(error = e.message ?: e.toString()) }
            } finally {
                _state.update { it.copy(busy = false, status = "") }
            }
        }
    }

    private fun show(event: BenchmarkProgress) {
        val text = when (event.phase) {
            Phase.COOLDOWN -> "Cooling down"
            Phase.WARMUP -> "Warm-up"
            Phase.TIMED -> "Timed runs ${event.completed}/${event.total}"
        }
        val fraction = if (event.phase == Phase.TIMED) event.completed.toFloat() / event.total else 0f
        _state.update { it.copy(status = text, progress = fraction) }
    }
}
