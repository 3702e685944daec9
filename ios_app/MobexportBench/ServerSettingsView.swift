import SwiftUI

/// Asked once: where `mobexport serve` runs and its token. Both are stored in the Keychain.
struct ServerSettingsView: View {
    @EnvironmentObject private var appModel: AppModel
    @State private var url = ""
    @State private var token = ""

    var body: some View {
        Form {
            Section {
                TextField("http://192.168.1.20:8765", text: $url)
                    .textInputAutocapitalization(.never)
                    .autocorrectionDisabled()
                    .keyboardType(.URL)
                SecureField("Token (mobexport serve --token)", text: $token)
            } header: {
                Text("mobexport server")
            } footer: {
                Text("Run `mobexport serve --host 0.0.0.0 --token <TOKEN>` on your computer and enter its LAN address.")
            }
            if let message = appModel.errorMessage {
                Section {
                    Text(message)
                        .foregroundStyle(.red)
                }
            }
            Button("Save") {
                appModel.saveServer(url: url, token: token)
            }
            .disabled(url.isEmpty)
        }
        .navigationTitle("Connect")
    }
}
