// The Fashion-MNIST converter: gzip'd IDX parsing, the 28 → 64 resize against an independent
// floating-point bilinear reference, and prepareFashionMNIST end to end on tiny stand-in files
// (and, when Debian's dataset-fashion-mnist is installed, a few real images per class).
import DMD2Core
@testable import DMD2Data
import Foundation
import XCTest

/// make_data_fixtures.py's idx pattern: image i, pixel (y, x) = (i·13 + y·5 + x·3) mod 256.
func idxImage(_ i: Int) -> [UInt8] { (0..<28).flatMap { y in (0..<28).map { x in UInt8((i * 13 + y * 5 + x * 3) % 256) } } }

final class FashionMNISTTests: XCTestCase {
    /// Bilinear resize with half-pixel centres (PyTorch `align_corners=False`), in Double.
    private func bilinearReference(_ src: [Double], size S: Int, to O: Int) -> [Double] {
        func coord(_ o: Int) -> (Int, Int, Double) {
            let s = max((Double(o) + 0.5) * Double(S) / Double(O) - 0.5, 0)
            let i0 = Int(s.rounded(.down))
            return (i0, min(i0 + 1, S - 1), s - Double(i0))
        }
        var out = [Double](repeating: 0, count: O * O)
        for y in 0..<O {
            let (y0, y1, wy) = coord(y)
            for x in 0..<O {
                let (x0, x1, wx) = coord(x)
                let top = (1 - wx) * src[y0 * S + x0] + wx * src[y0 * S + x1]
                let bottom = (1 - wx) * src[y1 * S + x0] + wx * src[y1 * S + x1]
                out[y * O + x] = (1 - wy) * top + wy * bottom
            }
        }
        return out
    }

    func testUpscaleIsPadThenBilinear() {
        var rng = RandomGenerator(seed: 3)
        let image = (0..<784).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        var padded = [Double](repeating: 0, count: 32 * 32)
        for y in 0..<28 { for x in 0..<28 { padded[(y + 2) * 32 + x + 2] = Double(image[y * 28 + x]) } }
        let expected = bilinearReference(padded, size: 32, to: 64).map { UInt8($0.rounded()) }
        XCTAssertEqual(FashionMNIST.upscale(image[...]), expected)

        // A constant 200 stays 200 inside; the 2 px of padding become 3 black rows (0–2) and two
        // transition rows: row 3 = (3·0 + 1·200)/4 = 50, row 4 = (1·0 + 3·200)/4 = 150.
        let flat = FashionMNIST.upscale([UInt8](repeating: 200, count: 784)[...])
        XCTAssertEqual((0..<7).map { flat[$0 * 64 + 32] }, [0, 0, 0, 50, 150, 200, 200])
        XCTAssertEqual((57..<64).map { flat[$0 * 64 + 32] }, [200, 200, 150, 50, 0, 0, 0])
        XCTAssertEqual(flat[32 * 64 + 32], 200)
    }

    func testIDXParsingAndErrors() throws {
        let bytes = try FashionMNIST.gunzip(fixture("fmnist/t10k-images-idx3-ubyte.gz"))
        let (dims, values) = try FashionMNIST.parseIDX(bytes, name: "t10k")
        XCTAssertEqual(dims, [10, 28, 28])
        XCTAssertEqual(Array(values.prefix(784 * 2)), idxImage(0) + idxImage(1))

        let split = try FashionMNIST.load(.train, from: fixture("fmnist"))
        XCTAssertEqual(split.count, 20)
        XCTAssertEqual(split.labels, (0..<20).map { UInt8($0 % 10) })

        assertDataError(try FashionMNIST.parseIDX([1, 0, 8, 1], name: "x.idx"), file: "x.idx", reason: "bad magic")
        assertDataError(try FashionMNIST.parseIDX([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], name: "f.idx"), file: "f.idx",
                        reason: "is not uint8")
        assertDataError(try FashionMNIST.load(.train, from: fixture("fmnist_bad")), file: "fmnist_bad/train-images-idx3-ubyte.gz",
                        reason: "IDX dims [5, 28, 28] need 3920 bytes, file holds 100")
        assertDataError(try FashionMNIST.gunzip(fixture("fmnist/none.gz")), file: "fmnist/none.gz", reason: "cannot open")
    }

