import BenchmarkKit
import Foundation

/// App-wide state: the server (from the Keychain) and the host's artifact list.
@MainActor
final class AppModel: ObservableObject {
    @Published private(set) var server: ServerConfig?
    @Published private(set) var artifacts: [ArtifactManifest] = []
    @Published var errorMessage: String?
    @Published private(set) var isLoading = false

    private static let urlAccount = "server-url"
    private static let tokenAccount = "server-token"

    init() {
        if let url = KeychainStore.load(account: Self.urlAccount) {
            server = try? ServerConfig.parse(url: url, token: KeychainStore.load(account: Self.tokenAccount))
        }
    }

    var client: APIClient? {
        server.map { APIClient(config: $0) }
    }

    func saveServer(url: String, token: String) {
        do {
            let config = try ServerConfig.parse(url: url, token: token)
            try KeychainStore.save(config.baseURL.absoluteString, account: Self.urlAccount)
            if let token = config.token {
                try KeychainStore.save(token, account: Self.tokenAccount)
            } else {
                KeychainStore.delete(account: Self.tokenAccount)
            }
            server = config
            errorMessage = nil
        } catch {
            errorMessage = error.localizedDescription
        }
    }

    func forgetServer() {
        KeychainStore.delete(account: Self.urlAccount)
        KeychainStore.delete(account: Self.tokenAccount)
        server = nil
        artifacts = []
    }

    /// Core ML artifacts only: this app runs .mlpackage / .mlmodelc.
    func refreshArtifacts() async {
        guard let client else {
            return
        }
        isLoading = true
        defer {
            isLoading = false
        }
        do {
            _ = await ResultOutbox.queue.flush(to: client)  // results kept from failed uploads go first
            artifacts = try await client.listArtifacts().filter { $0.format == "coreml" }
            errorMessage = artifacts.isEmpty ? "The server lists no Core ML artifacts (mobexport coreml MODEL)." : nil
        } catch {
            errorMessage = error.localizedDescription
        }
    }
}
