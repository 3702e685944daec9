import BenchmarkKit
import Darwin
import Foundation
import UIKit

/// Device facts for the result record.
enum DeviceInfo {
    /// utsname.machine, e.g. "iPhone15,2" (the simulator reports the simulated model's identifier).
    static func machineIdentifier() -> String {
        if let simulated = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] {
            return simulated
        }
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static var osVersion: String {
        let v = ProcessInfo.processInfo.operatingSystemVersion
        return "\(v.majorVersion).\(v.minorVersion).\(v.patchVersion)"
    }

    /// Core ML has no version of its own: it ships with the OS.
    static var coreMLVersion: String {
        "iOS \(osVersion)"
    }

    @MainActor
    static func description() -> DeviceDescription {
        let identifier = machineIdentifier()
        return DeviceDescription(
            deviceModel: identifier,
            os: UIDevice.current.systemName,
            osVersion: osVersion,
            chip: AppleChips.chip(forModelIdentifier: identifier)
        )
    }

    static func thermalState() -> String {
        ThermalStateName.name(rawValue: ProcessInfo.processInfo.thermalState.rawValue)
    }

    static var toolVersions: [String: String] {
        let app = Bundle.main.object(forInfoDictionaryKey: "CFBundleShortVersionString") as? String ?? "unknown"
        return ["mobexport_bench_ios": app, "benchmarkkit": BenchmarkKitInfo.version]
    }

    /// Peak resident set size of this process in MiB (getrusage's ru_maxrss, bytes on Darwin): the host's
    /// peak_rss_mb (VmHWM on Linux). No Mach task port involved, so nothing reads the global mach_task_self_
    /// (shared mutable state under Swift 6's strict concurrency).
    static func peakMemoryFootprintMB() -> Double? {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF, &usage) == 0 else {
            return nil
        }
        return Double(usage.ru_maxrss) / 1_048_576
    }
}