    func testPrepareWritesReadableEDMFolders() throws {
        let out = try temporaryFolder(self)
        var lines: [String] = []
        try prepareFashionMNIST(outputDirectory: out, channels: 3, sourceDirectory: fixture("fmnist")) { lines.append($0) }
        XCTAssertTrue(lines.contains { $0.contains("converting 20 of 20 images") }, "\(lines)")

        let train = try EDMDataset(url: out.appendingPathComponent("train"))
        XCTAssertEqual([train.count, train.classCount, train.resolution, train.channels], [20, 10, 64, 3])
        XCTAssertEqual(train.classNames, FashionMNIST.classNames)
        XCTAssertEqual(train.paths[13], "00000/img00000013.png")
        for k in [0, 13, 19] {
            let (image, label) = try train.item(k)
            XCTAssertEqual(label, k % 10)
            let grey = Image8(width: 64, height: 64, channels: 1, pixels: FashionMNIST.upscale(idxImage(k)[...]))
            XCTAssertEqual(image, grey.converted(toChannels: 3))
        }
        let test = try EDMDataset(url: out.appendingPathComponent("test"))
        XCTAssertEqual(test.count, 10)
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("README.txt"), encoding: .utf8).contains("MIT"))

        // Same settings: skipped. Other settings: refused unless overwrite.
        lines = []
        try prepareFashionMNIST(outputDirectory: out, channels: 3, sourceDirectory: fixture("fmnist")) { lines.append($0) }
        XCTAssertEqual(lines.filter { $0.contains("skipping") }.count, 2, "\(lines)")
        assertDataError(try prepareFashionMNIST(outputDirectory: out, channels: 1, sourceDirectory: fixture("fmnist")) { _ in },
                        file: "train", reason: "already exists with other settings")
        try prepareFashionMNIST(outputDirectory: out, channels: 1, limitPerClass: 1, sourceDirectory: fixture("fmnist"),
                                overwrite: true) { _ in }
        let small = try EDMDataset(url: out.appendingPathComponent("train"))
        XCTAssertEqual([small.count, small.channels], [10, 1])
        XCTAssertEqual((0..<10).map(small.label), Array(0..<10), "the first image of each class")
        XCTAssertEqual(try small.item(4).image.pixels, FashionMNIST.upscale(idxImage(4)[...]))
    }

    func testRealFashionMNISTIfInstalled() throws {
        let source = FashionMNIST.defaultSourceDirectory
        guard FileManager.default.fileExists(atPath: source.appendingPathComponent("t10k-labels-idx1-ubyte.gz").path) else {
            throw XCTSkip("Debian's dataset-fashion-mnist is not installed")
        }
        let test = try FashionMNIST.load(.test)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual((0..<10).map { c in test.labels.filter { $0 == c }.count }, [Int](repeating: 1000, count: 10))
        XCTAssertEqual(test.images.count, 10_000 * 784)
        // Background is black: the image border averages near 0.
        let border = (0..<10_000).reduce(0) { $0 + Int(test.images[$1 * 784]) }
        XCTAssertLessThan(border, 10_000 * 5)

        let out = try temporaryFolder(self)
        try prepareFashionMNIST(outputDirectory: out, limitPerClass: 2) { _ in }
        let train = try EDMDataset(url: out.appendingPathComponent("train"))
        XCTAssertEqual([train.count, train.classCount, train.resolution, train.channels], [20, 10, 64, 3])
        XCTAssertEqual((0..<20).map(train.label).sorted(), (0..<20).map { $0 / 2 })
    }
}
