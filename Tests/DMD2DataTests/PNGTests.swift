// PNG decode/encode against files written by an independent (stdlib-only Python) encoder,
// Image8 ↔ tensor conversion, and sample grids.
import DMD2Core
@testable import DMD2Data
import Foundation
import XCTest

/// The 8-bit fixture pattern of make_data_fixtures.py: (x·40 + y·9 + c·70) mod 256.
func pngValue(_ x: Int, _ y: Int, _ c: Int) -> UInt8 { UInt8((x * 40 + y * 9 + c * 70) % 256) }

final class PNGTests: XCTestCase {
    func testDecodesEightBitLayoutsFromAnotherEncoder() throws {
        for (file, width, height, channels) in [("grey8", 5, 3, 1), ("ga8", 4, 4, 2), ("rgb8", 6, 4, 3), ("rgba8", 4, 3, 4)] {
            let image = try PNG.read(fixture("png/\(file).png"))
            XCTAssertEqual([image.width, image.height, image.channels], [width, height, channels], file)
            for y in 0..<height {
                for x in 0..<width {
                    for c in 0..<channels { XCTAssertEqual(image[y, x, c], pngValue(x, y, c), "\(file) (\(y), \(x), \(c))") }
                }
            }
        }
    }

    func testPaletteIsExpandedToRGB() throws {
        let image = try PNG.read(fixture("png/palette.png"))
        XCTAssertEqual([image.width, image.height, image.channels], [4, 2, 3])
        let palette: [[UInt8]] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]
        for y in 0..<2 {
            for x in 0..<4 { XCTAssertEqual((0..<3).map { image[y, x, $0] }, palette[(x + y) % 4], "(\(y), \(x))") }
        }
    }

    func testSixteenBitIsScaledToEightBit() throws {
        // Samples are v·257 + 200 (v < 255): with PNG_IMAGE_FLAG_16BIT_sRGB libpng scales by
        // 255/65535 and rounds, so each reads back as round((v·257 + 200)/257) = v + 1.
        let image = try PNG.read(fixture("png/rgb16.png"))
        XCTAssertEqual([image.width, image.height, image.channels], [3, 2, 3])
        for y in 0..<2 {
            for x in 0..<3 {
                for c in 0..<3 {
                    let v = Int(pngValue(x, y, c)), v16 = v * 257 + (v < 255 ? 200 : 0)
                    XCTAssertEqual(Int(image[y, x, c]), Int((Double(v16) / 257).rounded()), "(\(y), \(x), \(c))")
                }
            }
        }
    }

    func testChannelConversionOnDecode() throws {
        let grey = try PNG.read(fixture("png/grey8.png"))
        let asRGB = try PNG.decode(try Data(contentsOf: fixture("png/grey8.png")), channels: 3)
        XCTAssertEqual(asRGB, grey.converted(toChannels: 3), "grey → RGB replicates the grey value")

        // RGBA → RGB composites onto black: never brighter, darker where alpha < 255.
        let rgba = try PNG.read(fixture("png/rgba8.png"))
        let rgb = try PNG.decode(try Data(contentsOf: fixture("png/rgba8.png")), channels: 3)
        XCTAssertEqual(rgb.channels, 3)
        var darker = 0
        for y in 0..<rgb.height {
            for x in 0..<rgb.width {
                for c in 0..<3 {
                    XCTAssertLessThanOrEqual(rgb[y, x, c], rgba[y, x, c])
                    if rgb[y, x, c] < rgba[y, x, c] { darker += 1 }
                }
            }
        }
        XCTAssertGreaterThan(darker, rgb.width * rgb.height)
    }

    func testEncodeDecodeRoundTripIsExact() throws {
        var rng = RandomGenerator(seed: 7)
        for channels in 1...4 {
            let pixels = (0..<(13 * 9 * channels)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let image = Image8(width: 13, height: 9, channels: channels, pixels: pixels)
            XCTAssertEqual(try PNG.decode(try PNG.encode(image)), image, "\(channels) channels")
        }
        let folder = try temporaryFolder(self)
        let image = Image8(width: 2, height: 3, channels: 3, pixels: Array(0..<18))
        try PNG.write(image, to: folder.appendingPathComponent("x.png"))
        XCTAssertEqual(try PNG.read(folder.appendingPathComponent("x.png")), image)
    }

    func testBrokenFilesThrowNamingTheFile() {
        assertDataError(try PNG.read(fixture("png/truncated.png")), file: "png/truncated.png", reason: "corrupt or truncated PNG")
        assertDataError(try PNG.read(fixture("png/notpng.png")), file: "png/notpng.png", reason: "not a readable PNG")
        assertDataError(try PNG.read(fixture("png/missing.png")), file: "png/missing.png", reason: "cannot read file")
        assertDataError(try PNG.decode(Data(), name: "empty.png", entry: "a/b.png"), file: "empty.png", entry: "a/b.png",
                        reason: "empty file")
    }

    func testTensorConversion() {
        let image = Image8(width: 2, height: 1, channels: 3, pixels: [0, 128, 255, 10, 20, 30])
        let t = image.tensor()
        XCTAssertEqual(t.shape, [3, 1, 2])
        // Channel-planar: R plane (0, 10), G plane (128, 20), B plane (255, 30), each p/127.5 − 1.
        XCTAssertEqual(t.scalars, [0, 10, 128, 20, 255, 30].map { Float($0) / 127.5 - 1 })
        XCTAssertEqual(t.scalars[0], -1)
        XCTAssertEqual(t.scalars[4], 1)
        XCTAssertEqual(Image8(tensor: t), image)

        XCTAssertEqual(Image8.byte(-1), 0)
        XCTAssertEqual(Image8.byte(1), 255)
        XCTAssertEqual(Image8.byte(0), 128)               // 127.5 rounds up, as EDM's floor(x·127.5 + 128)
        XCTAssertEqual(Image8.byte(3), 255)
        XCTAssertEqual(Image8.byte(-3), 0)
        XCTAssertEqual(Image8.byte(.nan), 0)
        XCTAssertEqual(Image8.byte(.infinity), 255)

        let all = Image8(width: 16, height: 16, channels: 1, pixels: (0..<256).map { UInt8($0) })
        XCTAssertEqual(Image8(tensor: all.tensor()), all, "every byte survives the round trip")

        let batch = Image8.batch([image, image.flippedHorizontally()])
        XCTAssertEqual(batch.shape, [2, 3, 1, 2])
        XCTAssertEqual(Image8.images(fromBatch: batch), [image, image.flippedHorizontally()])
    }

    func testFlipAndChannelConversion() {
        let image = Image8(width: 3, height: 1, channels: 2, pixels: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(image.flippedHorizontally().pixels, [5, 6, 3, 4, 1, 2])
        let rgb = Image8(width: 1, height: 1, channels: 3, pixels: [200, 100, 50])
        XCTAssertEqual(rgb.converted(toChannels: 1).pixels, [124], "0.299·200 + 0.587·100 + 0.114·50 = 124.2")
        XCTAssertEqual(rgb.converted(toChannels: 4).pixels, [200, 100, 50, 255])
        XCTAssertEqual(Image8(width: 1, height: 1, channels: 2, pixels: [9, 7]).converted(toChannels: 3).pixels, [9, 9, 9])
    }

    func testGridLayoutAndSidecar() throws {
        // Five 2×3 grey tiles, tile n filled with byte 10·(n + 1), 2 columns, padding 1.
        let tiles = (0..<5).map { Image8(width: 3, height: 2, channels: 1, filledWith: UInt8(10 * ($0 + 1))) }
        let batch = Image8.batch(tiles)
        let grid = SampleGrid.image(batch, columns: 2, padding: 1, background: 255)
        XCTAssertEqual([grid.width, grid.height, grid.channels], [2 * 3 + 3, 3 * 2 + 4, 1])
        for n in 0..<5 {
            let top = 1 + (n / 2) * 3, left = 1 + (n % 2) * 4
            for y in top..<(top + 2) { for x in left..<(left + 3) { XCTAssertEqual(grid[y, x, 0], UInt8(10 * (n + 1))) } }
        }
        XCTAssertEqual(grid[0, 0, 0], 255)
        XCTAssertEqual(grid[7, 5, 0], 255, "the empty sixth slot is background")

        let folder = try temporaryFolder(self)
        let url = folder.appendingPathComponent("grid.png")
        try writeGrid(batch, columns: 2, to: url, padding: 1, labels: [0, 1, 2, 0, 1], classNames: ["a", "b"])
        XCTAssertEqual(try PNG.read(url), grid)
        let text = try String(contentsOf: folder.appendingPathComponent("grid.txt"), encoding: .utf8)
        XCTAssertEqual(text, "row 0: 0 (a) 1 (b)\nrow 1: 2 0 (a)\nrow 2: 1 (b)\n")
    }
}
