import Foundation

/// Latency statistics of one run, in milliseconds, computed exactly like the host harness:
/// percentiles interpolate linearly between closest ranks (numpy's default `linear` method), sums are exactly
/// rounded (Python's math.fsum, which benchmarks/results.py uses) and `std` is the population standard deviation
/// (ddof = 0), so the same samples give the host's numbers bit for bit. The minimum is the headline number.
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
        guard samples.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw BenchmarkError.invalidConfig("latency samples must be finite and non-negative")
        }
        let sorted = samples.sorted()
        let count = Double(samples.count)
        let mean = Self.exactSum(samples) / count
        let variance = Self.exactSum(samples.map { ($0 - mean) * ($0 - mean) }) / count
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

    /// The correctly rounded sum of finite values: Shewchuk's partials, as CPython's math.fsum computes it
    /// (including its round-half-even correction), so the mean and std equal the host's.
    public static func exactSum(_ values: [Double]) -> Double {
        var partials: [Double] = []
        for value in values {
            var x = value
            var i = 0
            for j in 0..<partials.count {
                var y = partials[j]
                if abs(x) < abs(y) {
                    swap(&x, &y)
                }
                let hi = x + y
                let lo = y - (hi - x)
                if lo != 0 {
                    partials[i] = lo
                    i += 1
                }
                x = hi
            }
            partials.removeSubrange(i...)
            partials.append(x)
        }
        return roundPartials(partials)
    }

    private static func roundPartials(_ partials: [Double]) -> Double {
        var n = partials.count
        guard n > 0 else {
            return 0
        }
        n -= 1
        var hi = partials[n]
        var lo: Double = 0
        while n > 0 {
            let x = hi
            n -= 1
            let y = partials[n]
            hi = x + y
            lo = y - (hi - x)
            if lo != 0 {
                break
            }
        }
        if n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0)) {
            let y = lo * 2
            let x = hi + y
            if y == x - hi {
                hi = x
            }
        }
        return hi
    }
}
