// EDM's dataset layout (Karras et al. 2022, `dataset_tool.py` output): a zip (normally stored,
// i.e. uncompressed) or a folder of PNG images, plus an optional `dataset.json` at its root:
//
//   { "labels": [ ["00000/img00000000.png", 6], ["00000/img00000001.png", 2], … ] }
//
// `"labels": null` (or no dataset.json) means unlabelled. Items are the PNG files in sorted path
// order, as in EDM; every PNG must have a dataset.json entry and every entry must name a PNG, so
// a mismatch is an error naming the path rather than a silently shorter dataset.
// classCount is max(label) + 1, as EDM computes it, unless dataset.json also carries our
// optional `"class_names": [...]` (ignored by EDM), which then fixes classCount and the names.
// Resolution and channels come from the first image (EDM does the same); every item is checked.
import Foundation

public final class EDMDataset: ImageDataset {
    /// Where the bytes come from.
    private enum Source {
        case folder(URL)
        case zip(ZipLayout, [String: ZipEntry])
    }

    public let name: String
    public let count: Int
    public let classCount: Int
    public let resolution: Int
    public let channels: Int
    public let classNames: [String]?
    /// The PNG paths relative to the root, in item order.
    public let paths: [String]
    private let labels: [Int]
    private let source: Source

    /// Open an EDM dataset: `url` is a .zip file or a folder.
    /// - Parameter channels: 1 or 3 to convert every image (grey ↔ RGB) on reading; nil takes the
    ///   first image's (grey or grey+alpha → 1, RGB or RGBA → 3; alpha is composited onto black).
    public init(url: URL, channels: Int? = nil) throws {
        if let channels { precondition(channels == 1 || channels == 3, "EDMDataset: channels \(channels); expected 1 or 3") }
        let name = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: name, isDirectory: &isDirectory) else {
            throw DataError(file: url, "no such file or folder")
        }
        let source: Source, files: [String]
        if isDirectory.boolValue {
            source = .folder(url)
            files = EDMDataset.relativeFiles(in: url)
        } else {
            let layout: ZipLayout
            do { layout = try ZipLayout(url: url) } catch let error as DataError {
                throw error.entry != nil ? error : DataError(file: url, "not a readable zip archive (\(error.reason))")
            }
            var entries: [String: ZipEntry] = [:]
            for entry in layout.files { entries[entry.path] = entry }
            source = .zip(layout, entries)
            files = Array(entries.keys)
        }
        let paths = files.filter { $0.lowercased().hasSuffix(".png") }.sorted()
        guard !paths.isEmpty else { throw DataError(file: url, "no PNG images found") }

        // Labels from dataset.json, checked against the image list in both directions.
        let json = files.contains("dataset.json")
            ? try EDMDataset.parseJSON(try EDMDataset.bytes(of: "dataset.json", in: source, name: name), name: name)
            : nil
        if let json, let labelled = json.labels {
            var byPath: [String: Int] = [:]
            for (path, label) in labelled {
                guard byPath[path] == nil else { throw DataError(file: name, entry: path, "listed twice in dataset.json") }
                byPath[path] = label
            }
            let imageSet = Set(paths)
            if let orphan = labelled.first(where: { !imageSet.contains($0.path) }) {
                throw DataError(file: name, entry: orphan.path, "listed in dataset.json but there is no such PNG")
            }
            if let unlabelled = paths.first(where: { byPath[$0] == nil }) {
                throw DataError(file: name, entry: unlabelled, "image has no entry in dataset.json")
            }
            labels = paths.map { byPath[$0]! }
            let maxLabel = labels.max()!
            if let names = json.classNames {
                guard maxLabel < names.count else {
                    let bad = paths[labels.firstIndex(of: maxLabel)!]
                    throw DataError(file: name, entry: bad,
                                    "label \(maxLabel) out of range 0..<\(names.count) (class_names has \(names.count) names)")
                }
                classCount = names.count
            } else {
                classCount = maxLabel + 1
            }
        } else {
            labels = [Int](repeating: ImageDatasetLabel.none, count: paths.count)
            classCount = 0
        }
        classNames = json?.classNames

