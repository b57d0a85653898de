// `--data` detection and the downsampled-ImageNet layout through DataSource (issue 16, part 1):
// every format opens through one function, npz folders stream part by part in natural order,
// and mismatches are clear errors.
import DMD2Core
@testable import DMD2Data
import Foundation
import XCTest

/// Image n of a small ImageNet-style set: pixel (y, x, c) = (n·37 + c·91 + y·5 + x·11) mod 256.
func generatedImage(_ n: Int, resolution R: Int) -> Image8 {
    var pixels = [UInt8](repeating: 0, count: R * R * 3)
    for y in 0..<R { for x in 0..<R { for c in 0..<3 { pixels[(y * R + x) * 3 + c] = UInt8((n * 37 + c * 91 + y * 5 + x * 11) % 256) } } }
    return Image8(width: R, height: R, channels: 3, pixels: pixels)
}

final class DataSourceTests: XCTestCase {
    private var folder: URL!
    private var cache: URL!

    override func setUpWithError() throws {
        folder = try temporaryFolder(self)
        cache = folder.appendingPathComponent(".cache")
    }

    /// Writes an ImageNet-style part of `count` images starting at image `first`, labels 0-based (n mod classes).
    @discardableResult
    private func writePart(_ name: String, first: Int, count: Int, resolution: Int = 8, classes: Int = 4,
                           compressed: Bool = false) throws -> URL {
        let url = folder.appendingPathComponent(name)
        let ns = Array(first..<(first + count))
        try NPZWriter.writeImageNetStyle(images: ns.map { generatedImage($0, resolution: resolution) },
                                         labels: ns.map { $0 % classes }, to: url, compressed: compressed)
        return url
    }

    func testWrittenNPZHasTheImageNetLayout() throws {
        let url = try writePart("Imagenet64_val.npz", first: 0, count: 3, resolution: 64, classes: 1000)
        let npz = try NPZArchive(url: url)
        XCTAssertEqual(npz.memberNames, ["data", "labels"])
        XCTAssertEqual(try npz.header("data").shape, [3, 12288])
        XCTAssertEqual(try npz.header("data").dtype, .uint8)
        XCTAssertEqual(try npz.integers("labels").values, [1, 2, 3], "labels are stored 1-based")
        // Channel-planar rows: byte c·R·R + y·R + x of row n is pixel (y, x, c).
        let (_, bytes) = try npz.read("data")
        XCTAssertEqual(bytes[12288 + 2 * 4096 + 5 * 64 + 7], generatedImage(1, resolution: 64)[5, 7, 2])
        let data = try DataSource.open(url, cacheDirectory: cache)
        XCTAssertTrue(data is ImageNet64Dataset)
        XCTAssertEqual([data.count, data.resolution, data.channels, data.classCount], [3, 64, 3, 3])
        XCTAssertEqual(try data.item(2).image, generatedImage(2, resolution: 64))
        XCTAssertEqual(try data.item(2).label, 2)
    }

    func testDetection() throws {
        XCTAssertEqual(try DataSource.detect(fixture("edm/tiny.zip")), .edm)
        XCTAssertEqual(try DataSource.detect(fixture("edm/folder")), .edm)
        XCTAssertEqual(try DataSource.detect(fixture("npz/tiny8.npz")), .npz)
        XCTAssertEqual(try DataSource.detect(fixture("classes")), .classFolders)
        try writePart("a.npz", first: 0, count: 2)
        XCTAssertEqual(try DataSource.detect(folder), .npz)
        // An npz under another extension is still recognised by its members.
        let renamed = folder.appendingPathComponent("batch.bin")
        try FileManager.default.copyItem(at: fixture("npz/tiny8.npz"), to: renamed)
        XCTAssertEqual(try DataSource.detect(renamed), .npz)
        let text = folder.appendingPathComponent("notes.txt")
        try Data("hello".utf8).write(to: text)
        assertDataError(try DataSource.detect(text), file: "notes.txt", reason: "not a dataset")
        assertDataError(try DataSource.detect(folder.appendingPathComponent("nothing")), file: "nothing", reason: "no such file")
        let empty = folder.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        assertDataError(try DataSource.detect(empty), file: "empty", reason: "no dataset here")
    }

