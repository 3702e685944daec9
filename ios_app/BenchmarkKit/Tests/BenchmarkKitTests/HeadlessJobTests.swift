import BenchmarkKit
import XCTest

final class HeadlessJobTests: XCTestCase {
    private let units = ["ALL", "CPU_AND_NE", "CPU_ONLY", "CPU_AND_GPU"]

    private func manifest(_ model: String) -> ArtifactManifest {
        var m = ManifestTests.sampleManifest()
        m.model = model
        return m
    }

    func testNoServerMeansAnInteractiveLaunch() throws {
        XCTAssertNil(try HeadlessJob.parse([:], delegates: units))
        XCTAssertNil(try HeadlessJob.parse(["server": " ", "runs": "5"], delegates: units))
    }

    func testLaunchArgumentsAndEnvironmentAreRead() throws {
        let values = HeadlessJob.values(
            arguments: ["/path/MobexportBench", "-server", "192.168.1.20:8765", "-mobexport-runs", "500",
                        "-NSDoubleLocalizedStrings", "YES", "-delegate", "cpu_only"],
            environment: ["MOBEXPORT_TOKEN": "s3cret", "MOBEXPORT_RUNS": "9", "HOME": "/x"])
        XCTAssertEqual(values, ["server": "192.168.1.20:8765", "runs": "500", "token": "s3cret", "delegate": "cpu_only"])
        let job = try XCTUnwrap(try HeadlessJob.parse(values, delegates: units))
        XCTAssertEqual(job.server.token, "s3cret")
        XCTAssertEqual(job.config, BenchmarkConfig(warmup: 20, runs: 500, cooldownSeconds: 0))
        XCTAssertEqual(job.delegate, "CPU_ONLY")
        XCTAssertEqual(job.threads, HeadlessJob.defaultThreads)
        XCTAssertEqual(job.artifacts, [])
    }

    func testSelectKeepsTheAskedOrderAndNamesWhatIsMissing() throws {
        let job = try XCTUnwrap(try HeadlessJob.parse(
            ["server": "h:1", "artifacts": "b/coreml-fp16, a/coreml-fp16"], delegates: units))
        var a = manifest("a")
        a.target = "coreml-fp16"
        var b = manifest("b")
        b.target = "coreml-fp16"
        XCTAssertEqual(try job.select([a, b]).map(\.model), ["b", "a"])
        XCTAssertThrowsError(try job.select([a]))
    }

    func testBadValuesAreRefused() {
        let cases: [[String: String]] = [["runs": "many"], ["runs": "1000000"], ["warmup": "-1"], ["cooldown": "601"],
                                         ["threads": "0"], ["delegate": "npu"], ["artifacts": "justamodel"],
                                         ["run": "5"], ["server": "ftp://h"]]
        for extra in cases {
            let values = ["server": "h:1"].merging(extra) { _, new in new }
            XCTAssertThrowsError(try HeadlessJob.parse(values, delegates: units), "\(extra)")
        }
    }
}
