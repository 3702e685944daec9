package dev.mobexport.bench

import android.os.Bundle
import android.util.Log
import android.view.WindowManager
import androidx.activity.ComponentActivity
import androidx.activity.compose.BackHandler
import androidx.activity.compose.setContent
import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.RadioButton
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.DisposableEffect
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.platform.LocalView
import androidx.compose.ui.text.input.PasswordVisualTransformation
import androidx.compose.ui.unit.dp
import androidx.lifecycle.ViewModelProvider
import androidx.lifecycle.viewmodel.compose.viewModel
import dev.mobexport.benchkit.BenchmarkConfig
import dev.mobexport.benchkit.BenchmarkException
import dev.mobexport.benchkit.BenchmarkResult
import dev.mobexport.benchkit.HeadlessJob

/**
 * The interactive app, or a headless run when the launch intent carries a `server` extra (device farms, adb):
 * `adb shell am start -n dev.mobexport.bench/.MainActivity --es server http://HOST:8765 --es token T
 * --es artifacts mobileone_s0/tflite-fp32 --es runs 1000 --es delegate cpu` (keys: benchkit's HeadlessJob). It
 * runs without a tap, keeps the screen on, posts every result (kept on the device when the upload fails) and
 * finishes; logcat tag `mobexport` says how it went.
 */
class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent {
            MaterialTheme {
                Surface(modifier = Modifier.fillMaxSize()) {
                    BenchApp()
                }
            }
        }
        if (savedInstanceState == null) {
            startHeadless()
        }
    }

    private fun startHeadless() {
        val extras = intent?.extras ?: return
        @Suppress("DEPRECATION") // any extra type (--es, --ei) is read as its text
        val values = extras.keySet().associateWith { extras.get(it)?.toString() }
        val job = try {
            HeadlessJob.parse(values, Accelerator.entries.map { it.key }) ?: return
        } catch (e: BenchmarkException) {
            Log.e("mobexport", "headless run refused: ${e.message}")
            setResult(RESULT_CANCELED)
            finish()
            return
        }
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
        ViewModelProvider(this)[BenchViewModel::class.java].runHeadless(job) { ok ->
            setResult(if (ok) RESULT_OK else RESULT_CANCELED)
            finishAndRemoveTask()
        }
    }
}

@Composable
fun BenchApp(viewModel: BenchViewModel = viewModel()) {
    val state by viewModel.state.collectAsState()
    // Runs and cool-downs last minutes: the screen stays on while busy so the OS does not suspend the app.
    val view = LocalView.current
    DisposableEffect(state.busy) {
        view.keepScreenOn = state.busy
        onDispose {
            view.keepScreenOn = false
        }
    }
    BackHandler(enabled = state.selected != null && !state.busy) {
        viewModel.select(null)
    }
    when {
        state.server == null -> ServerScreen(state.error, viewModel::saveServer)
        state.selected == null -> ArtifactScreen(state, viewModel)
        else -> BenchmarkScreen(state, viewModel)
    }
}

@Composable
fun ServerScreen(error: String?, onSave: (String, String) -> Unit) {
    var url by remember { mutableStateOf("") }
    var token by remember { mutableStateOf("") }
    Column(modifier = Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(12.dp)) {
        Text("mobexport server", style = MaterialTheme.typography.headlineSmall)
        Text("Run `mobexport serve --host 0.0.0.0 --token <TOKEN>` on your computer and enter its LAN address.")
        OutlinedTextField(value = url, onValueChange = { url = it }, label = { Text("http://192.168.1.20:8765") })
        OutlinedTextField(
            value = token,
            onValueChange = { token = it },
            label = { Text("Token") },
            visualTransformation = PasswordVisualTransformation(),
        )
        error?.let { Text(it, color = Color.Red) }
        Button(onClick = { onSave(url, token) }, enabled = url.isNotBlank()) {
            Text("Save")
        }
    }
}

