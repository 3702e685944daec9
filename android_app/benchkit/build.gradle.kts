// Plain Kotlin/JVM module: the benchmark logic (statistics, protocol loop, result record, manifest,
// API client, headless job, pending uploads). No Android dependency, so `./gradlew :benchkit:test` runs on any
// JDK 17; the host's `make test` compiles the same sources with kotlinc (tests/test_kotlin.py).
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // org.json is Android's built-in JSON library: the platform provides it at run time. This artifact is Android's
    // implementation (the one Debian ships as libandroid-json-java), for compiling and for the JVM tests.
    compileOnly("com.vaadin.external.google:android-json:0.0.20131108.vaadin1")
    testImplementation("com.vaadin.external.google:android-json:0.0.20131108.vaadin1")
    testImplementation("junit:junit:4.13.2")
}

sourceSets {
    named("test") {
        // The shared example payloads (benchmarks/schema/examples) are the test fixtures: read in place,
        // never copied, so the apps and the host cannot drift apart.
        resources.srcDir(rootProject.file("../benchmarks/schema/examples"))
    }
}
