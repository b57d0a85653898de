// Reading a `torch.save` zip without torch or Python: DMD2's `.bin` checkpoints (the generator's
// state dict) and any state dict saved by PyTorch ≥ 1.6.
//
// The file is a zip:   <name>/data.pkl      the object, as a pickle (Pickle.swift)
//                      <name>/data/<key>    one raw little-endian storage per tensor
//                      <name>/version, byteorder, .data/serialization_id, …
// Tensors in data.pkl are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`
// of persistent storages ('storage', torch.FloatStorage, key, location, numel). The pickle runs
// on the restricted reader (nothing is executed, unknown globals are refused), every member's
// CRC-32 is checked, and every view is checked against its storage before a value is read.
import Foundation

/// A state dict read from a torch.save zip: tensor names → views of storages, read on demand.
public final class TorchStateDict {
    public let url: URL
    /// The tensors, by name, in the file's order.
    public let tensors: [(name: String, tensor: PickleTensor)]
    /// The key path of the nested dict the tensors came from ("" for the top level).
    public let nestedUnder: [String]

    private let layout: ZipLayout
    private let prefix: String
    /// The bytes of data.pkl (for the fuzzers).
    let rawPickle: Data

    /// Usual wrapper keys a checkpoint nests its state dict under.
    public static let wrapperKeys = ["state_dict", "model", "generator", "feedforward_model", "module"]

    public init(url: URL) throws {
        self.url = url
        guard FileManager.default.fileExists(atPath: url.path) else { throw DataError(file: url, "no such file") }
        do { layout = try ZipLayout(url: url) } catch let error as DataError {
            throw error.entry != nil ? error : DataError(file: url, "not a readable zip: torch.save files (PyTorch ≥ 1.6) are zips; an older or truncated file? (\(error.reason))")
        }
        let (entry, prefix, data, pickled) = try layout.torchPickle(kind: "torch.save")
        self.prefix = prefix
        var root = pickled
        // Unwrap {'state_dict': {...}} and the like until the values are tensors.
        var path: [String] = []
        while true {
            guard path.count < 8 else { throw DataError(file: url, entry: entry.path, "state dict nested deeper than 8 wrapper dicts") }
            guard case .dict(let dict) = root else {
                throw DataError(file: url, entry: entry.path, "the pickle holds \(root.kind), not a state dict")
            }
            if dict.items.contains(where: { if case .tensor = $0.value { return true } else { return false } }) { break }
            let inner = Self.wrapperKeys.filter { key in
                dict.items.contains { if case .string(key) = $0.key, case .dict = $0.value { return true } else { return false } }
            }
            guard inner.count == 1, let next = dict.items.first(where: { if case .string(inner[0]) = $0.key { return true } else { return false } }) else {
                let keys = dict.items.prefix(20).map { "\($0.key)" }.joined(separator: ", ")
                throw DataError(file: url, entry: entry.path, "no state dict found (no tensors; top-level keys: \(keys))")
            }
            path.append(inner[0])
            root = next.value
        }
        guard case .dict(let dict) = root else { throw DataError(file: url, entry: entry.path, "the pickle holds \(root.kind), not a state dict") }
        self.rawPickle = data
        var tensors: [(String, PickleTensor)] = []
        for item in dict.items {
            guard case .string(let name) = item.key else { continue }
            if case .tensor(let t) = item.value { tensors.append((name, t)) }
        }
        self.tensors = tensors
        nestedUnder = path
    }

    /// The element values of `tensor`, widened to Float (float16/bfloat16 exactly, float64
    /// rounded), in row-major order of its shape, whatever its strides.
    public func floats(_ name: String, _ t: PickleTensor) throws -> [Float] {
        let path = prefix + "data/" + t.storageKey
        guard let entry = layout.entry(path) else { throw DataError(file: url, entry: path, "tensor '\(name)': missing storage member") }
        let itemSize: Int, count: Int
        do {
            itemSize = try t.floatItemSize(name)
            try t.checkStorage(name, itemSize: itemSize, byteCount: entry.uncompressedSize)
            count = try t.checkView(name)
        } catch let error as PickleError { throw DataError(file: url, entry: path, error.description) }
        let bytes = [UInt8](try ZipMembers.data(entry, layout: layout, archiveName: url.path))
        return t.gatherFloats(bytes[...], itemSize: itemSize, count: count)
    }
}
