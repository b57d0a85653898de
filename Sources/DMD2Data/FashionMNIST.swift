// The embedded default dataset: Fashion-MNIST converted to a class-conditional 64×64 EDM set.
//
// Source: Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747), © Zalando SE, MIT
// licence, https://github.com/zalandoresearch/fashion-mnist, as packaged by Debian
// (`dataset-fashion-mnist`, files under /usr/share/datasets/fashion-mnist/):
//   train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   60,000 images
//   t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    10,000 images
// 28×28 grey, 10 balanced classes (6,000 train + 1,000 test each), white-on-black (0 = background).
//
// IDX format (LeCun's MNIST files): bytes 0–1 zero, byte 2 the element type (0x08 = uint8),
// byte 3 the number of dimensions d, then d big-endian UInt32 sizes, then the elements row-major.
// The .gz files are read with zlib's gzopen/gzread.
//
// Conversion (the choices, and why):
//   - resize: pad 28 → 32 with 2 px of background (0) on every side, then upsample 2× bilinearly
//     (half-pixel centres, edges clamped) to 64. An integer factor gives fixed weights (¾, ¼) in
//     each direction, computed exactly in integers: out = (Σ w_y·w_x·p + 8) / 16, w ∈ {1, 3}.
//     Bilinear rather than nearest avoids 2×2 blocks, which would put a spurious peak in the
//     real data's power spectrum, the very place the diagnostics look for generator artefacts.
//     The padding keeps the whole garment with a margin, like MNIST's own 20-in-28 framing.
//   - polarity: kept (garment bright on black), so 0 stays background and x = −1 in tensors.
//   - channels: 3 by default, grey replicated to R = G = B. The ImageNet-64 ADM teacher, the
//     Inception FID network and the colour diagnostics all take RGB, so one pipeline serves both
//     datasets; the cost is small because only the first and last convolutions see the channel
//     count (the network body is the same). A generator's colour cast then shows up directly as
//     saturation. channels 1 writes grey PNGs for a 1-channel teacher.
//   - labels: the original class indices 0–9 (names in `classNames`, also in dataset.json).
//   - splits: train (60,000) and test (10,000, kept for evaluation: FID reference statistics,
//     the class-consistency classifier's held-out accuracy), each an EDM folder:
//     <out>/train/00000/img00000000.png … + dataset.json, <out>/test/… likewise.
//   - limitPerClass: keeps the first k images of each class in file order, in both splits.
import DMD2Core
import CPNG
import Foundation
import Synchronization

public enum FashionMNIST {
    /// Where Debian's `dataset-fashion-mnist` installs the files.
    public static let defaultSourceDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    /// Class names in label order (from the Fashion-MNIST README).
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    /// The two splits and their file-name prefixes.
    public enum Split: String, CaseIterable, Sendable {
        case train, test
        var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    /// The decompressed bytes of a gzip file (zlib's gzread also passes plain files through).
    public static func gunzip(_ url: URL) throws -> [UInt8] {
        guard let file = gzopen(url.path, "rb") else {
            throw DataError(file: url, "cannot open (\(String(cString: strerror(errno))))")
        }
        defer { gzclose(file) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var code: Int32 = 0
                let message = String(cString: gzerror(file, &code))
                throw DataError(file: url, "gzip stream is corrupt (\(message))")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
        }
        return out
    }

    /// Parse an IDX file of uint8 elements: its dimensions and elements.
    public static func parseIDX(_ bytes: [UInt8], name: String) throws -> (dims: [Int], values: ArraySlice<UInt8>) {
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else { throw DataError(file: name, "not an IDX file (bad magic)") }
        guard bytes[2] == 0x08 else { throw DataError(file: name, "IDX element type 0x\(String(bytes[2], radix: 16)) is not uint8 (0x08)") }
        let d = Int(bytes[3]), start = 4 + 4 * d
        guard bytes.count >= start else { throw DataError(file: name, "IDX header is truncated") }
        let dims = (0..<d).map { k in (0..<4).reduce(0) { $0 << 8 | Int(bytes[4 + 4 * k + $1]) } }
        let count = dims.reduce(1, *)
        guard bytes.count - start == count else {
            throw DataError(file: name, "IDX dims \(dims) need \(count) bytes, file holds \(bytes.count - start)")
        }
        return (dims, bytes[start...])
    }

