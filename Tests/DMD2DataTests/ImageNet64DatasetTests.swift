// The downsampled-ImageNet .npz reader and the .npy/.npz layer, on files written by numpy
// (np.savez, np.savez_compressed, np.lib.format.write_array) and on malformed variants.
import DMD2Core
@testable import DMD2Data
import Foundation
import XCTest

/// make_data_fixtures.py's .npz pattern: row n, channel c, pixel (y, x) = (n·50 + c·80 + y·8 + x·3) mod 256.
func npzValue(_ n: Int, _ c: Int, _ y: Int, _ x: Int) -> UInt8 { UInt8((n * 50 + c * 80 + y * 8 + x * 3) % 256) }

final class ImageNet64DatasetTests: XCTestCase {
    private var cache: URL!

    override func setUpWithError() throws { cache = try temporaryFolder(self) }

    /// Asserts that `image` is row n of the pattern, converted from planar to HWC.
    private func assertPattern(_ image: Image8, row n: Int, resolution R: Int, line: UInt = #line) {
        XCTAssertEqual([image.width, image.height, image.channels], [R, R, 3], line: line)
        for y in 0..<R {
            for x in 0..<R {
                for c in 0..<3 where image[y, x, c] != npzValue(n, c, y, x) {
                    XCTFail("row \(n) pixel (\(y), \(x), \(c)): \(image[y, x, c]) ≠ \(npzValue(n, c, y, x))", line: line)
                    return
                }
            }
        }
    }

    func testStoredMembersAndOneBasedLabels() throws {
        let data = try ImageNet64Dataset(url: fixture("npz/tiny8.npz"), resolution: 8, cacheDirectory: cache)
        XCTAssertEqual(data.count, 5)
        XCTAssertEqual(data.classCount, 1000)
        XCTAssertEqual([data.resolution, data.channels], [8, 3])
        XCTAssertEqual((0..<5).map(data.label), [2, 0, 3, 0, 4], "1-based [3, 1, 4, 1, 5] become 0-based")
        for n in [3, 0, 4, 1, 2] {                      // any order
            let (image, label) = try data.item(n)
            assertPattern(image, row: n, resolution: 8)
            XCTAssertEqual(label, data.label(n))
        }
    }

    func testDeflatedMembersInt32LabelsAndExtraMembers() throws {
        let stored = try ImageNet64Dataset(url: fixture("npz/tiny8.npz"), resolution: 8, cacheDirectory: cache)
        let deflated = try ImageNet64Dataset(url: fixture("npz/tiny8_compressed.npz"), resolution: 8, cacheDirectory: cache)
        XCTAssertEqual(deflated.count, 5)
        for n in 0..<5 { XCTAssertEqual(try deflated.item(n).image, try stored.item(n).image) }
        XCTAssertEqual((0..<5).map(deflated.label), (0..<5).map(stored.label))
        XCTAssertEqual(try NPZArchive(url: fixture("npz/tiny8_compressed.npz")).memberNames, ["data", "labels", "mean"])
    }

    func testSeveralFilesAreOneDataset() throws {
        let data = try ImageNet64Dataset(urls: [fixture("npz/tiny8.npz"), fixture("npz/second8.npz")], resolution: 8,
                                         cacheDirectory: cache)
        XCTAssertEqual(data.count, 8)
        XCTAssertEqual((0..<8).map(data.label), [2, 0, 3, 0, 4, 1, 1, 6])
        // second8.npz holds rows 2, 1, 0 of the pattern (reversed).
        assertPattern(try data.item(5).image, row: 2, resolution: 8)
        assertPattern(try data.item(7).image, row: 0, resolution: 8)
        assertPattern(try data.item(4).image, row: 4, resolution: 8)
    }

