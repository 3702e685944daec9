import BenchmarkKit
import CoreML
import Foundation
import ZIPFoundation

/// Downloads, unpacks and compiles each artifact once (MLModel.compileModel on the device); the compiled
/// model is cached under Application Support by the artifact's sha256. The actor is reentrant at each await, so
/// a second request for an artifact being prepared waits for the first one's task instead of racing it through
/// the same directory. Downloads, unzipped folders and compiler output are removed once used.
actor ArtifactStore {
    static let shared = ArtifactStore()

    private let fileManager = FileManager.default
    private var inFlight: [String: Task<URL, Error>] = [:]

    private var root: URL {
        let support = fileManager.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
        return support.appendingPathComponent("artifacts", isDirectory: true)
    }

    func compiledModel(for manifest: ArtifactManifest, client: APIClient) async throws -> URL {
        let compiled = root.appendingPathComponent(manifest.sha256, isDirectory: true)
            .appendingPathComponent("model.mlmodelc", isDirectory: true)
        if fileManager.fileExists(atPath: compiled.path) {
            return compiled
        }
        if let running = inFlight[manifest.sha256] {
            return try await running.value
        }
        let task = Task {
            try await self.prepare(manifest, client: client, compiled: compiled)
        }
        inFlight[manifest.sha256] = task
        defer {
            inFlight[manifest.sha256] = nil
        }
        return try await task.value
    }

    private func prepare(_ manifest: ArtifactManifest, client: APIClient, compiled: URL) async throws -> URL {
        let directory = compiled.deletingLastPathComponent()
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
        let download = try await client.download(model: manifest.model, target: manifest.target)
        defer {
            try? fileManager.removeItem(at: download.file)
        }
        let source = try unpack(download.file, isZip: download.isZip, manifest: manifest, into: directory)
        defer {
            try? fileManager.removeItem(at: directory.appendingPathComponent("unzipped", isDirectory: true))
        }
        let built: URL
        if source.pathExtension == "mlmodelc" {
            built = source
        } else {
            built = try await MLModel.compileModel(at: source)
            try? fileManager.removeItem(at: source)
        }
        try? fileManager.removeItem(at: compiled)
        do {
            try fileManager.moveItem(at: built, to: compiled)
        } catch {
            try? fileManager.removeItem(at: built)
            throw error
        }
        return compiled
    }

    /// Directory artifacts (.mlpackage, .mlmodelc) arrive zipped; a single .mlmodel file is checked against
    /// the manifest's sha256 before use.
    private func unpack(_ file: URL, isZip: Bool, manifest: ArtifactManifest, into directory: URL) throws -> URL {
        if isZip {
            let unzipped = directory.appendingPathComponent("unzipped", isDirectory: true)
            try? fileManager.removeItem(at: unzipped)
            try fileManager.createDirectory(at: unzipped, withIntermediateDirectories: true)
            try fileManager.unzipItem(at: file, to: unzipped)
            return try findModel(in: unzipped)
        }
        let actual = try Checksum.sha256Hex(of: file)
        guard actual == manifest.sha256 else {
            throw BenchmarkError.checksumMismatch(expected: manifest.sha256, actual: actual)
        }
        let name = URL(fileURLWithPath: manifest.file ?? "model.mlmodel").lastPathComponent
        let destination = directory.appendingPathComponent(name)
        try? fileManager.removeItem(at: destination)
        try fileManager.moveItem(at: file, to: destination)
        return destination
    }

    /// The zip holds either the bundle itself (x.mlpackage/...) or the bundle's contents (Manifest.json, Data/).
    private func findModel(in directory: URL) throws -> URL {
        let items = try fileManager.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        if let bundle = items.first(where: { ["mlpackage", "mlmodelc", "mlmodel"].contains($0.pathExtension) }) {
            return bundle
        }
        let names = Set(items.map(\.lastPathComponent))
        let fileExtension: String
        if names.contains("Manifest.json") {
            fileExtension = "mlpackage"
        } else if names.contains("coremldata.bin") {
            fileExtension = "mlmodelc"
        } else {
            throw BenchmarkError.invalidManifest("the downloaded zip holds no .mlpackage or .mlmodelc")
        }
        let renamed = directory.deletingLastPathComponent().appendingPathComponent("model.\(fileExtension)")
        try? fileManager.removeItem(at: renamed)
        try fileManager.moveItem(at: directory, to: renamed)
        return renamed
    }
}