    /// One split: N images of 28×28 bytes (row-major, concatenated) and N labels.
    public static func load(_ split: Split, from directory: URL = defaultSourceDirectory) throws -> (images: [UInt8], labels: [UInt8], count: Int) {
        let imageURL = directory.appendingPathComponent("\(split.filePrefix)-images-idx3-ubyte.gz")
        let labelURL = directory.appendingPathComponent("\(split.filePrefix)-labels-idx1-ubyte.gz")
        let (imageDims, images) = try parseIDX(try gunzip(imageURL), name: imageURL.path)
        let (labelDims, labels) = try parseIDX(try gunzip(labelURL), name: labelURL.path)
        guard imageDims.count == 3, imageDims[1] == 28, imageDims[2] == 28 else {
            throw DataError(file: imageURL, "dims \(imageDims), expected [N, 28, 28]")
        }
        guard labelDims == [imageDims[0]] else {
            throw DataError(file: labelURL, "dims \(labelDims) do not match the \(imageDims[0]) images")
        }
        if let bad = labels.firstIndex(where: { $0 > 9 }) {
            throw DataError(file: labelURL, entry: "item \(bad - labels.startIndex)", "label \(labels[bad]) out of range 0…9")
        }
        return (Array(images), Array(labels), imageDims[0])
    }

    /// 28×28 → 64×64: 2 px of zeros around (32×32), then 2× bilinear (see the file comment).
    public static func upscale(_ pixels: ArraySlice<UInt8>) -> [UInt8] {
        precondition(pixels.count == 28 * 28, "FashionMNIST.upscale: \(pixels.count) bytes, expected 28×28")
        let S = 32
        var padded = [Int](repeating: 0, count: S * S)
        for y in 0..<28 {
            for x in 0..<28 { padded[(y + 2) * S + x + 2] = Int(pixels[pixels.startIndex + y * 28 + x]) }
        }
        // Output pixel o samples the source at o/2 − ¼: neighbours (o/2 − 1, o/2) with weights
        // (1, 3)/4 for even o, (o/2, o/2 + 1) with (3, 1)/4 for odd o; indices clamped to the edge.
        func taps(_ o: Int) -> (Int, Int, Int, Int) {
            let i = o / 2
            return o % 2 == 0 ? (max(i - 1, 0), 1, i, 3) : (i, 3, min(i + 1, S - 1), 1)
        }
        var out = [UInt8](repeating: 0, count: 64 * 64)
        for y in 0..<64 {
            let (y0, wy0, y1, wy1) = taps(y)
            for x in 0..<64 {
                let (x0, wx0, x1, wx1) = taps(x)
                let sum = wy0 * (wx0 * padded[y0 * S + x0] + wx1 * padded[y0 * S + x1])
                    + wy1 * (wx0 * padded[y1 * S + x0] + wx1 * padded[y1 * S + x1])
                out[y * 64 + x] = UInt8((sum + 8) / 16)
            }
        }
        return out
    }