    func testSixtyFourByDefaultAndExtractedOnce() throws {
        let data = try ImageNet64Dataset(url: fixture("npz/imagenet64.npz"), cacheDirectory: cache)
        XCTAssertEqual([data.count, data.resolution], [3, 64])
        XCTAssertEqual((0..<3).map(data.label), [0, 999, 499])
        assertPattern(try data.item(1).image, row: 1, resolution: 64)

        let cached = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        XCTAssertEqual(cached.count, 1, "one extracted data member: \(cached)")
        let file = cache.appendingPathComponent(cached[0])
        let before = try FileManager.default.attributesOfItem(atPath: file.path)[.modificationDate] as? Date
        let again = try ImageNet64Dataset(url: fixture("npz/imagenet64.npz"), cacheDirectory: cache)
        assertPattern(try again.item(2).image, row: 2, resolution: 64)
        let after = try FileManager.default.attributesOfItem(atPath: file.path)[.modificationDate] as? Date
        XCTAssertEqual(before, after, "the second open reuses the extracted copy")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.path).count, 1)
    }

    func testNpyVersionTwoHeader() throws {
        let data = try ImageNet64Dataset(url: fixture("npz/v2.npz"), resolution: 8, cacheDirectory: cache)
        XCTAssertEqual((0..<2).map(data.label), [8, 9])
        assertPattern(try data.item(1).image, row: 1, resolution: 8)
    }

    func testMalformedFilesThrowNamingFileAndEntry() {
        assertDataError(try ImageNet64Dataset(url: fixture("npz/badrow.npz"), cacheDirectory: cache),
                        file: "npz/badrow.npz", entry: "data.npy", reason: "row length 12287, expected 12288 for 64×64 RGB")
        assertDataError(try ImageNet64Dataset(url: fixture("npz/badlabel.npz"), resolution: 8, cacheDirectory: cache),
                        file: "npz/badlabel.npz", entry: "labels.npy", reason: "row 1: label 1001 out of range 1…1000")
        assertDataError(try ImageNet64Dataset(url: fixture("npz/zerolabel.npz"), resolution: 8, cacheDirectory: cache),
                        file: "npz/zerolabel.npz", entry: "labels.npy", reason: "row 0: label 0 out of range 1…1000 (labels are 1-based)")
        assertDataError(try ImageNet64Dataset(url: fixture("npz/nolabels.npz"), resolution: 8, cacheDirectory: cache),
                        file: "npz/nolabels.npz", entry: "labels.npy", reason: "missing member (members: data)")
        assertDataError(try ImageNet64Dataset(url: fixture("npz/labelcount.npz"), resolution: 8, cacheDirectory: cache),
                        file: "npz/labelcount.npz", entry: "labels.npy", reason: "shape [2] does not match the 3 rows")
        assertDataError(try ImageNet64Dataset(url: fixture("npz/float_data.npz"), resolution: 8, cacheDirectory: cache),
                        file: "npz/float_data.npz", entry: "data.npy", reason: "dtype float32 is not uint8")
        assertDataError(try ImageNet64Dataset(url: fixture("npz/fortran.npz"), resolution: 8, cacheDirectory: cache),
                        file: "npz/fortran.npz", entry: "data.npy", reason: "fortran_order True is not supported")
        assertDataError(try ImageNet64Dataset(url: fixture("npz/notzip.npz"), cacheDirectory: cache),
                        file: "npz/notzip.npz", reason: "not a readable zip/npz archive")
        assertDataError(try ImageNet64Dataset(url: fixture("npz/absent.npz"), cacheDirectory: cache),
                        file: "npz/absent.npz", reason: "no such file")
        // A mismatch is caught for the stated resolution too.
        assertDataError(try ImageNet64Dataset(url: fixture("npz/tiny8.npz"), resolution: 64, cacheDirectory: cache),
                        file: "npz/tiny8.npz", entry: "data.npy", reason: "row length 192, expected 12288 for 64×64 RGB")
    }

    func testFloatMembersForReferenceStatistics() throws {
        let archive = try NPZArchive(url: fixture("npz/reference_stats.npz"))
        let mu = try archive.doubles("mu"), sigma = try archive.doubles("sigma")
        XCTAssertEqual(mu.shape, [4])
        XCTAssertEqual(mu.values, [0, 0.125, 0.25, 0.375])
        XCTAssertEqual(sigma.shape, [4, 4])
        XCTAssertEqual(sigma.values, (0..<16).map { Double($0) - 3.5 })
        assertDataError(try archive.integers("mu"), file: "npz/reference_stats.npz", entry: "mu.npy", reason: "not an integer type")
    }

    func testNpyHeaderParsing() throws {
        func npy(_ dict: String, version: UInt8 = 1) -> Data {
            var header = Array(dict.utf8)
            let preamble = version == 1 ? 10 : 12
            while (preamble + header.count + 1) % 64 != 0 { header.append(0x20) }
            header.append(0x0A)
            var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
            let n = header.count
            bytes += version == 1 ? [UInt8(n & 255), UInt8(n >> 8)] : [UInt8(n & 255), UInt8(n >> 8 & 255), 0, 0]
            return Data(bytes + header)
        }
        // The helper returns just the header, so the data starts at its end (a multiple of 64).
        let header1 = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (3, 12288), }")
        let v1 = try NPYHeader.parse(header1, name: "a.npy")
        XCTAssertEqual(v1, NPYHeader(dtype: .uint8, shape: [3, 12288], dataOffset: 128))
        XCTAssertEqual(header1.count, 128)
        let header2 = npy("{'descr': '<i8', 'fortran_order': False, 'shape': (7L,), }", version: 2)
        let python2 = try NPYHeader.parse(header2, name: "b.npy")
        XCTAssertEqual(python2, NPYHeader(dtype: .int64, shape: [7], dataOffset: 128))
        XCTAssertEqual(header2.count, 128)
        let scalar = try NPYHeader.parse(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }"), name: "c.npy")
        XCTAssertEqual(scalar.elementCount, 1)
        assertDataError(try NPYHeader.parse(npy("{'descr': '>i8', 'fortran_order': False, 'shape': (7,), }"), name: "d.npy"),
                        file: "d.npy", reason: "dtype '>i8' is not supported")
        assertDataError(try NPYHeader.parse(Data("NUMPY!".utf8 + [1, 0, 0, 0, 0, 0]), name: "e.npy"), file: "e.npy",
                        reason: "bad magic")
        assertDataError(try NPYHeader.parse(npy("{'descr': '|u1'}").prefix(30), name: "f.npy"), file: "f.npy", reason: "truncated")
    }
}
