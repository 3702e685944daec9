@testable import MobexportBench
import BenchmarkKit
import XCTest

/// The XCTest entry of a headless run, for device farms that drive `xcodebuild test`:
///
///     TEST_RUNNER_MOBEXPORT_SERVER=http://192.168.1.20:8765 TEST_RUNNER_MOBEXPORT_TOKEN=T \
///     TEST_RUNNER_MOBEXPORT_RUNS=1000 xcodebuild test -project MobexportBench.xcodeproj \
///       -scheme MobexportBench -destination 'platform=iOS,id=<UDID>' -only-testing:MobexportBenchTests
///
/// (xcodebuild passes TEST_RUNNER_X to the tests as X.) Skipped when no server is named.
final class HeadlessRunTests: XCTestCase {
    func testHeadlessRunMeasuresAndPostsEveryArtifact() async throws {
        guard let job = try HeadlessRun.job() else {
            throw XCTSkip("no MOBEXPORT_SERVER in the test environment: nothing to run")
        }
        let outcome = try await HeadlessRun.run(job)
        XCTAssertFalse(outcome.measured.isEmpty, "no Core ML artifact was measured")
        XCTAssertEqual(outcome.failed, [:])
        XCTAssertEqual(outcome.upload.kept + outcome.upload.rejected, 0, outcome.upload.lastError ?? "")
    }
}
