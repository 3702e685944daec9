import Foundation

/// iOS has no public API for the SoC name: map the model identifier (utsname.machine) to the chip.
/// Only identifiers we are sure of are listed; anything else is reported as "unknown (<identifier>)".
public enum AppleChips {
    static let table: [String: String] = [
        "iPhone12,1": "Apple A13 Bionic",
        "iPhone12,3": "Apple A13 Bionic",
        "iPhone12,5": "Apple A13 Bionic",
        "iPhone12,8": "Apple A13 Bionic",
        "iPhone13,1": "Apple A14 Bionic",
        "iPhone13,2": "Apple A14 Bionic",
        "iPhone13,3": "Apple A14 Bionic",
        "iPhone13,4": "Apple A14 Bionic",
        "iPhone14,2": "Apple A15 Bionic",
        "iPhone14,3": "Apple A15 Bionic",
        "iPhone14,4": "Apple A15 Bionic",
        "iPhone14,5": "Apple A15 Bionic",
        "iPhone14,6": "Apple A15 Bionic",
        "iPhone14,7": "Apple A15 Bionic",
        "iPhone14,8": "Apple A15 Bionic",
        "iPhone15,2": "Apple A16 Bionic",
        "iPhone15,3": "Apple A16 Bionic",
        "iPhone15,4": "Apple A16 Bionic",
        "iPhone15,5": "Apple A16 Bionic",
        "iPhone16,1": "Apple A17 Pro",
        "iPhone16,2": "Apple A17 Pro",
        "iPhone17,1": "Apple A18 Pro",
        "iPhone17,2": "Apple A18 Pro",
        "iPhone17,3": "Apple A18",
        "iPhone17,4": "Apple A18",
    ]

    public static func chip(forModelIdentifier identifier: String) -> String {
        table[identifier] ?? "unknown (\(identifier))"
    }
}
