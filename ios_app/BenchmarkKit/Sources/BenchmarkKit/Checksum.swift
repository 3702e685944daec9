import Foundation
#if canImport(CryptoKit)
import CryptoKit
#endif

public enum Checksum {
    /// Lower-case hex SHA-256 of a file, read in 1 MiB chunks.
    public static func sha256Hex(of url: URL) throws -> String {
        #if canImport(CryptoKit)
        let handle = try FileHandle(forReadingFrom: url)
        defer {
            try? handle.close()
        }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
        #else
        throw BenchmarkError.badResponse("SHA-256 needs CryptoKit")
        #endif
    }
}
