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
        let itemSize: Int
        switch t.dtype {
        case "float32": itemSize = 4
        case "float16", "bfloat16": itemSize = 2
        case "float64": itemSize = 8
        default: throw DataError(file: url, entry: path, "tensor '\(name)': dtype \(t.dtype) is not a floating-point type")
        }
        let (needed, overflow) = UInt64(max(0, t.storageCount)).multipliedReportingOverflow(by: UInt64(itemSize))
        guard t.storageCount >= 0, !overflow, needed == entry.uncompressedSize else {
            throw DataError(file: url, entry: path,
                            "tensor '\(name)': a storage of \(t.storageCount) \(t.dtype) values does not fit the member's \(entry.uncompressedSize) bytes")
        }
        guard t.shape.allSatisfy({ $0 >= 0 }), t.strides.allSatisfy({ $0 >= 0 }), t.offset >= 0 else {
            throw DataError(file: url, entry: path, "tensor '\(name)': negative size, stride or offset")
        }
        var count = 1, last = t.offset
        for (n, s) in zip(t.shape, t.strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            let (reach, o2) = (n == 0 ? 0 : n - 1).multipliedReportingOverflow(by: s)
            let (l, o3) = last.addingReportingOverflow(reach)
            guard !o1, !o2, !o3 else { throw DataError(file: url, entry: path, "tensor '\(name)': shape \(t.shape) overflows") }
            count = c
            last = l
        }
        guard count == 0 || last < t.storageCount else {
            throw DataError(file: url, entry: path,
                            "tensor '\(name)': view offset \(t.offset), shape \(t.shape), strides \(t.strides) reaches outside its storage of \(t.storageCount)")
        }
        let bytes = [UInt8](try ZipMembers.data(entry, layout: layout, archiveName: url.path))
        func value(_ i: Int) -> Float {
            let o = i * itemSize
            switch itemSize {
            case 4:
                return Float(bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24)
            case 8:
                var v: UInt64 = 0
                for k in 0..<8 { v |= UInt64(bytes[o + k]) << (8 * UInt64(k)) }
                return Float(Double(bitPattern: v))
            default:
                let h = UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8
                return t.dtype == "bfloat16" ? Float(bitPattern: UInt32(h) << 16) : Float(Float16(bitPattern: h))
            }
        }
        var out = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: t.shape.count)
        for i in 0..<count {
            var source = t.offset
            for (k, ik) in index.enumerated() { source += ik * t.strides[k] }
            out[i] = value(source)
            var k = index.count - 1
            while k >= 0 { index[k] += 1; if index[k] < t.shape[k] { break }; index[k] = 0; k -= 1 }
        }
        return out
    }
}
