// Corruption inside archives is refused, and caches never serve stale or corrupt bytes (issue 16,
// part 2). Every test damages a copy of a committed fixture the way the finding describes.
import DMD2Core
@testable import DMD2Data
import Foundation
import XCTest

/// The byte range of `member`'s (stored or deflated) payload inside zip bytes, from the central
/// directory (numpy streams its members, so local headers may hold zero sizes).
func zipPayloadRange(_ zip: Data, member: String) -> Range<Int>? {
    let b = [UInt8](zip)
    func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
    func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
    guard let eocd = stride(from: b.count - 22, through: 0, by: -1).first(where: { u32($0) == 0x0605_4B50 }) else { return nil }
    var o = u32(eocd + 16)
    for _ in 0..<u16(eocd + 10) {
        guard u32(o) == 0x0201_4B50 else { return nil }
        let compressed = u32(o + 20), nameLength = u16(o + 28), extraLength = u16(o + 30), commentLength = u16(o + 32)
        let local = u32(o + 42)
        let name = String(decoding: b[(o + 46)..<(o + 46 + nameLength)], as: UTF8.self)
        if name == member {
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            return start..<(start + compressed)
        }
        o += 46 + nameLength + extraLength + commentLength
    }
    return nil
}

/// A copy of fixture `path` in `folder` with `edit` applied to its bytes.
func damagedCopy(_ path: String, in folder: URL, as name: String? = nil, _ edit: (inout Data) -> Void) throws -> URL {
    var bytes = try Data(contentsOf: fixture(path))
    edit(&bytes)
    let url = folder.appendingPathComponent(name ?? (path as NSString).lastPathComponent)
    try bytes.write(to: url)
    return url
}

final class IntegrityTests: XCTestCase {
    private var folder: URL!
    private var cache: URL!

    override func setUpWithError() throws {
        folder = try temporaryFolder(self)
        cache = folder.appendingPathComponent("cache")
    }

    func testCRC32MatchesZlib() {
        // Known values: CRC-32("123456789") = cbf43926; the fixture's recorded member CRC.
        XCTAssertEqual(CRC32Checksum.of(Data("123456789".utf8)), 0xCBF4_3926)
        var crc = CRC32Checksum()
        crc.update(Data("1234".utf8))
        crc.update(Data("56789".utf8))
        XCTAssertEqual(crc.value, 0xCBF4_3926, "streamed in chunks")
        XCTAssertEqual(CRC32Checksum.of(Data()), 0)
    }

    func testZeroedBytesInStoredDataMemberAreRefused() throws {
        let url = try damagedCopy("npz/tiny8.npz", in: folder) { bytes in
            let payload = zipPayloadRange(bytes, member: "data.npy")!
            for i in 0..<16 { bytes[payload.lowerBound + 128 + 40 + i] = 0 }
        }
        let data = try ImageNet64Dataset(url: url, resolution: 8, cacheDirectory: cache)   // header and labels are intact
        assertDataError(try data.item(0), file: "tiny8.npz", entry: "data.npy", reason: "bad CRC-32 in data.npy of tiny8.npz")
        assertDataError(try NPZArchive(url: url).read("data"), file: "tiny8.npz", entry: "data.npy", reason: "bad CRC-32")
        let cached = (try? FileManager.default.contentsOfDirectory(atPath: cache.path)) ?? []
        XCTAssertEqual(cached, [], "nothing corrupt is left in the cache")
    }

    func testBitFlipInDeflatedMemberIsRefused() throws {
        let url = try damagedCopy("npz/tiny8_compressed.npz", in: folder) { bytes in
            let payload = zipPayloadRange(bytes, member: "data.npy")!
            bytes[payload.lowerBound + payload.count / 2] ^= 0x10
        }
        let data = try ImageNet64Dataset(url: url, resolution: 8, cacheDirectory: cache)
        do {
            _ = try data.item(0)
            XCTFail("a bit flip in the deflate stream was read as good data")
        } catch let error as DataError {
            XCTAssertTrue(error.file.hasSuffix("tiny8_compressed.npz"), "\(error)")
            XCTAssertEqual(error.entry, "data.npy")
        }
    }

    func testChangedLabelInLabelsMemberIsRefused() throws {
        let url = try damagedCopy("npz/tiny8.npz", in: folder) { bytes in
            let payload = zipPayloadRange(bytes, member: "labels.npy")!
            let first = payload.lowerBound + 128           // labels [3, 1, 4, 1, 5]: the first label's low byte
            XCTAssertEqual(bytes[first], 3)
            bytes[first] = 7                               // still a valid label: only the CRC can tell
        }
        assertDataError(try ImageNet64Dataset(url: url, resolution: 8, cacheDirectory: cache),
                        file: "tiny8.npz", entry: "labels.npy", reason: "bad CRC-32 in labels.npy of tiny8.npz")
    }

