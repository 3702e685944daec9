// swift-tools-version:5.9
// BenchmarkKit: the benchmark logic of the iOS app (statistics, timing protocol, result record, manifest,
// API client), free of UIKit/SwiftUI/Core ML so it builds and tests with `swift test` on a Mac.
import PackageDescription

let package = Package(
    name: "BenchmarkKit",
    platforms: [
        .iOS(.v16),
        .macOS(.v13),
    ],
    products: [
        .library(name: "BenchmarkKit", targets: ["BenchmarkKit"]),
    ],
    targets: [
        .target(
            name: "BenchmarkKit",
            path: "Sources/BenchmarkKit"
        ),
        .testTarget(
            name: "BenchmarkKitTests",
            dependencies: ["BenchmarkKit"],
            path: "Tests/BenchmarkKitTests"
        ),
    ]
)
