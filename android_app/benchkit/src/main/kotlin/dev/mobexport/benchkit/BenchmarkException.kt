package dev.mobexport.benchkit

/** Every failure benchkit reports, with a message a user can act on. */
open class BenchmarkException(message: String, cause: Throwable? = null) : Exception(message, cause)

/** Thrown by the protocol loop when the user cancels. */
class BenchmarkCancelledException : Exception("The benchmark was cancelled.")

/** The server answered with a non-2xx [status]. */
class HttpStatusException(val status: Int, message: String) : BenchmarkException(message)
