import Foundation
import XCTest

/// The shared example payloads of benchmarks/schema/examples are this target's fixtures, never copies:
/// - in the Xcode project (project.yml) the examples directory is a folder reference copied into the test
///   bundle as "examples";
/// - under `swift test` they are read from the repository, four directories above this file's folder
///   (ios_app/BenchmarkKit/Tests/BenchmarkKitTests -> repository root).
enum Fixtures {
    private final class BundleMarker {}

    static let examplesDirectory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("benchmarks/schema/examples", isDirectory: true)

    static func url(_ name: String) throws -> URL {
        let bundle = Bundle(for: BundleMarker.self)
        if let inBundle = bundle.url(forResource: name, withExtension: "json", subdirectory: "examples") {
            return inBundle
        }
        let inRepository = examplesDirectory.appendingPathComponent("\(name).json")
        guard FileManager.default.fileExists(atPath: inRepository.path) else {
            throw XCTSkip("fixture \(name).json not found in the test bundle or at \(inRepository.path)")
        }
        return inRepository
    }

    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: url(name))
    }

    static func jsonObject(_ data: Data) throws -> NSDictionary {
        let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        guard let dict = object as? NSDictionary else {
            throw BenchmarkFixtureError.notAnObject
        }
        return dict
    }
}

enum BenchmarkFixtureError: Error {
    case notAnObject
}
