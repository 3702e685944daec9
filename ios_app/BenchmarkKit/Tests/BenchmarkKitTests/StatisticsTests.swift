import BenchmarkKit
import XCTest

final class StatisticsTests: XCTestCase {
    func testKnownValues() throws {
        let stats = try LatencyStatistics(samples: [2, 4, 4, 4, 5, 5, 7, 9])
        XCTAssertEqual(stats.min, 2)
        XCTAssertEqual(stats.max, 9)
        XCTAssertEqual(stats.mean, 5)
        XCTAssertEqual(stats.std, 2, accuracy: 1e-12)
        XCTAssertEqual(stats.p50, 4.5, accuracy: 1e-12)
    }

    func testPercentilesInterpolateLikeNumpy() {
        let sorted = (1...10).map(Double.init)
        XCTAssertEqual(LatencyStatistics.percentile(sorted: sorted, 50), 5.5, accuracy: 1e-12)
        XCTAssertEqual(LatencyStatistics.percentile(sorted: sorted, 90), 9.1, accuracy: 1e-12)
        XCTAssertEqual(LatencyStatistics.percentile(sorted: sorted, 0), 1)
        XCTAssertEqual(LatencyStatistics.percentile(sorted: sorted, 100), 10)
        XCTAssertEqual(LatencyStatistics.percentile(sorted: [3], 90), 3)
    }

    func testOrderDoesNotMatter() throws {
        let a = try LatencyStatistics(samples: [5, 1, 3, 2, 4])
        let b = try LatencyStatistics(samples: [1, 2, 3, 4, 5])
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.p90, 4.6, accuracy: 1e-12)
    }

    func testEmptySamplesThrow() {
        XCTAssertThrowsError(try LatencyStatistics(samples: [])) { error in
            XCTAssertEqual(error as? BenchmarkError, .noSamples)
        }
    }

    func testSumsAreExactlyRoundedLikeFsum() {
        XCTAssertEqual(LatencyStatistics.exactSum([1e100, 1.0, -1e100]), 1.0)
        XCTAssertEqual(LatencyStatistics.exactSum(Array(repeating: 0.1, count: 10)), 1.0)
        XCTAssertEqual(LatencyStatistics.exactSum([]), 0.0)
        XCTAssertEqual(LatencyStatistics.exactSum([1.0, 1e-16, 1e-16]), 1.0000000000000002)
    }

    func testNegativeOrNonFiniteSamplesAreRejected() {
        for bad in [-1.0, Double.nan, Double.infinity] {
            XCTAssertThrowsError(try LatencyStatistics(samples: [1.0, bad]))
        }
    }
}
