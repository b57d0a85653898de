// The validation split (issue 15): a fixed, balanced part of the training files that the training
// split never contains, derived from the labels alone so existing prepared folders get it.
import DMD2Core
@testable import DMD2Data
import Foundation
import XCTest

final class ValidationSplitTests: XCTestCase {
    func testFashionMNISTSizedSetHoldsOut500PerClass() {
        let labels = (0..<60_000).map { $0 % 10 }
        let split = ValidationSplit(labels: labels, classCount: 10)
        XCTAssertEqual(split.validation.count, 5000)
        XCTAssertEqual(split.training.count, 55_000)
        var perClass = [Int](repeating: 0, count: 10)
        for i in split.validation { perClass[labels[i]] += 1 }
        XCTAssertEqual(perClass, [Int](repeating: 500, count: 10))
        // Disjoint, together everything, both sorted.
        XCTAssertEqual(Set(split.validation).intersection(split.training), [])
        XCTAssertEqual((split.validation + split.training).sorted(), Array(0..<60_000))
        XCTAssertEqual(split.validation, split.validation.sorted())
        XCTAssertEqual(split.training, split.training.sorted())
        // Fixed: the same labels give the same split; it is not simply the first images of each class.
        XCTAssertEqual(ValidationSplit(labels: labels, classCount: 10), split)
        XCTAssertNotEqual(Array(split.validation.prefix(10)), Array(0..<10))
        XCTAssert(split.validation.last! > 50_000, "the held-out images should spread over the whole set")
    }

    func testSmallClassesHoldOutOneInTwelveAndTinySetsNone() {
        // Class 0: 36 images → 3; class 1: 11 images → 0; unlabelled images: their own group, 24 → 2.
        let labels = [Int](repeating: 0, count: 36) + [Int](repeating: 1, count: 11) + [Int](repeating: -1, count: 24)
        let split = ValidationSplit(labels: labels, classCount: 2)
        XCTAssertEqual(split.validation.filter { labels[$0] == 0 }.count, 3)
        XCTAssertEqual(split.validation.filter { labels[$0] == 1 }.count, 0)
        XCTAssertEqual(split.validation.filter { labels[$0] == -1 }.count, 2)
        XCTAssertEqual(ValidationSplit(labels: [Int](repeating: 3, count: 11), classCount: 4).validation, [])
        // Unlabelled data: one group capped at the total.
        XCTAssertEqual(ValidationSplit(labels: [Int](repeating: -1, count: 120_000), classCount: 0).validation.count, 5000)
    }

    /// Through `DataSource.open`: the training split never holds a validation image (checked on
    /// the decoded pixels, every image distinct), the two together are the training files, the test
    /// files are untouched, and a DataLoader over the training split reads no validation image in
    /// several epochs.
    func testTrainingSplitExcludesTheValidationImages() throws {
        let folder = try temporaryFolder(self)
        let cache = folder.appendingPathComponent(".cache")
        // 120 training images of 4 classes (30 each → 2 held out per class), 16 test images.
        let train = (0..<120).map { generatedImage($0, resolution: 8) }
        try NPZWriter.writeImageNetStyle(images: train, labels: (0..<120).map { $0 % 4 },
                                         to: folder.appendingPathComponent("Imagenet8_train_part1.npz"))
        try NPZWriter.writeImageNetStyle(images: (120..<136).map { generatedImage($0, resolution: 8) }, labels: (0..<16).map { $0 % 4 },
                                         to: folder.appendingPathComponent("Imagenet8_val.npz"))
        let training = try DataSource.open(folder, split: .train, cacheDirectory: cache)
        let validation = try DataSource.open(folder, split: .validation, cacheDirectory: cache)
        let all = try DataSource.open(folder, split: .trainIncludingValidation, cacheDirectory: cache)
        let test = try DataSource.open(folder, split: .test, cacheDirectory: cache)
        XCTAssertEqual(all.count, 120)
        XCTAssertEqual(validation.count, 8)
        XCTAssertEqual(training.count, 112)
        XCTAssertEqual(test.count, 16)
        XCTAssert(training.name.hasSuffix(ValidationSplit.trainingNameSuffix), training.name)

        func pixels(_ d: any ImageDataset) throws -> [[UInt8]] { try (0..<d.count).map { try d.item($0).image.pixels } }
        let trainPixels = try pixels(training), validationPixels = try pixels(validation), allPixels = try pixels(all)
        XCTAssertEqual(Set(allPixels).count, 120, "the test images must be distinct for this check")
        XCTAssertEqual(Set(trainPixels).intersection(validationPixels), [])
        XCTAssertEqual(Set(trainPixels).union(validationPixels), Set(allPixels))
        XCTAssertEqual(Set(try pixels(test)).intersection(allPixels), [])
        // Balanced: two per class.
        XCTAssertEqual((0..<validation.count).map { validation.label($0) }.sorted(), [0, 0, 1, 1, 2, 2, 3, 3])

        var loader = DataLoader(dataset: training, batchSize: 16, seed: 3, shuffle: true)
        var seen = Set<[UInt8]>()
        for _ in 0..<(3 * loader.batchesPerEpoch) {
            let batch = try loader.next()
            for i in batch.indices { seen.insert(trainPixels[i]) }
        }
        XCTAssertEqual(seen.count, 112, "three epochs read every training image")
        XCTAssertEqual(seen.intersection(validationPixels), [], "training read a validation image")
    }

    func testNoValidationSplitIsAClearError() throws {
        let folder = try temporaryFolder(self)
        try NPZWriter.writeImageNetStyle(images: (0..<8).map { generatedImage($0, resolution: 8) }, labels: (0..<8).map { $0 % 4 },
                                         to: folder.appendingPathComponent("Imagenet8_train_part1.npz"))
        XCTAssertEqual(try DataSource.open(folder, split: .train, cacheDirectory: folder.appendingPathComponent(".cache")).count, 8)
        XCTAssertThrowsError(try DataSource.open(folder, split: .validation, cacheDirectory: folder.appendingPathComponent(".cache"))) { error in
            XCTAssert("\(error)".contains("no validation split"), "\(error)")
        }
    }
}
