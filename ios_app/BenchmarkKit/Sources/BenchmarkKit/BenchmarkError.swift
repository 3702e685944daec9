import Foundation

/// Every failure BenchmarkKit reports, with a message a user can act on.
public enum BenchmarkError: Error, LocalizedError, Equatable {
    case noSamples
    case invalidConfig(String)
    case invalidManifest(String)
    case invalidServerURL(String)
    case http(status: Int, body: String)
    case badResponse(String)
    case checksumMismatch(expected: String, actual: String)
    case cancelled

    public var errorDescription: String? {
        switch self {
        case .noSamples:
            return "No latency samples were recorded."
        case .invalidConfig(let why):
            return "Invalid benchmark settings: \(why)"
        case .invalidManifest(let why):
            return "The artifact manifest cannot be used: \(why)"
        case .invalidServerURL(let text):
            return "'\(text)' is not a server URL (expected e.g. http://192.168.1.20:8765)."
        case .http(let status, let body):
            let hint = status == 401 || status == 403 ? " Check the token (mobexport serve --token)." : ""
            return "The server answered HTTP \(status): \(body.prefix(300))\(hint)"
        case .badResponse(let why):
            return "Unexpected server response: \(why)"
        case .checksumMismatch(let expected, let actual):
            return "Downloaded artifact has sha256 \(actual), the manifest says \(expected)."
        case .cancelled:
            return "The benchmark was cancelled."
        }
    }
}
