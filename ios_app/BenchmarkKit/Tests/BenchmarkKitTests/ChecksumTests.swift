import BenchmarkKit
import Foundation
import XCTest

final class ChecksumTests: XCTestCase {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    private func portable(_ data: Data, chunk: Int) -> String {
        var hasher = PortableSHA256()
        var offset = 0
        while offset < data.count {
            hasher.update(data.subdata(in: offset..<min(offset + chunk, data.count)))
            offset += chunk
        }
        return hex(hasher.finalize())
    }

    /// The FIPS 180-4 examples, fed whole and in uneven chunks.
    func testPortableSHA256MatchesTheFIPSExamples() {
        let cases = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ]
        for (text, digest) in cases {
            XCTAssertEqual(portable(Data(text.utf8), chunk: 1 << 20), digest, text)
            XCTAssertEqual(portable(Data(text.utf8), chunk: 7), digest, text)
        }
        let million = Data(repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(portable(million, chunk: 65_537),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testFileChecksum() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try Data("abc".utf8).write(to: url)
        defer {
            try? FileManager.default.removeItem(at: url)
        }
        XCTAssertEqual(try Checksum.sha256Hex(of: url),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
