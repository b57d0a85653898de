// Reads the parameters of a TorchScript file (`torch.jit.save`) without torch.
//
// The file is a zip:  <archive>/data.pkl      the module tree as a pickle (Pickle.swift)
//                     <archive>/data/<key>     one raw little-endian storage per tensor
//                     <archive>/code/…         TorchScript source (not needed here)
//                     <archive>/constants.pkl, <archive>/version
// In data.pkl every module is an object whose state dict holds its attributes: parameters as
// tensor views of a storage (`_rebuild_tensor_v2(storage, offset, size, stride, …)`), plain
// attributes (ints, lists) and sub-modules. We flatten that tree into dotted names
// ("net.layers.mixed_4.tower.conv_1.weight" → a tensor, "….padding" → [0, 3]) and read a
// tensor's bytes from its storage member on demand.
import DMD2Core
import DMD2Data
import Foundation

/// The module tree of a TorchScript zip, flattened to dotted attribute names.
public final class TorchScriptArchive {
    public let url: URL
    /// Every tensor and every non-module attribute, by dotted path from the root module.
    public private(set) var attributes: [String: PickleValue] = [:]
    /// The class name of each module, by dotted path ("" is the root).
    public private(set) var moduleClasses: [String: String] = [:]

    private let layout: ZipLayout
    private let prefix: String                  // "out_jit_module/"

    /// Opens the zip and parses `data.pkl`; throws a DataError naming the file and entry.
    public init(url: URL) throws {
        self.url = url
        guard FileManager.default.fileExists(atPath: url.path) else { throw DataError(file: url, "no such file") }
        do { layout = try ZipLayout(url: url) } catch let error as DataError {
            throw error.entry != nil ? error : DataError(file: url, "not a readable zip (TorchScript files are zips): \(error.reason)")
        }
        let (entry, prefix, _, root) = try layout.torchPickle(kind: "TorchScript")
        self.prefix = prefix
        guard case .object = root else {
            throw DataError(file: url, entry: entry.path, "the pickle holds \(root.kind), not a module object")
        }
        flatten(root, path: "")
    }

    private func flatten(_ value: PickleValue, path: String, depth: Int = 0) {
        if case .object(let object) = value, depth < 64 {           // a module tree is shallow; a cycle is not followed
            moduleClasses[path] = object.className
            for (name, child) in object.attributes {
                flatten(child, path: path.isEmpty ? name : path + "." + name, depth: depth + 1)
            }
        } else {
            attributes[path] = value
        }
    }

    /// The names of all tensors, sorted.
    public var tensorNames: [String] {
        attributes.compactMap { if case .tensor = $0.value { return $0.key } else { return nil } }.sorted()
    }

    /// The integer (or integer list) attribute at `path`, e.g. a conv's `stride` or `padding`.
    public func integers(_ path: String) throws -> [Int] {
        guard let value = attributes[path] else { throw DataError(file: url, entry: path, "missing attribute") }
        guard let ints = value.integers else { throw DataError(file: url, entry: path, "expected an int or int list, found \(value.kind)") }
        return ints
    }

    /// The float32 tensor at `path`, copied out of its storage (any strides, any offset).
    public func tensor(_ path: String) throws -> Tensor<Float> {
        guard let value = attributes[path] else {
            throw DataError(file: url, entry: path, "missing tensor (the file has \(tensorNames.count) tensors)")
        }
        guard case .tensor(let t) = value else { throw DataError(file: url, entry: path, "expected a tensor, found \(value.kind)") }
        guard t.dtype == "float32" else { throw DataError(file: url, entry: path, "dtype \(t.dtype); only float32 is read") }
        let storage = try floatStorage(t.storageKey, count: t.storageCount)
        let count = t.shape.reduce(1, *)
        // The largest index the view touches must lie inside the storage.
        let last = t.offset + zip(t.shape, t.strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        guard count == 0 || (t.offset >= 0 && last < storage.count && t.strides.allSatisfy { $0 >= 0 }) else {
            throw DataError(file: url, entry: path,
                            "view offset \(t.offset), shape \(t.shape), strides \(t.strides) reaches outside its storage of \(storage.count)")
        }
        // Row-major strides: one slice. Otherwise gather element by element (last axis fastest).
        let rowMajor = t.shape.indices.map { k in t.shape[(k + 1)...].reduce(1, *) }
        if zip(t.shape, zip(t.strides, rowMajor)).allSatisfy({ $0 == 1 || $1.0 == $1.1 }) {
            return Tensor(shape: t.shape, scalars: Array(storage[t.offset..<(t.offset + count)]))
        }
        var values = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: t.shape.count)
        for i in 0..<count {
            var source = t.offset
            for (k, ik) in index.enumerated() { source += ik * t.strides[k] }
            values[i] = storage[source]
            var k = index.count - 1
            while k >= 0 { index[k] += 1; if index[k] < t.shape[k] { break }; index[k] = 0; k -= 1 }
        }
        return Tensor(shape: t.shape, scalars: values)
    }

    /// A storage's values, read from its member each time (no cache: every parameter has its own
    /// storage, and a cache would hold a second copy of the whole network while it loads).
    private func floatStorage(_ key: String, count: Int) throws -> [Float] {
        let path = prefix + "data/" + key
        guard let entry = layout.entry(path) else { throw DataError(file: url, entry: path, "missing tensor storage member") }
        let data = try ZipMembers.data(entry, layout: layout, archiveName: url.path)
        guard data.count == 4 * count else {
            throw DataError(file: url, entry: path, "holds \(data.count) bytes; \(count) float32 values need \(4 * count)")
        }
        // Little-endian float32: on a little-endian host the bytes are the values.
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { out in data.withUnsafeBytes { out.copyMemory(from: $0) } }
        #if _endian(big)
        for i in values.indices { values[i] = Float(bitPattern: values[i].bitPattern.byteSwapped) }
        #endif
        return values
    }
}
