import BenchmarkKit
import SwiftUI
import UIKit

struct BenchmarkView: View {
    @StateObject private var session: BenchmarkSession

    init(session: BenchmarkSession) {
        _session = StateObject(wrappedValue: session)
    }

    var body: some View {
        Form {
            Section("Artifact") {
                LabeledContent("Model", value: session.manifest.model)
                LabeledContent("Target", value: session.manifest.target)
                LabeledContent("Input", value: inputText)
                LabeledContent("sha256", value: String(session.manifest.sha256.prefix(12)))
            }
            Section("Protocol") {
                Picker("Compute units", selection: $session.computeUnit) {
                    ForEach(ComputeUnitChoice.allCases) { unit in
                        Text(unit.title)
                            .tag(unit)
                    }
                }
                Stepper("Timed runs: \(session.runs)", value: $session.runs, in: 100...BenchmarkConfig.maxRuns, step: 100)
                Stepper("Warm-up runs: \(session.warmup)", value: $session.warmup, in: 0...200, step: 5)
                Stepper("Cool-down: \(Int(session.cooldownSeconds)) s", value: $session.cooldownSeconds,
                        in: 0...BenchmarkConfig.maxCooldownSeconds, step: 10)
                Text("The host's protocol: load (timed), one checked call and the warm-up, then timed predictions (monotonic clock).")
                    .font(.footnote)
                    .foregroundStyle(.secondary)
            }
            .disabled(session.isBusy)
            Section("Run") {
                if session.isBusy {
                    ProgressView(value: session.progress) {
                        Text(session.phase.title)
                    }
                    Button("Cancel", role: .destructive) {
                        session.cancel()
                    }
                } else {
                    Button("Run benchmark") {
                        session.start()
                    }
                }
                if case .failed(let message) = session.phase {
                    Text(message)
                        .foregroundStyle(.red)
                }
            }
            if let result = session.result {
                ResultSection(result: result, postError: session.postError)
            }
        }
        .navigationTitle(session.manifest.model)
        // Runs and cool-downs last minutes: no auto-lock (which would suspend the app mid-loop) while busy.
        .onChange(of: session.isBusy) { busy in
            UIApplication.shared.isIdleTimerDisabled = busy
        }
        .onDisappear {
            UIApplication.shared.isIdleTimerDisabled = false
        }
    }

    private var inputText: String {
        let input = session.manifest.input
        let shape = input.shape.map(String.init).joined(separator: "x")
        return "\(input.name) \(shape) \(input.dtype)"
    }
}

struct ResultSection: View {
    let result: BenchmarkResult
    let postError: String?

    var body: some View {
        Section("Result (ms)") {
            LabeledContent("min (headline)", value: format(result.minMs))
                .font(.headline)
            LabeledContent("p50", value: format(result.p50Ms))
            LabeledContent("p90", value: format(result.p90Ms))
            LabeledContent("mean ± std", value: "\(format(result.meanMs)) ± \(format(result.stdMs))")
            LabeledContent("max", value: format(result.maxMs))
            LabeledContent("runs", value: "\(result.runs) (+\(result.warmup) warm-up)")
            LabeledContent("load", value: result.loadMs.map(format) ?? "-")
            LabeledContent("thermal", value: "\(result.thermalStateBefore ?? "-") → \(result.thermalStateAfter ?? "-")")
            LabeledContent("device", value: "\(result.deviceModel) (\(result.chip))")
            if let postError {
                Text(postError)
                    .foregroundStyle(.red)
            } else {
                Text("Posted to the server; see `mobexport results`.")
                    .foregroundStyle(.secondary)
            }
        }
    }

    private func format(_ value: Double) -> String {
        String(format: "%.3f", value)
    }
}
