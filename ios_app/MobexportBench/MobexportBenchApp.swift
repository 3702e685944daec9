import BenchmarkKit
import SwiftUI
import UIKit

@main
struct MobexportBenchApp: App {
    @StateObject private var appModel = AppModel()

    var body: some Scene {
        WindowGroup {
            RootView()
                .environmentObject(appModel)
                .task {
                    await Self.runHeadlessIfAsked()
                }
        }
    }

    /// Launched with `-server URL ...` (device farms, `xcrun devicectl device process launch`): run without a tap,
    /// keep the screen on, post, and exit (0 when every artifact was measured and posted). Not under XCTest,
    /// whose entry (MobexportBenchTests) runs the job itself.
    @MainActor
    static func runHeadlessIfAsked() async {
        guard ProcessInfo.processInfo.environment["XCTestConfigurationFilePath"] == nil else {
            return
        }
        let job: HeadlessJob
        do {
            guard let parsed = try HeadlessRun.job() else {
                return
            }
            job = parsed
        } catch {
            print("mobexport: headless run refused: \(error.localizedDescription)")
            exit(2)
        }
        UIApplication.shared.isIdleTimerDisabled = true
        do {
            let outcome = try await HeadlessRun.run(job)
            exit(outcome.ok ? 0 : 1)
        } catch {
            print("mobexport: headless run failed: \(error.localizedDescription)")
            exit(1)
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