    func testChangedLabelInDatasetJSONIsRefused() throws {
        let url = try damagedCopy("edm/tiny.zip", in: folder) { bytes in
            let payload = zipPayloadRange(bytes, member: "dataset.json")!
            let text = String(decoding: bytes[payload], as: UTF8.self)
            let at = text.range(of: "img00000001.png\", 1]")!
            let digit = payload.lowerBound + text.utf8.distance(from: text.startIndex, to: at.upperBound) - 2
            XCTAssertEqual(bytes[digit], UInt8(ascii: "1"))
            bytes[digit] = UInt8(ascii: "2")
        }
        assertDataError(try EDMDataset(url: url), file: "tiny.zip", entry: "dataset.json",
                        reason: "bad CRC-32 in dataset.json of tiny.zip")
    }

    func testDamagedPNGMemberIsRefused() throws {
        let url = try damagedCopy("edm/tiny.zip", in: folder) { bytes in
            let payload = zipPayloadRange(bytes, member: "00000/img00000002.png")!
            bytes[payload.upperBound - 20] ^= 0x01
        }
        let data = try EDMDataset(url: url)
        assertDataError(try data.item(2), file: "tiny.zip", entry: "00000/img00000002.png", reason: "bad CRC-32")
        XCTAssertNoThrow(try data.item(1))
    }

    /// Found by the fuzzers: a local header whose extra length sends the data past the end of
    /// the file made ZIPFoundation read forever; it is refused before any read.
    func testMemberRunningPastTheEndIsRefused() throws {
        let url = try damagedCopy("npz/tiny8_compressed.npz", in: folder) { bytes in
            bytes[28] = 0xFF                               // data.npy's local header (at 0): extra length 0xFFFF
            bytes[29] = 0xFF
        }
        assertDataError(try NPZArchive(url: url), file: "tiny8_compressed.npz", entry: "data.npy", reason: "runs past the end")
    }

    /// The finding: a corrupt archive was extracted into the cache under its recorded CRC, and
    /// after the file was replaced by a good one the corrupt pixels were still served.
    func testReplacedFileIsNotServedFromACorruptCache() throws {
        let good = try Data(contentsOf: fixture("npz/tiny8.npz"))
        let url = try damagedCopy("npz/tiny8.npz", in: folder) { bytes in
            let payload = zipPayloadRange(bytes, member: "data.npy")!
            for i in 0..<16 { bytes[payload.lowerBound + 128 + 192 + 50 + i] = 0 }     // row 1
        }
        let corrupt = try ImageNet64Dataset(url: url, resolution: 8, cacheDirectory: cache)
        XCTAssertThrowsError(try corrupt.item(1), "the corrupt archive must not be read")
        try good.write(to: url)
        let replaced = try ImageNet64Dataset(url: url, resolution: 8, cacheDirectory: cache)
        let image = try replaced.item(1).image
        for y in 0..<8 { for x in 0..<8 { for c in 0..<3 where image[y, x, c] != npzValue(1, c, y, x) {
            return XCTFail("pixel (\(y), \(x), \(c)) of the replaced file is \(image[y, x, c]), expected \(npzValue(1, c, y, x))")
        } } }
    }

    /// A cached extraction damaged on disk is discarded and rebuilt, never served.
    func testCorruptCacheFileIsRebuilt() throws {
        let first = try ImageNet64Dataset(url: fixture("npz/tiny8.npz"), resolution: 8, cacheDirectory: cache)
        _ = try first.item(0)
        let names = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        XCTAssertEqual(names.count, 1)
        let cached = cache.appendingPathComponent(names[0])
        var bytes = try Data(contentsOf: cached)
        for i in 0..<16 { bytes[128 + 192 + 70 + i] = 0 }
        try bytes.write(to: cached)

        let second = try ImageNet64Dataset(url: fixture("npz/tiny8.npz"), resolution: 8, cacheDirectory: cache)
        let image = try second.item(1).image
        for y in 0..<8 { for x in 0..<8 { for c in 0..<3 where image[y, x, c] != npzValue(1, c, y, x) {
            return XCTFail("pixel (\(y), \(x), \(c)) served from a corrupt cache: \(image[y, x, c])")
        } } }
        XCTAssertEqual(try Data(contentsOf: cached).count, bytes.count)
        XCTAssertNotEqual(try Data(contentsOf: cached), bytes, "the cache was rebuilt")
    }

    /// The cache is keyed by content, not by the archive's path: two copies of one archive share
    /// one extraction; two archives with the same name and different data do not.
    func testCacheIsKeyedByContent() throws {
        let a = folder.appendingPathComponent("a.npz"), b = folder.appendingPathComponent("b.npz")
        try FileManager.default.copyItem(at: fixture("npz/tiny8.npz"), to: a)
        try FileManager.default.copyItem(at: fixture("npz/tiny8.npz"), to: b)
        _ = try ImageNet64Dataset(url: a, resolution: 8, cacheDirectory: cache).item(0)
        _ = try ImageNet64Dataset(url: b, resolution: 8, cacheDirectory: cache).item(0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.path).count, 1)
        try FileManager.default.removeItem(at: a)
        try FileManager.default.copyItem(at: fixture("npz/second8.npz"), to: a)
        let other = try ImageNet64Dataset(url: a, resolution: 8, cacheDirectory: cache)
        XCTAssertEqual(try other.item(2).image, try ImageNet64Dataset(url: fixture("npz/second8.npz"), resolution: 8,
                                                                       cacheDirectory: cache).item(2).image)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.path).count, 2)
    }
}
