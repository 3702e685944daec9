package dev.mobexport.benchkit

import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import java.io.File
import kotlin.system.exitProcess

/**
 * Runs every `*Test` class compiled into the directory args[0] with JUnit 4 and prints one line per test
 * (`PASS|FAIL|SKIP Class.method`) and a summary line `junit: N run, F failed, S skipped` (tests/test_kotlin.py reads
 * them). Exits 1 when a test failed. What `gradle test` does, for a host with kotlinc and no Gradle.
 */
fun main(args: Array<String>) {
    val root = File(args[0])
    val classes = root.walkTopDown()
        .filter { it.isFile && it.name.endsWith("Test.class") && '$' !in it.name }
        .map { it.relativeTo(root).path.removeSuffix(".class").replace(File.separatorChar, '.') }
        .sorted()
        .map { Class.forName(it) }
        .toList()
    val core = JUnitCore()
    core.addListener(LineListener())
    val result = core.run(*classes.toTypedArray())
    println("junit: ${result.runCount} run, ${result.failureCount} failed, ${result.assumptionFailureCount} skipped " +
        "(${classes.size} classes)")
    exitProcess(if (result.wasSuccessful()) 0 else 1)
}

private class LineListener : RunListener() {
    private val outcome = mutableMapOf<String, String>()

    private fun name(d: Description) = "${d.className.substringAfterLast('.')}.${d.methodName}"

    override fun testStarted(description: Description) {
        outcome[name(description)] = "PASS"
    }

    override fun testFailure(failure: Failure) {
        outcome[name(failure.description)] = "FAIL"
        println("FAIL ${name(failure.description)}: ${failure.trace}")
    }

    override fun testAssumptionFailure(failure: Failure) {
        outcome[name(failure.description)] = "SKIP"
        println("SKIP ${name(failure.description)}: ${failure.message}")
    }

    override fun testFinished(description: Description) {
        val state = outcome[name(description)]
        if (state == "PASS") {
            println("PASS ${name(description)}")
        }
    }
}
