import Foundation

/// Latency statistics of one run, in milliseconds, computed exactly like the host harness:
/// percentiles interpolate linearly between closest ranks (numpy's default `linear` method) and
/// `std` is the population standard deviation (ddof = 0). The minimum is the headline number.
public struct LatencyStatistics: Equatable, Sendable {
    public let min: Double
    public let p50: Double
    public let p90: Double
    public let mean: Double
    public let std: Double
    public let max: Double

    public init(samples: [Double]) throws {
        guard !samples.isEmpty else {
            throw BenchmarkError.noSamples
        }
        let sorted = samples.sorted()
        let count = Double(samples.count)
        let mean = samples.reduce(0, +) / count
        let variance = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / count
        self.min = sorted[0]
        self.max = sorted[sorted.count - 1]
        self.p50 = Self.percentile(sorted: sorted, 50)
        self.p90 = Self.percentile(sorted: sorted, 90)
        self.mean = mean
        self.std = variance.squareRoot()
    }

    /// The q-th percentile (0...100) of already sorted values, linear interpolation.
    public static func percentile(sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty, "percentile of no values")
        precondition(q >= 0 && q <= 100, "percentile outside 0...100")
        let rank = q / 100 * Double(sorted.count - 1)
        let lower = Int(rank.rounded(.down))
        let upper = Swift.min(lower + 1, sorted.count - 1)
        let fraction = rank - Double(lower)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
    }
}
