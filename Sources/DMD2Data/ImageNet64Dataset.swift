// Downsampled ImageNet in NumPy .npz batches (Chrabaszcz, Loshchilov & Hutter 2017,
// "A Downsampled Variant of ImageNet as an Alternative to the CIFAR datasets").
//
// Each file (`train_data_batch_1.npz` … `_10.npz`, `val_data.npz`) is a zip of .npy members:
//   data    uint8 [N, 3·R·R]   one image per row, channel-planar: the R plane (R·R bytes, row-major),
//                              then G, then B — R = 64 gives rows of 12288
//   labels  integers [N]       ImageNet class, 1-based (1…1000); we return 0-based labels
//   mean    float64            the training-set mean image (present in train batches; unused here)
// Several files are read as one dataset, in the order given.
//
// Streaming and the extract-once trade-off: `data` is 1.5 GB per training batch. Reading rows in
// shuffled order needs random access into that member, which a deflated member
// (`np.savez_compressed`) cannot give, and which ZIPFoundation does not expose for stored members
// (entry offsets are internal to it). So on the first `item(_:)` touching a file, its `data`
// member is extracted once, CRC-checked, to a plain .npy in `cacheDirectory` (named by the
// member's CRC-32 and size, so later runs and other copies of the file reuse it; verified against
// that CRC-32 each time a dataset opens it, rebuilt when it does not match), and rows are then
// read with one seek + read of 3·R·R bytes each. Cost: one sequential pass and one uncompressed
// copy on disk (≈ 1.6 GB per training part, 15.7 GB for all ten, 0.6 GB for val), plus a CRC
// pass over the copy each time a part is first touched; memory stays at one row plus the labels
// (8 bytes per image: 10 MB for the 1.28 M training images), whatever the number of parts.
import Foundation

public final class ImageNet64Dataset: ImageDataset {
    /// One .npz file: its labels (0-based) and, once extracted, the open `data` file.
    private final class Shard {
        let archive: NPZArchive
        let labels: [Int]
        let dataHeader: NPYHeader
        var handle: FileHandle?
        var dataOffset = 0

        init(archive: NPZArchive, labels: [Int], dataHeader: NPYHeader) {
            self.archive = archive
            self.labels = labels
            self.dataHeader = dataHeader
        }

        deinit { try? handle?.close() }
    }

    public let name: String
    public let count: Int
    public let classCount: Int
    public let resolution: Int
    /// 3, or 1 when opened with `channels: 1` (each pixel converted to luma on reading).
    public let channels: Int
    /// Where `data` members are extracted (see the file comment).
    public let cacheDirectory: URL
    private let shards: [Shard]
    /// First global index of each shard, plus `count` at the end.
    private let starts: [Int]

