package dev.mobexport.benchkit

/**
 * A run without a tap, for device farms and adb: the job comes from the Android intent's extras (or the iOS app's
 * launch arguments, parsed the same way by BenchmarkKit). Keys:
 *
 * - `server` (required: a headless run is one that names a server), `token`;
 * - `artifacts`: comma-separated `model/target` ids, or `all` (default) for every artifact this app can run;
 * - `runs`, `warmup`, `cooldown` (seconds): the protocol ([BenchmarkConfig], host defaults);
 * - `threads`: CPU threads (default 4); `delegate`: one of the app's delegates (default the first).
 *
 * An unknown key or a bad value is a [BenchmarkException] naming it, before anything runs.
 */
data class HeadlessJob(
    val server: ServerConfig,
    val artifacts: List<String>,
    val config: BenchmarkConfig,
    val threads: Int,
    val delegate: String,
) {
    /** The manifests to run, in the order asked; an id the server does not list is an error naming it. */
    fun select(available: List<ArtifactManifest>): List<ArtifactManifest> {
        if (artifacts.isEmpty()) {
            return available
        }
        val byId = available.associateBy { it.id }
        val missing = artifacts.filter { it !in byId }
        if (missing.isNotEmpty()) {
            throw BenchmarkException(
                "The server lists no runnable artifact $missing (it lists ${available.map { it.id }}).",
            )
        }
        return artifacts.map { byId.getValue(it) }
    }

    companion object {
        val KEYS = listOf("server", "token", "artifacts", "runs", "warmup", "cooldown", "threads", "delegate")
        const val DEFAULT_THREADS = 4
        const val MAX_THREADS = 64

        /**
         * The job in [values] (key -> text), or null when there is no `server` key (an interactive launch).
         * [delegates] are the app's delegate names; the first is the default.
         */
        fun parse(values: Map<String, String?>, delegates: List<String>): HeadlessJob? {
            val server = values["server"]?.takeIf { it.isNotBlank() } ?: return null
            val unknown = values.keys.filter { it !in KEYS }.sorted()
            if (unknown.isNotEmpty()) {
                throw BenchmarkException("Unknown headless argument(s) $unknown; known: $KEYS.")
            }
            val delegate = values["delegate"]?.trim()?.lowercase()?.ifEmpty { null } ?: delegates.first()
            if (delegate !in delegates) {
                throw BenchmarkException("delegate must be one of $delegates, got '$delegate'.")
            }
            val config = BenchmarkConfig(
                warmup = number(values, "warmup") ?: BenchmarkConfig.DEFAULT_WARMUP,
                runs = number(values, "runs") ?: BenchmarkConfig.DEFAULT_RUNS,
                cooldownMillis = (number(values, "cooldown") ?: 0) * 1000L,
            ).validate()
            val threads = number(values, "threads") ?: DEFAULT_THREADS
            if (threads !in 1..MAX_THREADS) {
                throw BenchmarkException("threads must be in 1..$MAX_THREADS, got $threads.")
            }
            return HeadlessJob(ServerConfig.parse(server, values["token"]), artifactIds(values["artifacts"]), config,
                threads, delegate)
        }

        private fun number(values: Map<String, String?>, key: String): Int? {
            val text = values[key]?.trim()?.ifEmpty { null } ?: return null
            return text.toIntOrNull() ?: throw BenchmarkException("$key must be a whole number, got '$text'.")
        }

        private fun artifactIds(text: String?): List<String> {
            val ids = text?.split(',')?.map { it.trim() }?.filter { it.isNotEmpty() }.orEmpty()
            if (ids.isEmpty() || ids == listOf("all")) {
                return emptyList()
            }
            val bad = ids.filter { !ID.matches(it) }
            if (bad.isNotEmpty()) {
                throw BenchmarkException("artifacts must be model/target ids such as mobileone_s0/tflite-fp32, got $bad.")
            }
            return ids.distinct()
        }

        private val ID = Regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    }
}
