// EDM's dataset layout (zip or folder + dataset.json) and the class-folder layout, on files
// written by Python's zipfile and a stdlib PNG encoder, and on malformed variants.
import DMD2Core
@testable import DMD2Data
import Foundation
import XCTest

/// make_data_fixtures.py's EDM image k: 8×8 RGB, pixel (y, x, c) = (k·30 + x·20 + y·5 + c·60) mod 256.
func edmImage(_ k: Int, size: Int = 8) -> Image8 {
    var image = Image8(width: size, height: size, channels: 3)
    for y in 0..<size { for x in 0..<size { for c in 0..<3 { image[y, x, c] = UInt8((k * 30 + x * 20 + y * 5 + c * 60) % 256) } } }
    return image
}

final class EDMDatasetTests: XCTestCase {
    private let names = (0..<6).map { String(format: "00000/img%08d.png", $0) }

    private func assertTiny(_ data: EDMDataset, line: UInt = #line) throws {
        XCTAssertEqual(data.count, 6, line: line)
        XCTAssertEqual([data.resolution, data.channels], [8, 3], line: line)
        XCTAssertEqual(data.paths, names, line: line)
        XCTAssertEqual((0..<6).map(data.label), [0, 1, 2, 0, 1, 2], line: line)
        for k in [5, 0, 3] {
            let (image, label) = try data.item(k)
            XCTAssertEqual(image, edmImage(k), "item \(k)", line: line)
            XCTAssertEqual(label, k % 3, line: line)
        }
    }

    func testStoredZip() throws {
        let data = try EDMDataset(url: fixture("edm/tiny.zip"))
        XCTAssertEqual(data.classCount, 3, "max label + 1, as EDM")
        XCTAssertNil(data.classNames)
        try assertTiny(data)
    }

    func testDeflatedZipWithClassNames() throws {
        let data = try EDMDataset(url: fixture("edm/deflated.zip"))
        XCTAssertEqual(data.classCount, 4, "class_names fixes the class count")
        XCTAssertEqual(data.classNames, ["a", "b", "c", "d"])
        try assertTiny(data)
    }

    /// A subset re-indexes items start ..< start + count of its base; ranges outside it throw.
    func testImageSubset() throws {
        let data = try EDMDataset(url: fixture("edm/tiny.zip"))
        let subset = try ImageSubset(data, start: 2, count: 3)
        XCTAssertEqual(subset.count, 3)
        XCTAssertEqual([subset.classCount, subset.resolution, subset.channels], [3, 8, 3])
        XCTAssertEqual((0..<3).map(subset.label), [2, 0, 1])
        for i in 0..<3 {
            let (image, label) = try subset.item(i)
            XCTAssertEqual(image, edmImage(i + 2), "subset item \(i) is base item \(i + 2)")
            XCTAssertEqual(label, (i + 2) % 3)
        }
        XCTAssertEqual(try ImageSubset(data, start: 4).count, 2, "to the end")
        for (start, count) in [(-1, 2), (5, 2), (6, nil), (0, 0)] as [(Int, Int?)] {
            XCTAssertThrowsError(try ImageSubset(data, start: start, count: count), "start \(start), count \(String(describing: count))") { error in
                XCTAssert("\(error)".contains("the dataset has 6"), "\(error)")
            }
        }
    }

    func testFolder() throws {
        let data = try EDMDataset(url: fixture("edm/folder"))
        XCTAssertEqual(data.classCount, 3)
        try assertTiny(data)
    }

    func testUnlabelledAndGreyConversion() throws {
        for file in ["edm/unlabelled.zip", "edm/nojson.zip"] {
            let data = try EDMDataset(url: fixture(file))
            XCTAssertEqual(data.classCount, 0, file)
            XCTAssertEqual((0..<6).map(data.label), [Int](repeating: ImageDatasetLabel.none, count: 6), file)
            XCTAssertEqual(try data.item(4).image, edmImage(4), file)
        }
        let grey = try EDMDataset(url: fixture("edm/tiny.zip"), channels: 1)
        XCTAssertEqual(grey.channels, 1)
        XCTAssertEqual(try grey.item(1).image.channels, 1)
    }

