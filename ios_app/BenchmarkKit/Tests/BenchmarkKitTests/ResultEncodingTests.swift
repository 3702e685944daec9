import BenchmarkKit
import XCTest

final class ResultEncodingTests: XCTestCase {
    private let schemaKeys: Set<String> = Set(BenchmarkResult.CodingKeys.allCases.map(\.rawValue))

    /// The shared example decodes, and re-encoding gives back exactly the example (same keys, same values).
    func testEncodingReproducesTheSharedExample() throws {
        let data = try Fixtures.data("ios_result")
        let result = try JSONDecoder().decode(BenchmarkResult.self, from: data)
        XCTAssertEqual(result.harness, BenchmarkResult.harnessName)
        XCTAssertEqual(result.schemaVersion, BenchmarkResult.schemaVersion)
        let example = try Fixtures.jsonObject(data)
        let encoded = try Fixtures.jsonObject(result.jsonData())
        XCTAssertEqual(Set(example.allKeys.compactMap { $0 as? String }), schemaKeys)
        XCTAssertEqual(Set(encoded.allKeys.compactMap { $0 as? String }), schemaKeys)
        XCTAssertEqual(encoded, example)
    }

    func testNilOptionalsAreWrittenAsNull() throws {
        let result = try BenchmarkResult.make(
            samples: [1.5, 1.25, 2],
            config: BenchmarkConfig(warmup: 1, runs: 3),
            manifest: ManifestTests.sampleManifest(),
            device: DeviceDescription(deviceModel: "iPhone15,2", os: "iOS", osVersion: "17.5", chip: "Apple A16 Bionic"),
            context: RunContext(runtime: "coreml", runtimeVersion: "iOS 17.5", computeUnit: "ALL")
        )
        let encoded = try Fixtures.jsonObject(result.jsonData())
        XCTAssertEqual(Set(encoded.allKeys.compactMap { $0 as? String }), schemaKeys)
        XCTAssertTrue(encoded["threads"] is NSNull)
        XCTAssertTrue(encoded["notes"] is NSNull)
        XCTAssertEqual(encoded["min_ms"] as? Double, 1.25)
        XCTAssertEqual(encoded["runs"] as? Int, 3)
        XCTAssertEqual(encoded["batch_size"] as? Int, 1)
        XCTAssertEqual(encoded["validation_status"] as? String, "UNVALIDATED_NO_RUNTIME")
        XCTAssertEqual(encoded["harness"] as? String, "ios_app")
    }

    func testTimestampIsUTCInternetDateTime() {
        let text = BenchmarkResult.iso8601(Date(timeIntervalSince1970: 0))
        XCTAssertEqual(text, "1970-01-01T00:00:00Z")
    }
}