    /// Open one or more .npz batches.
    /// - Parameters:
    ///   - resolution: R, the side of the images (64 for ImageNet-64; 32, 16 and 8 also exist);
    ///     nil reads it from the first file's row length 3·R·R.
    ///   - classCount: labels must lie in 1…classCount in the files; nil takes the largest label.
    ///   - channels: 3 (the files' RGB) or 1 (converted to grey on reading).
    ///   - cacheDirectory: where `data` members are extracted; default `$TMPDIR/dmd2-npz-cache`.
    public init(urls: [URL], resolution: Int? = 64, classCount: Int? = 1000, channels: Int = 3, cacheDirectory: URL? = nil) throws {
        precondition(!urls.isEmpty, "ImageNet64Dataset: no files given")
        precondition((resolution ?? 1) > 0 && (classCount ?? 1) > 0, "ImageNet64Dataset: resolution, classCount must be positive")
        precondition(channels == 1 || channels == 3, "ImageNet64Dataset: channels \(channels); expected 1 or 3")
        self.channels = channels
        self.cacheDirectory = cacheDirectory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-npz-cache")
        name = urls.count == 1 ? urls[0].path : "\(urls[0].path) (+\(urls.count - 1) more)"

        var resolution = resolution
        var shards: [Shard] = []
        var starts = [0]
        for url in urls {
            let archive = try NPZArchive(url: url)
            let data = try archive.header("data")
            guard data.dtype == .uint8 else {
                throw DataError(file: url, entry: "data.npy", "dtype \(data.dtype) is not uint8")
            }
            guard data.shape.count == 2 else {
                throw DataError(file: url, entry: "data.npy", "shape \(data.shape) is not [N, 3·R·R] (one channel-planar RGB image per row)")
            }
            if resolution == nil {
                let side = Int(Double(data.shape[1] / 3).squareRoot().rounded())
                guard side > 0, 3 * side * side == data.shape[1] else {
                    throw DataError(file: url, entry: "data.npy",
                                    "row length \(data.shape[1]) is not 3·R·R for any R: not channel-planar RGB square images")
                }
                resolution = side
            }
            let rowLength = 3 * resolution! * resolution!
            guard data.shape[1] == rowLength else {
                throw DataError(file: url, entry: "data.npy",
                                "row length \(data.shape[1]), expected \(rowLength) for \(resolution!)×\(resolution!) RGB")
            }
            let (labelShape, oneBased) = try archive.integers("labels")
            guard labelShape.reduce(1, *) == data.shape[0], labelShape.count == 1 || labelShape == [data.shape[0], 1] else {
                throw DataError(file: url, entry: "labels.npy",
                                "shape \(labelShape) does not match the \(data.shape[0]) rows of data.npy")
            }
            if let bad = oneBased.firstIndex(where: { !(1...(classCount ?? Int.max)).contains($0) }) {
                throw DataError(file: url, entry: "labels.npy",
                                "row \(bad): label \(oneBased[bad]) out of range 1…\(classCount.map(String.init) ?? "") (labels are 1-based)")
            }
            shards.append(Shard(archive: archive, labels: oneBased.map { $0 - 1 }, dataHeader: data))
            starts.append(starts.last! + data.shape[0])
        }
        self.shards = shards
        self.starts = starts
        self.resolution = resolution!
        self.classCount = classCount ?? shards.map { ($0.labels.max() ?? 0) + 1 }.max()!
        count = starts.last!
    }

    public convenience init(url: URL, resolution: Int? = 64, classCount: Int? = 1000, channels: Int = 3,
                            cacheDirectory: URL? = nil) throws {
        try self.init(urls: [url], resolution: resolution, classCount: classCount, channels: channels,
                      cacheDirectory: cacheDirectory)
    }

    /// The shard holding global index `index`, and the row inside it.
    private func locate(_ index: Int) -> (shard: Shard, row: Int) {
        checkIndex(index)
        var lo = 0, hi = shards.count - 1          // last shard whose start ≤ index
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= index { lo = mid } else { hi = mid - 1 }
        }
        return (shards[lo], index - starts[lo])
    }

    public func label(_ index: Int) -> Int {
        let (shard, row) = locate(index)
        return shard.labels[row]
    }

    public func item(_ index: Int) throws -> (image: Image8, label: Int) {
        let (shard, row) = locate(index)
        let R = resolution, plane = R * R, rowLength = 3 * plane
        if shard.handle == nil {
            let (file, header) = try shard.archive.extractOnce("data", to: cacheDirectory)
            guard header == shard.dataHeader else {
                throw DataError(file: shard.archive.url, entry: "data.npy", "extracted copy \(file.path) has a different header")
            }
            shard.handle = try FileHandle(forReadingFrom: file)
            shard.dataOffset = header.dataOffset
        }
        let bytes: Data
        do {
            try shard.handle!.seek(toOffset: UInt64(shard.dataOffset + row * rowLength))
            bytes = try shard.handle!.read(upToCount: rowLength) ?? Data()
        } catch {
            throw DataError(file: shard.archive.url, entry: "data.npy", "row \(row): cannot read (\(error))")
        }
        guard bytes.count == rowLength else {
            throw DataError(file: shard.archive.url, entry: "data.npy", "row \(row): only \(bytes.count) of \(rowLength) bytes")
        }
        // Channel-planar [3, R, R] → interleaved [R, R, 3].
        var pixels = [UInt8](repeating: 0, count: rowLength)
        bytes.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            for i in 0..<plane {
                pixels[3 * i] = src[i]
                pixels[3 * i + 1] = src[plane + i]
                pixels[3 * i + 2] = src[2 * plane + i]
            }
        }
        let image = Image8(width: R, height: R, channels: 3, pixels: pixels)
        return (channels == 3 ? image : image.converted(toChannels: channels), shard.labels[row])
    }
}