    func testMalformedDatasetsThrowNamingFileAndEntry() throws {
        assertDataError(try EDMDataset(url: fixture("edm/missing_entry.zip")), file: "edm/missing_entry.zip",
                        entry: "00000/img00000003.png", reason: "image has no entry in dataset.json")
        assertDataError(try EDMDataset(url: fixture("edm/orphan_entry.zip")), file: "edm/orphan_entry.zip",
                        entry: "00000/img00000005.png", reason: "listed in dataset.json but there is no such PNG")
        assertDataError(try EDMDataset(url: fixture("edm/cut.zip")), file: "edm/cut.zip", reason: "not a readable zip archive")
        assertDataError(try EDMDataset(url: fixture("edm/absent.zip")), file: "edm/absent.zip", reason: "no such file or folder")

        // A truncated PNG fails alone: the other items still read.
        let truncated = try EDMDataset(url: fixture("edm/truncated_png.zip"))
        assertDataError(try truncated.item(2), file: "edm/truncated_png.zip", entry: "00000/img00000002.png",
                        reason: "corrupt or truncated PNG")
        XCTAssertEqual(try truncated.item(3).image, edmImage(3))

        let mixed = try EDMDataset(url: fixture("edm/mixed_size.zip"))
        assertDataError(try mixed.item(5), file: "edm/mixed_size.zip", entry: "00000/img00000005.png",
                        reason: "image is 4×4, the dataset's images are 8×8")
        XCTAssertEqual(try mixed.item(4).image, edmImage(4))
    }

    func testBadDatasetJSON() throws {
        let folder = try temporaryFolder(self)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("00000"), withIntermediateDirectories: true)
        try PNG.write(edmImage(0), to: folder.appendingPathComponent("00000/a.png"))
        try PNG.write(edmImage(1), to: folder.appendingPathComponent("00000/b.png"))
        let json = folder.appendingPathComponent("dataset.json")
        let cases: [(String, String?, String)] = [
            ("{\"labels\": [[\"00000/a.png\", 1], [\"00000/b.png\", null]]}", "dataset.json", "1 of 2 labels are null"),
            ("{\"labels\": [[\"00000/a.png\", 1], [\"00000/b.png\", -2]]}", "00000/b.png", "is not a class index"),
            ("{\"labels\": [[\"00000/a.png\", 1], [\"00000/a.png\", 0]]}", "00000/a.png", "listed twice"),
            ("{\"labels\": [[\"00000/a.png\", 1], [\"00000/b.png\", 3]], \"class_names\": [\"x\", \"y\"]}", "00000/b.png",
             "label 3 out of range 0..<2"),
            ("{\"labels\": 5}", "dataset.json", "neither null nor a list"),
            ("[1, 2", "dataset.json", "not valid JSON"),
        ]
        for (text, entry, reason) in cases {
            try text.write(to: json, atomically: true, encoding: .utf8)
            assertDataError(try EDMDataset(url: folder), file: folder.lastPathComponent, entry: entry, reason: reason)
        }
    }

    func testClassFolders() throws {
        let data = try ClassFolderDataset(url: fixture("classes"))
        XCTAssertEqual(data.classNames, ["ant", "bee", "cat"])
        XCTAssertEqual(data.classCount, 3)
        XCTAssertEqual(data.paths, ["ant/a.png", "ant/b.png", "bee/c.png", "cat/d.png", "cat/sub/e.png"])
        XCTAssertEqual((0..<5).map(data.label), [0, 0, 1, 2, 2])
        for k in 0..<5 { XCTAssertEqual(try data.item(k).image, edmImage(k)) }
        XCTAssertEqual(try ClassFolderDataset(url: fixture("classes"), channels: 1).item(0).image.channels, 1)
    }

    func testClassFolderErrors() throws {
        let root = try temporaryFolder(self)
        let fm = FileManager.default
        try fm.createDirectory(at: root.appendingPathComponent("a"), withIntermediateDirectories: true)
        try fm.createDirectory(at: root.appendingPathComponent("b"), withIntermediateDirectories: true)
        try PNG.write(edmImage(0), to: root.appendingPathComponent("a/x.png"))
        assertDataError(try ClassFolderDataset(url: root), file: root.lastPathComponent, entry: "b",
                        reason: "class folder holds no PNG images")
        try Data([0xFF, 0xD8]).write(to: root.appendingPathComponent("b/photo.JPG"))
        assertDataError(try ClassFolderDataset(url: root), file: root.lastPathComponent, entry: "b/photo.JPG",
                        reason: "only PNG images are supported")
        try fm.removeItem(at: root.appendingPathComponent("b/photo.JPG"))
        try PNG.write(edmImage(1, size: 4), to: root.appendingPathComponent("b/small.png"))
        let data = try ClassFolderDataset(url: root)
        assertDataError(try data.item(1), file: root.lastPathComponent, entry: "b/small.png", reason: "image is 4×4")
        let empty = try temporaryFolder(self)
        assertDataError(try ClassFolderDataset(url: empty), file: empty.lastPathComponent, reason: "no class sub-folders")
    }
}
