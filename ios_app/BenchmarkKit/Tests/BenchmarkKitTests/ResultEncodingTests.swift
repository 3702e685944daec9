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
            measurement: Measurement(samplesMs: [1.5, 1.25, 2], roundTripMs: [], loadMs: 12.5, warmup: 20,
                                     thermalStateBefore: "nominal", thermalStateAfter: "fair"),
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
        XCTAssertEqual(encoded["warmup"] as? Int, 20)
        XCTAssertEqual(encoded["load_ms"] as? Double, 12.5)
        XCTAssertEqual(encoded["thermal_state_before"] as? String, "nominal")
    }

    func testTheRoundTripGoesIntoNotes() throws {
        let result = try BenchmarkResult.make(
            measurement: Measurement(samplesMs: [1.5, 1.25, 2], roundTripMs: [2.5, 2.25, 3], loadMs: 1, warmup: 20,
                                     thermalStateBefore: nil, thermalStateAfter: nil),
            manifest: ManifestTests.sampleManifest(),
            device: DeviceDescription(deviceModel: "iPhone15,2", os: "iOS", osVersion: "17.5", chip: "Apple A16 Bionic"),
            context: RunContext(runtime: "coreml", runtimeVersion: "iOS 17.5", computeUnit: "ALL")
        )
        XCTAssertEqual(result.notes,
                       "timed region: invoke; round trip (write input + invoke + read output) min 2.2500 p50 2.5000 ms")
    }

    func testTimestampIsUTCInternetDateTime() {
        let text = BenchmarkResult.iso8601(Date(timeIntervalSince1970: 0))
        XCTAssertEqual(text, "1970-01-01T00:00:00Z")
    }
}
