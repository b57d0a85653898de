// What `--data` may name, detected in one place for every command:
//
//   edm            EDM's layout: a .zip or a folder of PNGs (+ dataset.json); a folder written by
//                  `dmd2 prepare-data` (train/ and test/ splits) counts, its split is used
//   npz            downsampled ImageNet (Chrabaszcz et al. 2017): one .npz (`Imagenet64_val.npz`,
//                  `Imagenet64_train_part1.npz`) or a folder of them; in a folder the parts are
//                  taken in natural order (part2 before part10), the train split is the files
//                  whose names hold "train" and the test split those holding "val" or "test"
//   class-folders  one sub-folder of PNGs per class (torchvision's ImageFolder)
//
// Detection: a .zip file is edm, a .npz file (or any zip whose members are .npy) is npz; a
// folder with dataset.json, PNGs at its top or EDM's numbered sub-folders (00000/ …) is edm, a
// folder holding .npz files is npz, a folder of named sub-folders with PNGs is class-folders.
// `format` overrides the detection. Every reader streams (DMD2Data.swift); npz parts are opened
// lazily, one part's `data` extracted when a batch first touches it (ImageNet64Dataset.swift).
import Foundation

public enum DataFormat: String, CaseIterable, Sendable, CustomStringConvertible {
    case edm
    case npz
    case classFolders = "class-folders"

    public var description: String { rawValue }
}

/// The part of a dataset a command reads: training images (without the validation split), the
/// validation split (held out of the training files, ValidationSplit.swift), the held-out test
/// images, or every training image (runs trained before the validation split existed).
public enum DataSplit: String, Sendable, CaseIterable {
    case train, validation, test
    case trainIncludingValidation = "train+validation"

    /// The split whose files hold this one's images (train and validation share the training files).
    public var files: DataSplit { self == .test ? .test : .train }
}

