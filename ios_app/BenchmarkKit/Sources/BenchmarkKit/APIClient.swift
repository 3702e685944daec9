import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Where `mobexport serve` runs, and its bearer token (nil when the server has none).
public struct ServerConfig: Codable, Equatable, Sendable {
    public var baseURL: URL
    public var token: String?

    public init(baseURL: URL, token: String?) {
        self.baseURL = baseURL
        self.token = token
    }

    /// Parses what the user typed: "192.168.1.20:8765" or "http://host:8765/"; only http and https.
    public static func parse(url text: String, token: String?) throws -> ServerConfig {
        var trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if !trimmed.contains("://") {
            trimmed = "http://" + trimmed
        }
        while trimmed.hasSuffix("/") {
            trimmed.removeLast()
        }
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(),
              scheme == "http" || scheme == "https", url.host != nil else {
            throw BenchmarkError.invalidServerURL(text)
        }
        let cleanToken = token?.trimmingCharacters(in: .whitespacesAndNewlines)
        return ServerConfig(baseURL: url, token: (cleanToken?.isEmpty ?? true) ? nil : cleanToken)
    }
}

/// Client of the mobexport serve HTTP API (v1). Sendable: its state is two constants, and URLSession is
/// thread-safe (checked by hand: FoundationNetworking on Linux does not mark URLSession Sendable), so it may be
/// handed to actors such as the app's ArtifactStore.
public final class APIClient: @unchecked Sendable {
    public let config: ServerConfig
    private let session: URLSession

    public init(config: ServerConfig, session: URLSession = .shared) {
        self.config = config
        self.session = session
    }

    /// GET /api/v1/artifacts
    public func listArtifacts() async throws -> [ArtifactManifest] {
        let data = try await send(request(path: ["api", "v1", "artifacts"]))
        return try ArtifactList.decode(data)
    }

    /// GET /api/v1/artifacts/{model}/{target}/manifest
    public func manifest(model: String, target: String) async throws -> ArtifactManifest {
        let data = try await send(request(path: ["api", "v1", "artifacts", model, target, "manifest"]))
        do {
            return try JSONDecoder().decode(ArtifactManifest.self, from: data)
        } catch {
            throw BenchmarkError.badResponse("manifest of \(model)/\(target): \(error)")
        }
    }

    /// GET /api/v1/artifacts/{model}/{target}/download. Returns the downloaded temporary file and whether the
    /// server sent a zip (directory artifacts such as .mlpackage / .mlmodelc are zipped).
    public func download(model: String, target: String) async throws -> (file: URL, isZip: Bool) {
        let req = request(path: ["api", "v1", "artifacts", model, target, "download"])
        let (file, response) = try await session.download(for: req)
        var errorBody = Data()
        if let status = (response as? HTTPURLResponse)?.statusCode, !(200..<300).contains(status) {
            errorBody = (try? Data(contentsOf: file)) ?? Data()
        }
        let http = try check(response, body: errorBody)
        let type = (http.value(forHTTPHeaderField: "Content-Type") ?? "").lowercased()
        let disposition = (http.value(forHTTPHeaderField: "Content-Disposition") ?? "").lowercased()
        let isZip = type.contains("zip") || disposition.contains(".zip")
        return (file, isZip)
    }

    /// POST /api/v1/results, one result per request; see `PendingUploads` for the upload that is never lost.
    public func postResult(_ result: BenchmarkResult) async throws {
        try await postJSON(result.jsonData())
    }

    /// POST /api/v1/results with a result already encoded as JSON.
    public func postJSON(_ body: Data) async throws {
        var req = request(path: ["api", "v1", "results"], method: "POST")
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        req.httpBody = body
        _ = try await send(req)
    }

    /// The request for a path below the base URL, with the bearer token when one is configured.
    public func request(path: [String], method: String = "GET") -> URLRequest {
        var url = config.baseURL
        for component in path {
            url.appendPathComponent(component)
        }
        var req = URLRequest(url: url)
        req.httpMethod = method
        req.timeoutInterval = 60
        req.setValue("application/json", forHTTPHeaderField: "Accept")
        if let token = config.token {
            req.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        }
        return req
    }

    private func send(_ req: URLRequest) async throws -> Data {
        let (data, response) = try await session.data(for: req)
        _ = try check(response, body: data)
        return data
    }

    private func check(_ response: URLResponse, body: Data) throws -> HTTPURLResponse {
        guard let http = response as? HTTPURLResponse else {
            throw BenchmarkError.badResponse("not an HTTP response")
        }
        guard (200..<300).contains(http.statusCode) else {
            throw BenchmarkError.http(status: http.statusCode, body: String(decoding: body, as: UTF8.self))
        }
        return http
    }
}