@Composable
fun ArtifactScreen(state: UiState, viewModel: BenchViewModel) {
    LaunchedEffect(state.server) {
        viewModel.refresh()
    }
    Column(modifier = Modifier.padding(16.dp)) {
        Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Text("Artifacts", style = MaterialTheme.typography.headlineSmall)
            OutlinedButton(onClick = viewModel::refresh, enabled = !state.busy) {
                Text("Refresh")
            }
            OutlinedButton(onClick = viewModel::forgetServer) {
                Text("Server")
            }
        }
        if (state.busy) {
            Text(state.status)
        }
        state.error?.let { Text(it, color = Color.Red) }
        LazyColumn {
            items(state.artifacts, key = { it.id }) { manifest ->
                Column(
                    modifier = Modifier
                        .fillMaxWidth()
                        .clickable { viewModel.select(manifest) }
                        .padding(vertical = 8.dp),
                ) {
                    Text(manifest.model, style = MaterialTheme.typography.titleMedium)
                    Text("${manifest.target}  ${manifest.input.shape.joinToString("x")}  ${manifest.input.dtype}")
                }
                HorizontalDivider()
            }
        }
    }
}

@Composable
fun BenchmarkScreen(state: UiState, viewModel: BenchViewModel) {
    val manifest = state.selected ?: return
    Column(
        modifier = Modifier
            .padding(16.dp)
            .verticalScroll(rememberScrollState()),
        verticalArrangement = Arrangement.spacedBy(8.dp),
    ) {
        Text(manifest.model, style = MaterialTheme.typography.headlineSmall)
        Text("${manifest.target}  input ${manifest.input.name} ${manifest.input.shape.joinToString("x")} ${manifest.input.dtype}")
        Text("Accelerator", style = MaterialTheme.typography.titleMedium)
        Accelerator.entries.forEach { accelerator ->
            Row(verticalAlignment = Alignment.CenterVertically) {
                RadioButton(
                    selected = state.accelerator == accelerator,
                    onClick = { viewModel.setAccelerator(accelerator) },
                    enabled = !state.busy,
                )
                Text(accelerator.title)
            }
        }
        NumberField("CPU threads", state.threadsText, !state.busy, viewModel::setThreads)
        NumberField("Timed runs (max ${BenchmarkConfig.MAX_RUNS})", state.runsText, !state.busy, viewModel::setRuns)
        NumberField("Warm-up runs", state.warmupText, !state.busy, viewModel::setWarmup)
        NumberField("Cool-down (s)", state.cooldownText, !state.busy, viewModel::setCooldown)
        Text("The host's protocol: load (timed), one checked call and the warm-up, then timed invokes (System.nanoTime).")
        if (state.busy) {
            Text(state.status)
            LinearProgressIndicator(progress = { state.progress }, modifier = Modifier.fillMaxWidth())
            OutlinedButton(onClick = viewModel::cancel) {
                Text("Cancel")
            }
        } else {
            Button(onClick = viewModel::start) {
                Text("Run benchmark")
            }
        }
        state.error?.let { Text(it, color = Color.Red) }
        state.result?.let { ResultCard(it, state.posted) }
        if (state.pendingUploads > 0) {
            Text("${state.pendingUploads} result(s) kept on this device; they are posted with the next run or refresh.")
        }
    }
}

@Composable
fun NumberField(label: String, value: String, enabled: Boolean, onChange: (String) -> Unit) {
    OutlinedTextField(
        value = value,
        onValueChange = onChange,
        label = { Text(label) },
        enabled = enabled,
        singleLine = true,
    )
}

@Composable
fun ResultCard(result: BenchmarkResult, posted: Boolean) {
    fun ms(value: Double) = "%.3f".format(value)
    Column(verticalArrangement = Arrangement.spacedBy(4.dp)) {
        Text("min ${ms(result.minMs)} ms", style = MaterialTheme.typography.headlineMedium)
        Text("p50 ${ms(result.p50Ms)}  p90 ${ms(result.p90Ms)}  max ${ms(result.maxMs)} ms")
        Text("mean ${ms(result.meanMs)} ± ${ms(result.stdMs)} ms over ${result.runs} runs (+${result.warmup} warm-up)")
        Text("load ${result.loadMs?.let { ms(it) } ?: "-"} ms, peak RSS ${result.peakRssMb?.let { "%.0f".format(it) } ?: "-"} MiB")
        Text("thermal ${result.thermalStateBefore ?: "-"} → ${result.thermalStateAfter ?: "-"}")
        Text("${result.deviceModel} · ${result.chip} · Android ${result.osVersion}")
        Text(if (posted) "Posted to the server; see `mobexport results`." else "Kept on this device; posted later.")
    }
}