    func testEveryFormatOpensThroughOneFunction() throws {
        XCTAssertTrue(try DataSource.open(fixture("edm/tiny.zip")) is EDMDataset)
        XCTAssertTrue(try DataSource.open(fixture("classes")) is ClassFolderDataset)
        XCTAssertEqual(try DataSource.open(fixture("classes")).classNames, ["ant", "bee", "cat"])
        let npz = try DataSource.open(fixture("npz/tiny8.npz"), cacheDirectory: cache)
        XCTAssertEqual([npz.count, npz.resolution, npz.classCount], [5, 8, 5], "resolution from the row length, classes from the labels")
        // --data-format overrides the detection, and a wrong one fails naming what is missing.
        assertDataError(try DataSource.open(fixture("edm/tiny.zip"), format: .npz), file: "tiny.zip", entry: "data.npy",
                        reason: "missing member")
        assertDataError(try DataSource.open(fixture("edm/tiny.zip"), format: .classFolders), file: "tiny.zip", reason: "expected a folder")
    }

    func testFolderOfPartsStreamsInNaturalOrderAndSplits() throws {
        // Ten parts named like the real files, written out of order, plus a val file.
        for part in [10, 2, 1, 3, 4, 5, 6, 7, 8, 9] {
            try writePart("Imagenet64_train_part\(part).npz", first: (part - 1) * 2, count: 2)
        }
        try writePart("Imagenet64_val.npz", first: 100, count: 3)
        let parts = try DataSource.npzParts(in: folder, split: .train)
        XCTAssertEqual(parts.map(\.lastPathComponent), (1...10).map { "Imagenet64_train_part\($0).npz" })
        let train = try DataSource.open(folder, split: .train, cacheDirectory: cache)
        XCTAssertEqual(train.count, 20)
        for n in [0, 3, 19, 10] { XCTAssertEqual(try train.item(n).image, generatedImage(n, resolution: 8), "image \(n)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.path).filter { $0.hasSuffix(".npy") }.count, 4,
                       "only the parts touched are extracted")
        let val = try DataSource.open(folder, split: .test, cacheDirectory: cache)
        XCTAssertEqual(val.count, 3)
        XCTAssertEqual(try val.item(1).image, generatedImage(101, resolution: 8))
    }

    func testGreyConversionAndCompressedParts() throws {
        let url = try writePart("c.npz", first: 0, count: 2, compressed: true)
        let grey = try DataSource.open(url, channels: 1, cacheDirectory: cache)
        XCTAssertEqual(grey.channels, 1)
        XCTAssertEqual(try grey.item(1).image, generatedImage(1, resolution: 8).converted(toChannels: 1))
        assertDataError(try DataSource.open(url, channels: 2), file: "c.npz", reason: "cannot read with 2 channels")
    }

    func testLayoutErrorsAreClear() throws {
        // A row length that is not 3·R·R.
        let bad = folder.appendingPathComponent("bad.npz")
        try NPZWriter.write([("data", NPYWriter.npy([UInt8](repeating: 0, count: 2 * 100), shape: [2, 100])),
                             ("labels", NPYWriter.npy([Int64(1), 2], shape: [2]))], to: bad)
        assertDataError(try DataSource.open(bad, cacheDirectory: cache), file: "bad.npz", entry: "data.npy", reason: "not 3·R·R")
        // 0-based labels (a 0 where 1…K is expected).
        let zero = folder.appendingPathComponent("zero.npz")
        try NPZWriter.write([("data", NPYWriter.npy([UInt8](repeating: 0, count: 2 * 192), shape: [2, 192])),
                             ("labels", NPYWriter.npy([Int64(0), 2], shape: [2]))], to: zero)
        assertDataError(try DataSource.open(zero, cacheDirectory: cache), file: "zero.npz", entry: "labels.npy", reason: "1-based")
        // Parts of different resolutions in one folder.
        let mixed = folder.appendingPathComponent("mixed")
        try FileManager.default.createDirectory(at: mixed, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixture("npz/tiny8.npz"), to: mixed.appendingPathComponent("part1.npz"))
        try FileManager.default.copyItem(at: fixture("npz/imagenet64.npz"), to: mixed.appendingPathComponent("part2.npz"))
        assertDataError(try DataSource.open(mixed, cacheDirectory: cache), file: "part2.npz", entry: "data.npy", reason: "expected 192")
    }

    func testNaturalOrder() {
        XCTAssertEqual(["p10", "p2", "p1", "a", "p1b"].sorted(by: DataSource.naturalOrder), ["a", "p1", "p1b", "p2", "p10"])
    }
}
