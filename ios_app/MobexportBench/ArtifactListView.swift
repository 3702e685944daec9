import BenchmarkKit
import SwiftUI

struct ArtifactListView: View {
    @EnvironmentObject private var appModel: AppModel

    var body: some View {
        List {
            if let message = appModel.errorMessage {
                Text(message)
                    .foregroundStyle(.red)
            }
            ForEach(appModel.artifacts) { manifest in
                NavigationLink(value: manifest.id) {
                    VStack(alignment: .leading) {
                        Text(manifest.model)
                            .font(.headline)
                        Text("\(manifest.target)  \(manifest.input.shape.map(String.init).joined(separator: "x"))")
                            .font(.caption)
                            .foregroundStyle(.secondary)
                    }
                }
            }
        }
        .navigationTitle("Artifacts")
        .navigationDestination(for: String.self) { id in
            if let manifest = appModel.artifacts.first(where: { $0.id == id }), let client = appModel.client {
                BenchmarkView(session: BenchmarkSession(manifest: manifest, client: client))
            }
        }
        .toolbar {
            ToolbarItem(placement: .navigationBarLeading) {
                Button("Server") {
                    appModel.forgetServer()
                }
            }
            ToolbarItem(placement: .navigationBarTrailing) {
                if appModel.isLoading {
                    ProgressView()
                }
            }
        }
        .refreshable {
            await appModel.refreshArtifacts()
        }
        .task {
            await appModel.refreshArtifacts()
        }
    }
}
