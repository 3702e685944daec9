import Foundation

/// Core ML compute units as recorded in `compute_unit` (the app maps them to MLComputeUnits).
public enum ComputeUnitChoice: String, CaseIterable, Identifiable, Sendable {
    case all = "ALL"
    case cpuAndNeuralEngine = "CPU_AND_NE"
    case cpuOnly = "CPU_ONLY"
    case cpuAndGPU = "CPU_AND_GPU"

    public var id: String {
        rawValue
    }

    public var title: String {
        switch self {
        case .all:
            return "All (CPU + GPU + Neural Engine)"
        case .cpuAndNeuralEngine:
            return "CPU + Neural Engine"
        case .cpuOnly:
            return "CPU only"
        case .cpuAndGPU:
            return "CPU + GPU"
        }
    }
}

/// Thermal states as strings for thermal_state_before / thermal_state_after.
public enum ThermalStateName {
    /// ProcessInfo.ThermalState raw values 0...3.
    public static func name(rawValue: Int) -> String {
        switch rawValue {
        case 0:
            return "nominal"
        case 1:
            return "fair"
        case 2:
            return "serious"
        case 3:
            return "critical"
        default:
            return "unknown"
        }
    }
}
