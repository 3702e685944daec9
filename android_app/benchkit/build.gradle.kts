// Plain Kotlin/JVM module: the benchmark logic (statistics, protocol loop, result record, manifest,
// API client). No Android dependency, so `./gradlew :benchkit:test` runs on any JDK 17.
plugins {
    id("org.jetbrains.kotlin.jvm")
    id("org.jetbrains.kotlin.plugin.serialization")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    api("org.jetbrains.kotlinx:kotlinx-serialization-json:1.7.3")
    testImplementation("junit:junit:4.13.2")
}

sourceSets {
    named("test") {
        // The shared example payloads (benchmarks/schema/examples) are the test fixtures: read in place,
        // never copied, so the apps and the host cannot drift apart.
        resources.srcDir(rootProject.file("../benchmarks/schema/examples"))
    }
}
