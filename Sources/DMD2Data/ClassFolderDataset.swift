// A folder with one sub-folder of PNG images per class (torchvision's ImageFolder layout):
//
//   root/airplane/0001.png  root/airplane/0002.png  root/cat/0001.png …
//
// Class index = position of the sub-folder in sorted name order (hidden folders skipped);
// items are the PNGs of class 0 in sorted path order (sub-folders inside a class are searched
// too), then class 1, and so on. Only PNG is read (libpng); a class folder holding other image
// formats, or no PNG at all, is an error naming it. Resolution and channels come from the first
// image; every item is checked against them.
import Foundation

public final class ClassFolderDataset: ImageDataset {
    public let name: String
    public let count: Int
    public let classCount: Int
    public let resolution: Int
    public let channels: Int
    /// The sub-folder names, in class-index order.
    public let classNames: [String]?
    public let root: URL
    /// The PNG paths relative to `root`, in item order.
    public let paths: [String]
    private let labels: [Int]

    /// - Parameter channels: 1 or 3 to convert every image on reading; nil takes the first image's.
    public init(url: URL, channels: Int? = nil) throws {
        if let channels { precondition(channels == 1 || channels == 3, "ClassFolderDataset: channels \(channels); expected 1 or 3") }
        let fm = FileManager.default
        let name = url.path
        let children: [String]
        do { children = try fm.contentsOfDirectory(atPath: name) } catch {
            throw DataError(file: url, "cannot list folder (\(error.localizedDescription))")
        }
        let classes = children.filter { child in
            var isDirectory: ObjCBool = false
            return !child.hasPrefix(".") && fm.fileExists(atPath: url.appendingPathComponent(child).path, isDirectory: &isDirectory)
                && isDirectory.boolValue
        }.sorted()
        guard !classes.isEmpty else { throw DataError(file: url, "no class sub-folders found") }

        var paths: [String] = [], labels: [Int] = []
        let otherImages: Set<String> = ["jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "ppm"]
        for (index, className) in classes.enumerated() {
            let files = EDMDataset.relativeFiles(in: url.appendingPathComponent(className)).sorted()
            if let other = files.first(where: { otherImages.contains(($0 as NSString).pathExtension.lowercased()) }) {
                throw DataError(file: name, entry: "\(className)/\(other)", "only PNG images are supported")
            }
            let pngs = files.filter { $0.lowercased().hasSuffix(".png") }
            guard !pngs.isEmpty else { throw DataError(file: name, entry: className, "class folder holds no PNG images") }
            paths += pngs.map { "\(className)/\($0)" }
            labels += [Int](repeating: index, count: pngs.count)
        }

        let first = try PNG.read(url.appendingPathComponent(paths[0]))
        guard first.width == first.height else {
            throw DataError(file: name, entry: paths[0], "image is \(first.width)×\(first.height); datasets hold square images")
        }
        self.name = name
        self.root = url
        self.paths = paths
        self.labels = labels
        count = paths.count
        classCount = classes.count
        classNames = classes
        resolution = first.width
        self.channels = channels ?? (first.channels >= 3 ? 3 : 1)
    }

    public func label(_ index: Int) -> Int {
        checkIndex(index)
        return labels[index]
    }

    public func item(_ index: Int) throws -> (image: Image8, label: Int) {
        checkIndex(index)
        let path = paths[index]
        let data: Data
        do { data = try Data(contentsOf: root.appendingPathComponent(path)) } catch {
            throw DataError(file: name, entry: path, "cannot read file (\(error.localizedDescription))")
        }
        let image = try PNG.decode(data, channels: channels, name: name, entry: path)
        try checkSize(image, entry: path)
        return (image, labels[index])
    }
}
