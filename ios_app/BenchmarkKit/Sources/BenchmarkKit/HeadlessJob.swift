import Foundation

/// A run without a tap, for device farms: the job comes from the app's launch arguments
/// (`xcrun devicectl device process launch ... dev.mobexport.bench -server http://HOST:8765 -runs 500`), or from
/// the environment of the XCTest entry (`MOBEXPORT_SERVER=...`, which `xcodebuild test` passes on as
/// `TEST_RUNNER_MOBEXPORT_SERVER=...`). The keys are benchkit's HeadlessJob's (Android intent extras):
///
/// - `server` (required: a headless run is one that names a server), `token`;
/// - `artifacts`: comma-separated `model/target` ids, or `all` (default) for every artifact this app can run;
/// - `runs`, `warmup`, `cooldown` (seconds): the protocol (`BenchmarkConfig`, host defaults);
/// - `threads` (default 4; recorded, Core ML picks its own) and `delegate`: one of the app's compute units.
///
/// A bad value is a `BenchmarkError.invalidConfig` naming it, before anything runs.
public struct HeadlessJob: Equatable, Sendable {
    public static let keys = ["server", "token", "artifacts", "runs", "warmup", "cooldown", "threads", "delegate"]
    public static let defaultThreads = 4
    public static let maxThreads = 64

    public var server: ServerConfig
    public var artifacts: [String]
    public var config: BenchmarkConfig
    public var threads: Int
    public var delegate: String

    /// The manifests to run, in the order asked; an id the server does not list is an error naming it.
    public func select(_ available: [ArtifactManifest]) throws -> [ArtifactManifest] {
        guard !artifacts.isEmpty else {
            return available
        }
        let byID = Dictionary(available.map { ("\($0.model)/\($0.target)", $0) }, uniquingKeysWith: { first, _ in first })
        let missing = artifacts.filter { byID[$0] == nil }
        guard missing.isEmpty else {
            throw BenchmarkError.invalidConfig("the server lists no runnable artifact \(missing) (it lists \(byID.keys.sorted()))")
        }
        return artifacts.compactMap { byID[$0] }
    }

    /// Launch arguments (`-server URL -runs 500 ...`; `-mobexport-server` is accepted too) and the environment
    /// (`MOBEXPORT_SERVER`, ...: the XCTest entry) into one key -> text map; arguments win. Others are ignored.
    public static func values(arguments: [String], environment: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for key in Self.keys {
            if let value = environment["MOBEXPORT_" + key.uppercased()] {
                out[key] = value
            }
        }
        var index = 0
        while index < arguments.count {
            var name = arguments[index]
            if name.hasPrefix("-mobexport-") {
                name.removeFirst("-mobexport-".count)
            } else if name.hasPrefix("-") {
                name.removeFirst()
            }
            if arguments[index].hasPrefix("-") && Self.keys.contains(name) && index + 1 < arguments.count {
                out[name] = arguments[index + 1]
                index += 2
            } else {
                index += 1
            }
        }
        return out
    }

    /// The job in `values`, or nil when there is no `server` (an interactive launch). `delegates`: the app's
    /// compute-unit names; the first is the default.
    public static func parse(_ values: [String: String], delegates: [String]) throws -> HeadlessJob? {
        guard let server = values["server"]?.trimmingCharacters(in: .whitespaces), !server.isEmpty else {
            return nil
        }
        let unknown = values.keys.filter { !Self.keys.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw BenchmarkError.invalidConfig("unknown headless argument(s) \(unknown); known: \(Self.keys)")
        }
        let delegateText = values["delegate"]?.trimmingCharacters(in: .whitespaces) ?? ""
        let delegate = delegateText.isEmpty ? (delegates.first ?? "") : delegateText
        guard let matched = delegates.first(where: { $0.lowercased() == delegate.lowercased() }) else {
            throw BenchmarkError.invalidConfig("delegate must be one of \(delegates), got '\(delegate)'")
        }
        let config = BenchmarkConfig(
            warmup: try number(values, "warmup") ?? BenchmarkConfig.defaultWarmup,
            runs: try number(values, "runs") ?? BenchmarkConfig.defaultRuns,
            cooldownSeconds: Double(try number(values, "cooldown") ?? 0)
        )
        try config.validate()
        let threads = try number(values, "threads") ?? defaultThreads
        guard threads >= 1 && threads <= maxThreads else {
            throw BenchmarkError.invalidConfig("threads must be in 1...\(maxThreads), got \(threads)")
        }
        return HeadlessJob(server: try ServerConfig.parse(url: server, token: values["token"]),
                           artifacts: try artifactIDs(values["artifacts"]), config: config, threads: threads,
                           delegate: matched)
    }

    private static func number(_ values: [String: String], _ key: String) throws -> Int? {
        guard let text = values[key]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else {
            return nil
        }
        guard let value = Int(text) else {
            throw BenchmarkError.invalidConfig("\(key) must be a whole number, got '\(text)'")
        }
        return value
    }

    private static func artifactIDs(_ text: String?) throws -> [String] {
        let ids = (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if ids.isEmpty || ids == ["all"] {
            return []
        }
        let bad = ids.filter { id in
            let parts = id.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count != 2 || parts.contains { $0.isEmpty || $0.contains(where: { !isIDCharacter($0) }) }
        }
        guard bad.isEmpty else {
            throw BenchmarkError.invalidConfig("artifacts must be model/target ids such as mobileone_s0/coreml-fp16, got \(bad)")
        }
        var seen = Set<String>()
        return ids.filter { seen.insert($0).inserted }
    }

    private static func isIDCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "." || c == "-")
    }
}
