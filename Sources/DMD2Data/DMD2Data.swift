// DMD2Data: images in and out of swift-dmd2.
//
// What lives here, by file:
//   Image8.swift              `Image8`, an 8-bit H×W×C image, and its conversion to and from
//                             Tensor<Float> [C, H, W] in [−1, 1] (x/127.5 − 1)
//   PNG.swift                 PNG decode/encode through libpng's simplified API
//   Grid.swift                tiling a batch [N, C, H, W] into one PNG sample grid
//   NPY.swift                 the .npy header and the .npz (zip of .npy) container
//   ImageDataset.swift        the `ImageDataset` protocol every reader implements
//   ImageNet64Dataset.swift   downsampled ImageNet (Chrabaszcz et al. 2017) `.npz` batches
//   EDMDataset.swift          EDM's layout: a zip or folder of PNGs plus `dataset.json`
//   ClassFolderDataset.swift  a folder with one sub-folder of PNGs per class
//   ShapesDataset.swift       a procedural, in-memory set of coloured shapes (for tests)
//   DataLoader.swift          seeded shuffled batches, x-flip, class subset, size cap, resume
//   FashionMNIST.swift        the embedded default: Debian's Fashion-MNIST → 64×64 EDM folders
//
// Every reader is streaming: it keeps an index (paths, offsets, labels) in memory and decodes
// an image only when `item(_:)` asks for it. Every failure is a `DataError` that names the file
// and, where there is one, the entry inside it.
import Foundation

/// A failure reading or writing data: which file, which entry inside it, and what went wrong.
///
/// `description` reads like `train.npz: entry 'data.npy': row length 12287, expected 12288 for
/// 64×64 RGB`, so a message printed by the CLI points at the exact thing to fix.
public struct DataError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// The file (path as given) the error is about.
    public var file: String
    /// The entry inside the file (a zip member, a dataset.json item, a row), if any.
    public var entry: String?
    /// What went wrong.
    public var reason: String

    public init(file: String, entry: String? = nil, _ reason: String) {
        self.file = file
        self.entry = entry
        self.reason = reason
    }

    public init(file: URL, entry: String? = nil, _ reason: String) {
        self.init(file: file.path, entry: entry, reason)
    }

    public var description: String {
        if let entry { return "\(file): entry '\(entry)': \(reason)" }
        return "\(file): \(reason)"
    }

    public var errorDescription: String? { description }
}
