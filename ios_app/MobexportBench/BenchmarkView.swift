import BenchmarkKit
import SwiftUI

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
                Stepper("Timed runs: \(session.runs)", value: $session.runs, in: 100...100_000, step: 100)
                Stepper("Cool-down: \(Int(session.cooldownSeconds)) s", value: $session.cooldownSeconds, in: 0...300, step: 10)
                Text("Model loaded once, 1 warm-up, then timed round trips (monotonic clock).")
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
