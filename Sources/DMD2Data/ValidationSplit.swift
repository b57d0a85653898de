// The validation split: a fixed part of the training set that training never reads, for choosing
// checkpoints and settings, so that the test split serves only for the numbers reported.
//
// It is derived from the training set's labels alone, so every existing dataset gets it without
// being prepared again:
//
//   per class c with n_c training images:  q_c = min(⌊5000 / K⌋, ⌊n_c / 12⌋)
//   (K = the dataset's classes; an unlabelled set is one class with ⌊5000 / 1⌋)
//
// and the q_c images of class c are that class's LAST q_c images in dataset order. (Prepared sets
// are not sorted within a class, so the last ones are as good a sample as any; and a run capped
// with `--max-items` — the first images of each class in turn — never reads them: the teacher
// run that started before this split existed, `--max-items 55000`, trained on exactly the other
// 55,000.) On Fashion-MNIST (60,000 training images,
// 6,000 per class) that is 500 per class, 5,000 images; training reads the other 55,000. A set
// with fewer than 12 images per class holds none out (the tests' tiny sets train on everything).
//
// `DataSource.open(…, split: .train)` returns the training images minus these,
// `split: .validation` these, `split: .trainIncludingValidation` all of them (runs trained before
// the split existed resume on it).
import DMD2Core
import Foundation

public struct ValidationSplit: Sendable, Equatable {
    /// At most this many validation images in all, balanced over the classes.
    public static let total = 5000
    /// At most 1 in this many images of a class is held out.
    public static let fractionDenominator = 12
    /// Sorted indices of the validation images in the training set.
    public let validation: [Int]
    /// Sorted indices of the images training reads (the complement).
    public let training: [Int]

    /// The split of `dataset` (its labels only; nothing is decoded).
    public init(of dataset: any ImageDataset) {
        self.init(labels: (0..<dataset.count).map { dataset.label($0) }, classCount: dataset.classCount)
    }

    /// The split of a training set with these labels (−1: unlabelled).
    public init(labels: [Int], classCount: Int) {
        var groups: [Int: [Int]] = [:]
        for (i, label) in labels.enumerated() { groups[label, default: []].append(i) }
        let perClassCap = Self.total / Swift.max(classCount, 1)
        var held: [Int] = []
        // Classes in label order; the unlabelled group (−1) last.
        for label in groups.keys.sorted(by: { ($0 < 0 ? Int.max : $0) < ($1 < 0 ? Int.max : $1) }) {
            let members = groups[label]!
            let q = Swift.min(perClassCap, members.count / Self.fractionDenominator)
            held += members.suffix(q)
        }
        held.sort()
        validation = held
        var isHeld = [Bool](repeating: false, count: labels.count)
        for i in held { isHeld[i] = true }
        training = (0..<labels.count).filter { !isHeld[$0] }
    }

    /// The end of the name of a training set with the validation split left out (run manifests
    /// record it, so a resumed run knows whether it was trained without the validation images).
    public static let trainingNameSuffix = " (training images, validation held out)"

    /// One line for logs and docs.
    public var summary: String {
        "\(validation.count) of \(validation.count + training.count) training images held out for validation"
    }
}

/// Some items of another dataset, in the given order: the validation split, the training images
/// minus it, or the real images an evaluation draws.
public final class SubsetDataset: ImageDataset {
    public let base: any ImageDataset
    /// Item i of this dataset is item `indices[i]` of `base`.
    public let indices: [Int]
    public let name: String

    public init(_ base: any ImageDataset, indices: [Int], name: String) {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < base.count }, "SubsetDataset: an index lies outside \(base.name)'s 0..<\(base.count)")
        self.base = base
        self.indices = indices
        self.name = name
    }

    public var count: Int { indices.count }
    public var classCount: Int { base.classCount }
    public var resolution: Int { base.resolution }
    public var channels: Int { base.channels }
    public var classNames: [String]? { base.classNames }
    public func label(_ index: Int) -> Int {
        checkIndex(index)
        return base.label(indices[index])
    }
    public func item(_ index: Int) throws -> (image: Image8, label: Int) {
        checkIndex(index)
        return try base.item(indices[index])
    }
}
