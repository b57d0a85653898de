// The protocol every dataset reader implements.
//
// A dataset is an indexed collection of square 8-bit images with class labels. Readers open a
// file or folder, build a small index (names, offsets, labels) and decode an image only when
// `item(_:)` is called, so a dataset never has to fit in memory. Labels are known without
// decoding (`label(_:)`), which lets the DataLoader filter by class cheaply.
//
// Unlabelled data (EDM's dataset.json with `"labels": null`, or none at all) has
// `classCount == 0` and every label is `ImageDatasetLabel.none` (−1).
// Readers hold open files (a zip archive, a FileHandle) and are not thread-safe: give each
// thread its own reader.

/// The label of an item in an unlabelled dataset.
public enum ImageDatasetLabel {
    public static let none = -1
}

public protocol ImageDataset: AnyObject {
    /// A name for messages: the file or folder it was read from.
    var name: String { get }
    /// Number of items.
    var count: Int { get }
    /// Number of classes; labels lie in 0..<classCount. 0 means unlabelled.
    var classCount: Int { get }
    /// Image height and width (images are square).
    var resolution: Int { get }
    /// Channels of every image (1 grey or 3 RGB).
    var channels: Int { get }
    /// Class names when the source has them (folder names, dataset.json's "class_names").
    var classNames: [String]? { get }
    /// The label of item `index` without decoding its image.
    func label(_ index: Int) -> Int
    /// Decode item `index`: an image of resolution × resolution × channels and its label.
    func item(_ index: Int) throws -> (image: Image8, label: Int)
}

extension ImageDataset {
    public var classNames: [String]? { nil }

    /// Traps with a message naming the dataset when `index` is out of range.
    func checkIndex(_ index: Int) {
        precondition(index >= 0 && index < count, "\(name): item \(index) out of range 0..<\(count)")
    }

    /// Throws unless `image` has this dataset's size.
    func checkSize(_ image: Image8, entry: String) throws {
        guard image.width == resolution && image.height == resolution else {
            throw DataError(file: name, entry: entry,
                            "image is \(image.width)×\(image.height), the dataset's images are \(resolution)×\(resolution)")
        }
    }
}

/// Items `start ..< start + count` of another dataset, re-indexed from 0: a split carved out of
/// one file, such as a validation set taken from the test images that follow the ones a table is
/// scored on.
public final class ImageSubset: ImageDataset {
    public let base: any ImageDataset
    public let start: Int
    public let count: Int

    /// Items `start ..< start + count` of `base` (`count` nil: to its end). Throws when the range
    /// does not lie inside `base`.
    public init(_ base: any ImageDataset, start: Int, count: Int? = nil) throws {
        guard start >= 0, start < base.count else {
            throw DataError(file: base.name, "items from \(start) requested, the dataset has \(base.count)")
        }
        let n = count ?? base.count - start
        guard n >= 1, start + n <= base.count else {
            throw DataError(file: base.name, "items \(start) ..< \(start + n) requested, the dataset has \(base.count)")
        }
        self.base = base
        self.start = start
        self.count = n
    }

    public var name: String { "\(base.name) [items \(start) ..< \(start + count)]" }
    public var classCount: Int { base.classCount }
    public var resolution: Int { base.resolution }
    public var channels: Int { base.channels }
    public var classNames: [String]? { base.classNames }

    public func label(_ index: Int) -> Int {
        checkIndex(index)
        return base.label(start + index)
    }

    public func item(_ index: Int) throws -> (image: Image8, label: Int) {
        checkIndex(index)
        return try base.item(start + index)
    }
}