public enum DataSource {
    /// The format of what is at `url` (after split selection), or a DataError saying why none fits.
    public static func detect(_ url: URL) throws -> DataFormat {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw DataError(file: url, "no such file or folder")
        }
        if !isDirectory.boolValue {
            switch url.pathExtension.lowercased() {
            case "zip": return .edm
            case "npz": return .npz
            default: break
            }
            let head = (try? FileHandle(forReadingFrom: url)).flatMap { handle in
                defer { try? handle.close() }
                return try? handle.read(upToCount: 4)
            } ?? Data()
            guard head == Data([0x50, 0x4B, 0x03, 0x04]) else {
                throw DataError(file: url, "not a dataset: expected an EDM .zip, a downsampled-ImageNet .npz or a folder")
            }
            let npz = try? NPZArchive(url: url)
            return (npz?.memberNames.isEmpty ?? true) ? .edm : .npz
        }
        let children = ((try? fm.contentsOfDirectory(atPath: url.path)) ?? []).filter { !$0.hasPrefix(".") }
        if children.contains("dataset.json") { return .edm }
        if children.contains(where: { $0.lowercased().hasSuffix(".png") }) { return .edm }
        if children.contains(where: { $0.lowercased().hasSuffix(".npz") }) { return .npz }
        let folders = children.filter { child in
            var d: ObjCBool = false
            return fm.fileExists(atPath: url.appendingPathComponent(child).path, isDirectory: &d) && d.boolValue
        }
        guard !folders.isEmpty else {
            throw DataError(file: url, "no dataset here: no dataset.json, PNG images, .npz files or class sub-folders")
        }
        // EDM's dataset_tool writes numbered folders 00000/, 00001/ …; anything else names classes.
        if folders.allSatisfy({ $0.count == 5 && $0.allSatisfy(\.isNumber) }) { return .edm }
        return .classFolders
    }

    /// `url` itself, or its `train/` / `test/` split when it is a `dmd2 prepare-data` folder
    /// (no dataset.json of its own, a split sub-folder).
    public static func splitFolder(_ url: URL, split: DataSplit) -> URL {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue,
              !fm.fileExists(atPath: url.appendingPathComponent("dataset.json").path) else { return url }
        let sub = url.appendingPathComponent(split.files.rawValue)
        return fm.fileExists(atPath: sub.path) ? sub : url
    }

    /// The .npz files a folder holds for `split`, in natural order (part2 before part10). When
    /// names tell train from val/test files, only the split's are taken; otherwise all.
    public static func npzParts(in folder: URL, split: DataSplit) throws -> [URL] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".npz") }
        guard !names.isEmpty else { throw DataError(file: folder, "no .npz files in this folder") }
        let train = names.filter { $0.lowercased().contains("train") }
        let test = names.filter { let n = $0.lowercased(); return n.contains("val") || n.contains("test") }
        var chosen = names
        if !train.isEmpty && !test.isEmpty {
            chosen = split.files == .train ? train : test
        }
        return chosen.sorted(by: naturalOrder).map { folder.appendingPathComponent($0) }
    }

    /// "part2" < "part10": runs of digits compare as numbers.
    public static func naturalOrder(_ a: String, _ b: String) -> Bool {
        func chunks(_ s: String) -> [(String, Int?)] {
            var out: [(String, Int?)] = [], current = "", digits = false
            for ch in s {
                if ch.isASCII && ch.isNumber != digits && !current.isEmpty {
                    out.append((current, digits ? Int(current) : nil))
                    current = ""
                }
                digits = ch.isASCII && ch.isNumber
                current.append(ch)
            }
            if !current.isEmpty { out.append((current, digits ? Int(current) : nil)) }
            return out
        }
        for (x, y) in zip(chunks(a), chunks(b)) where x.0 != y.0 {
            if let i = x.1, let j = y.1, i != j { return i < j }
            return x.0 < y.0
        }
        return a.count < b.count
    }

    /// Open what `url` names as one dataset.
    /// - Parameters:
    ///   - format: nil detects it (see the file comment).
    ///   - split: which split of a prepare-data folder or an npz folder with train and val files;
    ///     `.train` leaves out the validation split (`ValidationSplit`), `.validation` is only it.
    ///   - channels: 1 or 3 to convert on reading; nil keeps the data's own.
    ///   - cacheDirectory: where npz `data` members are extracted (ImageNet64Dataset).
    public static func open(_ url: URL, format: DataFormat? = nil, split: DataSplit = .train, channels: Int? = nil,
                            cacheDirectory: URL? = nil) throws -> any ImageDataset {
        let files = try openFiles(url, format: format, split: split.files, channels: channels, cacheDirectory: cacheDirectory)
        switch split {
        case .test, .trainIncludingValidation:
            return files
        case .train:
            let s = ValidationSplit(of: files)
            return s.validation.isEmpty ? files : SubsetDataset(files, indices: s.training, name: files.name + ValidationSplit.trainingNameSuffix)
        case .validation:
            let s = ValidationSplit(of: files)
            guard !s.validation.isEmpty else {
                throw DataError(file: files.name, "no validation split: it holds out 1 in \(ValidationSplit.fractionDenominator) images of each class, and no class here has \(ValidationSplit.fractionDenominator)")
            }
            return SubsetDataset(files, indices: s.validation, name: "\(files.name) (validation)")
        }
    }

    /// The dataset of the files `open` reads for `split` (`.train` or `.test`).
    static func openFiles(_ url: URL, format: DataFormat?, split: DataSplit, channels: Int?,
                          cacheDirectory: URL?) throws -> any ImageDataset {
        if let channels, channels != 1 && channels != 3 {
            throw DataError(file: url, "cannot read with \(channels) channels (1 or 3)")
        }
        let resolved = splitFolder(url, split: split)
        let format = try format ?? detect(resolved)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved.path, isDirectory: &isDirectory) else {
            throw DataError(file: resolved, "no such file or folder")
        }
        switch format {
        case .edm:
            return try EDMDataset(url: resolved, channels: channels)
        case .classFolders:
            guard isDirectory.boolValue else { throw DataError(file: resolved, "class folders: expected a folder, this is a file") }
            return try ClassFolderDataset(url: resolved, channels: channels)
        case .npz:
            let files = isDirectory.boolValue ? try npzParts(in: resolved, split: split) : [resolved]
            return try ImageNet64Dataset(urls: files, resolution: nil, classCount: nil, channels: channels ?? 3,
                                         cacheDirectory: cacheDirectory)
        }
    }
}