    /// The settings recorded in dataset.json, so a re-run can tell whether the output is current.
    static func conversionRecord(split: Split, channels: Int, limitPerClass: Int?) -> [String: Any] {
        [
            "source": "Fashion-MNIST (Zalando Research, MIT), Debian package dataset-fashion-mnist",
            "split": split.rawValue,
            "resize": "pad 28->32 with 2 px of 0, then 2x bilinear (half-pixel centres) to 64",
            "channels": channels,
            "limit_per_class": limitPerClass.map { $0 as Any } ?? NSNull(),
            "version": 1,
        ]
    }
}

/// Convert Debian's Fashion-MNIST into two EDM-layout folders of 64×64 PNGs with labels:
/// `<outputDirectory>/train` (60,000 images) and `<outputDirectory>/test` (10,000), plus a
/// README.txt with provenance. See FashionMNIST.swift's header for the conversion choices.
///
/// Fashion-MNIST © Zalando SE (Xiao, Rasul & Vollgraf 2017), MIT licence; packaged by Debian as
/// `dataset-fashion-mnist` (install it with `apt-get install dataset-fashion-mnist`).
///
/// - Parameters:
///   - channels: 3 (default: grey replicated to RGB) or 1 (grey PNGs).
///   - limitPerClass: keep only the first k images of each class (both splits), for small runs.
///   - sourceDirectory: where the four .gz idx files are.
///   - overwrite: replace existing output made with other settings (the same settings are
///     detected from dataset.json and skipped).
///   - log: progress lines (default: print).
public func prepareFashionMNIST(outputDirectory: URL, channels: Int = 3, limitPerClass: Int? = nil,
                                sourceDirectory: URL = FashionMNIST.defaultSourceDirectory, overwrite: Bool = false,
                                log: (String) -> Void = { print($0) }) throws {
    precondition(channels == 1 || channels == 3, "prepareFashionMNIST: channels \(channels); expected 1 or 3")
    if let limitPerClass { precondition(limitPerClass > 0, "prepareFashionMNIST: limitPerClass \(limitPerClass) must be positive") }
    let fm = FileManager.default
    do { try fm.createDirectory(at: outputDirectory, withIntermediateDirectories: true) } catch {
        throw DataError(file: outputDirectory, "cannot create folder (\(error.localizedDescription))")
    }

    for split in FashionMNIST.Split.allCases {
        let target = outputDirectory.appendingPathComponent(split.rawValue)
        let record = FashionMNIST.conversionRecord(split: split, channels: channels, limitPerClass: limitPerClass)
        if fm.fileExists(atPath: target.path) {
            let existing = (try? Data(contentsOf: target.appendingPathComponent("dataset.json")))
                .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
            if let previous = existing?["dmd2_conversion"], canonicalJSON(previous) == canonicalJSON(record) {
                log("fashion-mnist \(split.rawValue): \(target.path) is already prepared with these settings, skipping")
                continue
            }
            guard overwrite else {
                throw DataError(file: target, "already exists with other settings (or incomplete); remove it or pass overwrite")
            }
            try fm.removeItem(at: target)
        }

        let started = Date()
        let (images, rawLabels, total) = try FashionMNIST.load(split, from: sourceDirectory)
        var chosen: [Int] = []                                   // source indices, in file order
        var perClass = [Int](repeating: 0, count: 10)
        for i in 0..<total where perClass[Int(rawLabels[i])] < (limitPerClass ?? .max) {
            chosen.append(i)
            perClass[Int(rawLabels[i])] += 1
        }
        log("fashion-mnist \(split.rawValue): converting \(chosen.count) of \(total) images to 64×64×\(channels) PNG in \(target.path)")

        // Write into a temporary sibling, then rename: an interrupted run leaves no half dataset.
        let partial = outputDirectory.appendingPathComponent(".\(split.rawValue).partial")
        try? fm.removeItem(at: partial)
        let paths = chosen.indices.map { String(format: "%05d/img%08d.png", $0 / 1000, $0) }
        do {
            for folder in Set(paths.map { String($0.prefix(5)) }) {
                try fm.createDirectory(at: partial.appendingPathComponent(folder), withIntermediateDirectories: true)
            }
        } catch {
            throw DataError(file: partial, "cannot create folder (\(error.localizedDescription))")
        }
        let firstError = Mutex<DataError?>(nil)
        let done = Mutex<Int>(0)
        parallelChunks(chosen.count, minChunk: 256) { range in
            for k in range {
                let source = chosen[k]
                let grey = Image8(width: 64, height: 64, channels: 1,
                                  pixels: FashionMNIST.upscale(images[(source * 784)..<((source + 1) * 784)]))
                let url = partial.appendingPathComponent(paths[k])
                do {
                    try PNG.encode(grey.converted(toChannels: channels)).write(to: url)
                } catch {
                    firstError.withLock { $0 = $0 ?? DataError(file: url, "cannot write PNG (\(error))") }
                    return
                }
                done.withLock { n in                      // under the lock: `log` is never called concurrently
                    n += 1
                    if n % 10_000 == 0 { log("  \(n) / \(chosen.count)") }
                }
            }
        }
        if let error = firstError.withLock({ $0 }) { throw error }

        var json = [String: Any]()
        json["labels"] = zip(paths, chosen).map { [$0.0, Int(rawLabels[$0.1])] as [Any] }
        json["class_names"] = FashionMNIST.classNames
        json["dmd2_conversion"] = record
        do {
            let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            try data.write(to: partial.appendingPathComponent("dataset.json"))
            try fm.moveItem(at: partial, to: target)
        } catch {
            throw DataError(file: target, "cannot finish the dataset (\(error.localizedDescription))")
        }
        log(String(format: "fashion-mnist %@: %d images written in %.1f s", split.rawValue, chosen.count, Date().timeIntervalSince(started)))
    }

    let readme = """
    Fashion-MNIST, converted for swift-dmd2 by `dmd2 prepare-data` (prepareFashionMNIST).

    Source: Fashion-MNIST, Han Xiao, Kashif Rasul, Roland Vollgraf, "Fashion-MNIST: a Novel Image
    Dataset for Benchmarking Machine Learning Algorithms", arXiv:1708.07747 (2017).
    Copyright (c) 2017 Zalando SE, https://tech.zalando.com. MIT licence:
    https://github.com/zalandoresearch/fashion-mnist/blob/master/LICENSE
    Read from the Debian package dataset-fashion-mnist (\(sourceDirectory.path)).

    Layout: EDM dataset folders train/ and test/: PNG images plus dataset.json
    {"labels": [[path, class], ...], "class_names": [...], "dmd2_conversion": {...}}.
    Conversion: 28x28 grey, padded to 32x32 with 2 px of black, 2x bilinear to 64x64,
    \(channels == 3 ? "grey replicated to RGB" : "kept grey (1 channel)"), polarity kept (garment bright on black).
    Classes: \(FashionMNIST.classNames.enumerated().map { "\($0.offset) \($0.element)" }.joined(separator: ", ")).
    \(limitPerClass.map { "Limited to the first \($0) images of each class per split.\n" } ?? "")
    """
    do { try readme.write(to: outputDirectory.appendingPathComponent("README.txt"), atomically: true, encoding: .utf8) } catch {
        throw DataError(file: outputDirectory.appendingPathComponent("README.txt"), "cannot write (\(error.localizedDescription))")
    }
}

/// JSON text with sorted keys, for comparing two JSON values.
private func canonicalJSON(_ value: Any) -> Data? {
    try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
}
