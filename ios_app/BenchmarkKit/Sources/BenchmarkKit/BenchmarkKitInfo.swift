/// Version of the benchmark logic, recorded in tool_versions.
public enum BenchmarkKitInfo {
    public static let version = "0.1.0"
}
