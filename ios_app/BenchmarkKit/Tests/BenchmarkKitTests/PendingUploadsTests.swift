import BenchmarkKit
import XCTest

final class PendingUploadsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString, isDirectory: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func result(_ model: String) throws -> BenchmarkResult {
        var manifest = ManifestTests.sampleManifest()
        manifest.model = model
        return try BenchmarkResult.make(
            measurement: Measurement(samplesMs: [1, 2], roundTripMs: [1.5, 2.5], loadMs: 3, warmup: 20,
                                     thermalStateBefore: nil, thermalStateAfter: nil),
            manifest: manifest,
            device: DeviceDescription(deviceModel: "iPhone15,2", os: "iOS", osVersion: "17.5", chip: "Apple A16 Bionic"),
            context: RunContext(runtime: "coreml", runtimeVersion: "iOS 17.5", computeUnit: "ALL"))
    }

    func testAFailedUploadIsKeptAndRetried() async throws {
        let queue = PendingUploads(directory: directory)
        try queue.add(result("a"))
        try queue.add(result("b"))
        let failed = await queue.flush { _ in throw URLError(.notConnectedToInternet) }
        XCTAssertEqual(failed.kept, 2)
        XCTAssertEqual(queue.pending().count, 2)
        let unavailable = await queue.flush { _ in throw BenchmarkError.http(status: 503, body: "") }
        XCTAssertEqual(unavailable.kept, 2)
        var models: [String] = []
        let ok = await queue.flush { body in
            models.append(try JSONDecoder().decode(BenchmarkResult.self, from: body).model)
        }
        XCTAssertEqual(ok, FlushReport(posted: 2, kept: 0, rejected: 0, lastError: nil))
        XCTAssertEqual(Set(models), ["a", "b"])
        XCTAssertTrue(queue.pending().isEmpty)
    }

    func testARefusedResultMovesAsideAndIsNeverLost() async throws {
        let queue = PendingUploads(directory: directory)
        try queue.add(result("a"))
        let report = await queue.flush { _ in throw BenchmarkError.http(status: 422, body: "bad") }
        XCTAssertEqual(report.rejected, 1)
        XCTAssertTrue(queue.pending().isEmpty)
        XCTAssertEqual(queue.rejected().count, 1)
        let unauthorized = PendingUploads(directory: directory.appendingPathComponent("other"))
        try unauthorized.add(result("b"))
        let kept = await unauthorized.flush { _ in throw BenchmarkError.http(status: 401, body: "") }
        XCTAssertEqual(kept.kept, 1)
    }
}
