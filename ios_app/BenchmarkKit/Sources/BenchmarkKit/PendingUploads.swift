import Foundation

/// What one `PendingUploads.flush` did.
public struct FlushReport: Equatable, Sendable {
    public var posted: Int
    public var kept: Int
    public var rejected: Int
    public var lastError: String?

    public init(posted: Int, kept: Int, rejected: Int, lastError: String?) {
        self.posted = posted
        self.kept = kept
        self.rejected = rejected
        self.lastError = lastError
    }
}

/// Results waiting for the server, one JSON file each (benchkit's PendingUploads on Android). A result is written
/// here before its first upload attempt and deleted only once the server has answered 2xx, so a failed upload (no
/// network, server down, app killed) is kept on the device and retried by the next `flush`. A result the server
/// refuses for good (400, 413, 415, 422: retrying cannot help) moves to `rejected/`, kept, never retried.
public struct PendingUploads: Sendable {
    public static let permanentStatuses: Set<Int> = [400, 413, 415, 422]

    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    private var rejectedDirectory: URL {
        directory.appendingPathComponent("rejected", isDirectory: true)
    }

    /// Stores the result (written to a temporary name, then moved) and returns its file.
    @discardableResult
    public func add(_ result: BenchmarkResult) throws -> URL {
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
        let stem = "\(result.timestamp.replacingOccurrences(of: ":", with: ""))-\(result.artifactSha256.prefix(12))-"
            + UUID().uuidString
        let file = directory.appendingPathComponent(stem + ".json")
        let partial = directory.appendingPathComponent(stem + ".json.part")
        try result.jsonData().write(to: partial)
        do {
            try fileManager.moveItem(at: partial, to: file)
        } catch {
            try? fileManager.removeItem(at: partial)
            throw error
        }
        return file
    }

    /// The stored results, oldest first.
    public func pending() -> [URL] {
        Self.jsonFiles(in: directory)
    }

    public func rejected() -> [URL] {
        Self.jsonFiles(in: rejectedDirectory)
    }

    /// Posts every stored result with `post` (one JSON body per call); keeps what fails (see the type's comment).
    public func flush(_ post: (Data) async throws -> Void) async -> FlushReport {
        var report = FlushReport(posted: 0, kept: 0, rejected: 0, lastError: nil)
        for file in pending() {
            do {
                let body = try Data(contentsOf: file)
                try await post(body)
                try? FileManager.default.removeItem(at: file)
                report.posted += 1
            } catch BenchmarkError.http(let status, let body) where Self.permanentStatuses.contains(status) {
                report.lastError = BenchmarkError.http(status: status, body: body).localizedDescription
                if moveAside(file) {
                    report.rejected += 1
                } else {
                    report.kept += 1
                }
            } catch {
                report.lastError = error.localizedDescription
                report.kept += 1
            }
        }
        return report
    }

    /// Posts every stored result to the server of `client`.
    public func flush(to client: APIClient) async -> FlushReport {
        await flush { try await client.postJSON($0) }
    }

    private func moveAside(_ file: URL) -> Bool {
        do {
            try FileManager.default.createDirectory(at: rejectedDirectory, withIntermediateDirectories: true)
            try FileManager.default.moveItem(at: file, to: rejectedDirectory.appendingPathComponent(file.lastPathComponent))
            return true
        } catch {
            return false
        }
    }

    private static func jsonFiles(in directory: URL) -> [URL] {
        let items = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        return items.filter { $0.pathExtension == "json" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }
}
