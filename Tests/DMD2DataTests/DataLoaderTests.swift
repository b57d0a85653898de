// DataLoader (shuffling, x-flip, class subsets, size caps, epochs, exact resume) and the
// procedural ShapesDataset it is tested on.
import DMD2Core
@testable import DMD2Data
import Foundation
import XCTest

/// A dataset whose labels are given (class-sorted in the tests); item i is a 2×2 grey image of byte i.
final class LabelledBytes: ImageDataset {
    let labels: [Int]
    init(labels: [Int]) { self.labels = labels }
    var name: String { "labelled-bytes" }
    var count: Int { labels.count }
    var classCount: Int { (labels.max() ?? -1) + 1 }
    var resolution: Int { 2 }
    var channels: Int { 1 }
    func label(_ index: Int) -> Int { labels[index] }
    func item(_ index: Int) throws -> (image: Image8, label: Int) {
        (Image8(width: 2, height: 2, channels: 1, pixels: [UInt8(index), UInt8(index), 0, 255]), labels[index])
    }
}

final class DataLoaderTests: XCTestCase {
    func testShapesDatasetIsDeterministicAndBalanced() throws {
        let shapes = ShapesDataset(count: 12, classCount: 4, resolution: 16, channels: 3, seed: 5)
        XCTAssertEqual((0..<12).map(shapes.label), (0..<12).map { $0 % 4 })
        XCTAssertEqual(try shapes.item(7).image, try shapes.item(7).image)
        XCTAssertNotEqual(try shapes.item(7).image, try shapes.item(3).image, "same class, different placement")
        XCTAssertNotEqual(try shapes.item(7).image, try ShapesDataset(count: 12, seed: 6).item(7).image, "seed matters")
        let grey = ShapesDataset(count: 12, classCount: 4, resolution: 16, channels: 1, seed: 5)
        XCTAssertEqual(try grey.item(2).image, try shapes.item(2).image.converted(toChannels: 1))
        // Each class has its own colour: the brightest pixel's dominant channel differs between red and green shapes.
        let red = try shapes.item(0).image, green = try shapes.item(1).image
        let redSum = (0..<3).map { c in (0..<256).reduce(0) { $0 + Int(red.pixels[$1 * 3 + c]) } }
        let greenSum = (0..<3).map { c in (0..<256).reduce(0) { $0 + Int(green.pixels[$1 * 3 + c]) } }
        XCTAssertGreaterThan(redSum[0], redSum[1])
        XCTAssertGreaterThan(greenSum[1], greenSum[0])
    }

    func testEpochVisitsEveryItemOnceAndBatchesMatchItems() throws {
        let shapes = ShapesDataset(count: 23, classCount: 3, resolution: 8, seed: 1)
        var loader = DataLoader(dataset: shapes, batchSize: 5, seed: 42, xflip: true)
        XCTAssertEqual(loader.batchesPerEpoch, 5)
        var epochs: [[Int]] = []
        var sawFlip = [false, false]
        for _ in 0..<2 {
            var seen: [Int] = []
            var sizes: [Int] = []
            while let batch = try loader.nextInEpoch() {
                sizes.append(batch.labels.count)
                XCTAssertEqual(batch.images.shape, [batch.labels.count, 3, 8, 8])
                for (n, index) in batch.indices.enumerated() {
                    var expected = try shapes.item(index).image
                    if batch.flipped[n] { expected = expected.flippedHorizontally() }
                    XCTAssertEqual(Image8.images(fromBatch: batch.images)[n], expected)
                    XCTAssertEqual(batch.labels[n], index % 3)
                    sawFlip[batch.flipped[n] ? 1 : 0] = true
                }
                seen += batch.indices
            }
            XCTAssertEqual(sizes, [5, 5, 5, 5, 3])
            XCTAssertEqual(seen.sorted(), Array(0..<23), "every item exactly once per epoch")
            epochs.append(seen)
        }
        XCTAssertEqual(loader.epoch, 2)
        XCTAssertNotEqual(epochs[0], epochs[1], "each epoch has its own permutation")
        XCTAssertNotEqual(epochs[0], Array(0..<23))
        XCTAssertEqual(sawFlip, [true, true])
    }

    func testSeedsAndUnshuffledOrder() throws {
        let shapes = ShapesDataset(count: 30, resolution: 8)
        func indices(seed: UInt64, shuffle: Bool = true) throws -> [Int] {
            var loader = DataLoader(dataset: shapes, batchSize: 7, seed: seed, shuffle: shuffle)
            return try (0..<6).flatMap { _ in try loader.next().indices }
        }
        XCTAssertEqual(try indices(seed: 3), try indices(seed: 3))
        XCTAssertNotEqual(try indices(seed: 3), try indices(seed: 4))
        XCTAssertEqual(try indices(seed: 3, shuffle: false), (0..<42).map { $0 % 30 }, "next() runs on into the next epoch")
    }

