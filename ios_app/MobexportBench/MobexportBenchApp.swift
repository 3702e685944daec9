import SwiftUI

@main
struct MobexportBenchApp: App {
    @StateObject private var appModel = AppModel()

    var body: some Scene {
        WindowGroup {
            RootView()
                .environmentObject(appModel)
        }
    }
}

struct RootView: View {
    @EnvironmentObject private var appModel: AppModel

    var body: some View {
        NavigationStack {
            if appModel.server == nil {
                ServerSettingsView()
            } else {
                ArtifactListView()
            }
        }
    }
}