        // Size and channels from the first image.
        let first = try PNG.decode(try EDMDataset.bytes(of: paths[0], in: source, name: name), name: name, entry: paths[0])
        guard first.width == first.height else {
            throw DataError(file: name, entry: paths[0], "image is \(first.width)×\(first.height); datasets hold square images")
        }
        resolution = first.width
        self.channels = channels ?? (first.channels >= 3 ? 3 : 1)
        self.name = name
        self.paths = paths
        self.source = source
        count = paths.count
    }

    public func label(_ index: Int) -> Int {
        checkIndex(index)
        return labels[index]
    }

    public func item(_ index: Int) throws -> (image: Image8, label: Int) {
        checkIndex(index)
        let path = paths[index]
        let image = try PNG.decode(try EDMDataset.bytes(of: path, in: source, name: name), channels: channels, name: name, entry: path)
        try checkSize(image, entry: path)
        return (image, labels[index])
    }

    // MARK: Helpers

    /// The bytes of one file of the dataset.
    private static func bytes(of path: String, in source: Source, name: String) throws -> Data {
        switch source {
        case .folder(let root):
            do { return try Data(contentsOf: root.appendingPathComponent(path)) } catch {
                throw DataError(file: name, entry: path, "cannot read file (\(error.localizedDescription))")
            }
        case .zip(let layout, let entries):
            guard let entry = entries[path] else { throw DataError(file: name, entry: path, "no such member") }
            return try ZipMembers.data(entry, layout: layout, archiveName: name)
        }
    }

    /// Files under `root`, as "/"-separated paths relative to it.
    static func relativeFiles(in root: URL) -> [String] {
        let rootPath = root.standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
        var files: [String] = []
        for case let file as URL in walker {
            guard (try? file.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
            let path = file.standardizedFileURL.path
            guard path.hasPrefix(rootPath) else { continue }
            files.append(String(path.dropFirst(rootPath.count).drop { $0 == "/" }))
        }
        return files
    }

    /// dataset.json: the (path, label) pairs, or nil labels when `"labels"` is null or absent.
    static func parseJSON(_ data: Data, name: String) throws -> (labels: [(path: String, label: Int)]?, classNames: [String]?) {
        func fail(_ why: String) -> DataError { DataError(file: name, entry: "dataset.json", why) }
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch { throw fail("not valid JSON (\(error.localizedDescription))") }
        guard let object = root as? [String: Any] else { throw fail("top level is not an object") }
        let classNames: [String]?
        if let names = object["class_names"], !(names is NSNull) {
            guard let list = names as? [String] else { throw fail("\"class_names\" is not a list of strings") }
            classNames = list
        } else {
            classNames = nil
        }
        guard let raw = object["labels"], !(raw is NSNull) else { return (nil, classNames) }
        guard let list = raw as? [Any] else { throw fail("\"labels\" is neither null nor a list") }
        var pairs: [(path: String, label: Int)] = []
        var nullCount = 0
        for (i, element) in list.enumerated() {
            guard let pair = element as? [Any], pair.count == 2, let path = pair[0] as? String else {
                throw fail("labels[\(i)] is not a [path, label] pair")
            }
            if pair[1] is NSNull { nullCount += 1; continue }
            guard let number = pair[1] as? NSNumber, let label = Int(exactly: number.doubleValue), label >= 0 else {
                throw DataError(file: name, entry: path, "label \(pair[1]) in dataset.json is not a class index ≥ 0")
            }
            pairs.append((path, label))
        }
        if nullCount == list.count { return (nil, classNames) }
        guard nullCount == 0 else { throw fail("\(nullCount) of \(list.count) labels are null (all or none may be)") }
        return (pairs, classNames)
    }
}
