import BenchmarkKit
import CoreML
import Foundation
import ZIPFoundation

/// Downloads, unpacks and compiles each artifact once (MLModel.compileModel on the device); the compiled
/// model is cached under Application Support by the artifact's sha256.
actor ArtifactStore {
    static let shared = ArtifactStore()

    private let fileManager = FileManager.default

    private var root: URL {
        let support = fileManager.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
        return support.appendingPathComponent("artifacts", isDirectory: true)
    }

    func compiledModel(for manifest: ArtifactManifest, client: APIClient) async throws -> URL {
        let directory = root.appendingPathComponent(manifest.sha256, isDirectory: true)
        let compiled = directory.appendingPathComponent("model.mlmodelc", isDirectory: true)
        if fileManager.fileExists(atPath: compiled.path) {
            return compiled
        }
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
        let download = try await client.download(model: manifest.model, target: manifest.target)
        let source = try unpack(download.file, isZip: download.isZip, manifest: manifest, into: directory)
        let built: URL
        if source.pathExtension == "mlmodelc" {
            built = source
        } else {
            built = try await MLModel.compileModel(at: source)
        }
        try? fileManager.removeItem(at: compiled)
        try fileManager.moveItem(at: built, to: compiled)
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
