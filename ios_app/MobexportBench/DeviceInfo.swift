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

    /// Peak physical footprint of this process (what iOS counts against the app), in MiB.
    static func peakMemoryFootprintMB() -> Double? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<integer_t>.size)
        let status = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { raw in
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), raw, &count)
            }
        }
        guard status == KERN_SUCCESS else {
            return nil
        }
        return Double(info.ledger_phys_footprint_peak) / 1_048_576
    }
}