    func testResumeContinuesTheExactSequence() throws {
        let shapes = ShapesDataset(count: 11, resolution: 8)
        var original = DataLoader(dataset: shapes, batchSize: 4, seed: 9, xflip: true)
        var saved: [DataLoader.State] = []
        var batches: [[Int]] = [], flips: [[Bool]] = []
        for _ in 0..<9 {                                   // 36 items: crosses three epoch boundaries
            saved.append(original.state)
            let batch = try original.next()
            batches.append(batch.indices)
            flips.append(batch.flipped)
        }
        for step in [0, 2, 3, 5, 8] {
            let json = try JSONEncoder().encode(saved[step])
            var resumed = DataLoader(dataset: shapes, batchSize: 4, seed: 12345, xflip: true)
            resumed.restore(try JSONDecoder().decode(DataLoader.State.self, from: json))
            for later in step..<9 {
                let batch = try resumed.next()
                XCTAssertEqual(batch.indices, batches[later], "resumed at \(step), batch \(later)")
                XCTAssertEqual(batch.flipped, flips[later], "resumed at \(step), batch \(later)")
            }
        }
        // Resuming at an epoch's end (from nextInEpoch) continues too.
        var epochwise = DataLoader(dataset: shapes, batchSize: 4, seed: 9)
        while try epochwise.nextInEpoch() != nil {}
        let atEnd = epochwise.state
        let expected = try epochwise.next().indices
        var resumed = DataLoader(dataset: shapes, batchSize: 4, seed: 0)
        resumed.restore(atEnd)
        XCTAssertEqual(try resumed.next().indices, expected)
    }

    func testClassSubsetRemapsOrKeepsLabels() throws {
        let shapes = ShapesDataset(count: 40, classCount: 4, resolution: 8)
        var remapped = DataLoader(dataset: shapes, batchSize: 8, seed: 0, classes: [2, 0])
        XCTAssertEqual(remapped.count, 20)
        XCTAssertEqual(remapped.classCount, 2)
        XCTAssertEqual(remapped.indices, (0..<40).filter { $0 % 4 == 0 || $0 % 4 == 2 })
        for _ in 0..<5 {
            let batch = try remapped.next()
            for (index, label) in zip(batch.indices, batch.labels) { XCTAssertEqual(label, index % 4 == 2 ? 0 : 1) }
        }
        var kept = DataLoader(dataset: shapes, batchSize: 8, seed: 0, classes: [2, 0], remapLabels: false)
        XCTAssertEqual(kept.classCount, 4)
        let batch = try kept.next()
        XCTAssertEqual(batch.labels, batch.indices.map { $0 % 4 })
    }

    func testSizeCapIsBalancedOverClasses() throws {
        // Class-sorted labels: 0 ×4, 1 ×3, 2 ×3.
        let data = LabelledBytes(labels: [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
        XCTAssertEqual(DataLoader(dataset: data, batchSize: 2, seed: 0, maxItems: 5).indices, [0, 1, 4, 5, 7])
        XCTAssertEqual(DataLoader(dataset: data, batchSize: 2, seed: 0, maxItems: 8).indices, [0, 1, 2, 4, 5, 6, 7, 8])
        XCTAssertEqual(DataLoader(dataset: data, batchSize: 2, seed: 0, maxItems: 50).indices, Array(0..<10))
        XCTAssertEqual(DataLoader(dataset: data, batchSize: 2, seed: 0, classes: [1, 2], maxItems: 3).indices, [4, 5, 7])
        var loader = DataLoader(dataset: data, batchSize: 3, seed: 0, maxItems: 5)
        var seen: [Int] = []
        while let batch = try loader.nextInEpoch() {
            seen += batch.indices
            XCTAssertEqual(batch.images.shape, [batch.indices.count, 1, 2, 2])
            for (n, index) in batch.indices.enumerated() { XCTAssertEqual(batch.images[n, 0, 0, 1], Float(index) / 127.5 - 1) }
        }
        XCTAssertEqual(seen.sorted(), [0, 1, 4, 5, 7])
    }

    func testBoundedDrawIsUniformAndInRange() {
        var rng = RandomGenerator(seed: 11)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[DataLoader.bounded(7, using: &rng)] += 1 }
        // Expected 10,000 each; 5 standard deviations (√(70000·(1/7)·(6/7)) ≈ 92.6) is ±463.
        for count in counts { XCTAssertEqual(Double(count), 10_000, accuracy: 463) }
    }
}
