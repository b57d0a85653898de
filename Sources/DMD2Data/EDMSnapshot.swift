// Reading EDM's network snapshots (`network-snapshot-*.pkl`, the published
// `edm-imagenet-64x64-cond-adm.pkl`) without Python or torch, and without running anything in them.
//
// A snapshot is a plain pickle of a dict {'ema': network, 'loss_fn': …, 'augment_pipe': …,
// 'dataset_kwargs': {…}}. EDM's network classes are "persistent": each object is pickled as
// `torch_utils.persistence._reconstruct_persistent_obj(meta)` with meta = {type: 'class',
// version, module_src (the source text of the defining module), class_name, state}, `state`
// being the object's `__dict__`. For a torch module that dict holds `_parameters`, `_buffers`,
// `_non_persistent_buffers_set`, `_modules` (sub-modules: persistent again, or plain torch
// classes such as ModuleDict made by NEWOBJ + BUILD), hooks, and the class's own attributes and
// recorded init kwargs (`_init_kwargs`). Tensors are `_rebuild_tensor_v2(storage, offset, size,
// stride, …)` and every storage is `torch.storage._load_from_bytes(b)`, `b` a legacy (non-zip)
// torch.save stream. The pickle runs on the restricted reader (Pickle.swift, dialect
// `plainSnapshot`): module_src is never looked at, any global outside the allow-list is refused,
// and storages are checked and read in place (no copy).
//
// The state dict is rebuilt as torch's `state_dict()` would: per module its parameters, then
// its persistent buffers (None ones and those in `_non_persistent_buffers_set` left out), then
// each sub-module under `name.`; so EDMPrecond's names are `model.map_layer0.weight`, …
import Foundation

/// An EDM network snapshot: the state dict of one entry, its modules' classes and attributes.
public final class EDMSnapshot {
    public let url: URL
    /// The snapshot dict's keys ([] when the pickle holds a network directly).
    public let entries: [String]
    /// The entry read ("ema"; "" when the pickle holds a network directly).
    public let entry: String
    /// The class of every module by dotted path ("" is the network itself, "model" EDMPrecond's UNet).
    public let moduleClasses: [String: String]
    /// Every module's plain attributes (everything in its `__dict__` but parameters, buffers,
    /// sub-modules and hooks; `_init_kwargs` included), by module path.
    public let attributes: [String: [String: PickleValue]]
    /// The state dict, names and order as torch's `state_dict()`.
    public let tensors: [(name: String, tensor: PickleTensor)]

    private let bytes: [UInt8]
    private let storages: [String: Range<Int>]

    /// Modules nested deeper than this are refused (EDM's are 4 deep).
    public static let maximumDepth = 64

    /// Reads the snapshot at `url` and the network under `entry` (EDM's snapshots: "ema").
    public init(url: URL, entry: String = "ema") throws {
        self.url = url
        guard FileManager.default.fileExists(atPath: url.path) else { throw DataError(file: url, "no such file") }
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw DataError(file: url, "cannot read file (\(error.localizedDescription))")
        }
        bytes = [UInt8](data)
        guard bytes.count >= 2, bytes[0] == 0x80 else {
            let zip = bytes.starts(with: [0x50, 0x4B])
            throw DataError(file: url, zip ? "a zip, not a plain pickle: a torch.save file (.bin), not an EDM network snapshot"
                                           : "not a pickle (protocol 2 or later): not an EDM network snapshot")
        }
        var reader = PickleReader(bytes: bytes, dialect: .plainSnapshot)
        let root: PickleValue
        do { root = try reader.run() } catch let error as PickleError { throw DataError(file: url, error.description) }
        storages = reader.inlineStorages

        let network: PickleValue
        switch root {
        case .dict(let dict):
            let keys = dict.items.compactMap { if case .string(let k) = $0.key { return k } else { return nil } }
            entries = keys
            guard let item = dict.items.first(where: { if case .string(entry) = $0.key { return true } else { return false } }) else {
                throw DataError(file: url, "the snapshot has no '\(entry)' entry; entries: \(keys.prefix(20).joined(separator: ", "))")
            }
            network = item.value
            self.entry = entry
        case .object:
            entries = []
            network = root
            self.entry = ""
        default:
            throw DataError(file: url, "the pickle holds \(root.kind), not an EDM snapshot dict ({'ema': network, …})")
        }

        var classes: [String: String] = [:], attributes: [String: [String: PickleValue]] = [:]
        var tensors: [(String, PickleTensor)] = []
        var seen: [ObjectIdentifier: String] = [:]
        let entryName = self.entry
        let place = entryName.isEmpty ? "the network" : "'\(entryName)'"
        func fail(_ path: String, _ why: String) -> DataError {
            DataError(file: url, entry: path.isEmpty ? entryName : entryName.isEmpty ? path : "\(entryName).\(path)", why)
        }
        // Depth-first, as state_dict(): own parameters, own persistent buffers, then sub-modules.
        func walk(_ value: PickleValue, path: String, depth: Int) throws {
            guard depth < Self.maximumDepth else { throw fail(path, "modules nested deeper than \(Self.maximumDepth) (a cycle?)") }
            guard case .object(let object) = value else { throw fail(path, "\(value.kind), not a module") }
            if let other = seen[ObjectIdentifier(object)] {
                throw fail(path, "the same module object as '\(other)': shared or cyclic modules are not read")
            }
            seen[ObjectIdentifier(object)] = path
            guard case .dict(let state) = object.state else { throw fail(path, "a \(object.className) without a state dict, not a torch module") }
            var parameters: PickleDict?, buffers: PickleDict?, modules: PickleDict?
            var nonPersistent = Set<String>(), own: [String: PickleValue] = [:]
            for item in state.items {
                guard case .string(let key) = item.key else { continue }
                switch (key, item.value) {
                case ("_parameters", .dict(let d)): parameters = d
                case ("_buffers", .dict(let d)): buffers = d
                case ("_modules", .dict(let d)): modules = d
                case ("_non_persistent_buffers_set", .list(let l)):
                    for case .string(let name) in l.items { nonPersistent.insert(name) }
                case (_, .dict) where key.hasSuffix("_hooks") || key.hasSuffix("_hooks_with_kwargs") || key.hasSuffix("_always_called"):
                    break
                default: own[key] = item.value
                }
            }
            guard let parameters, let buffers, let modules else {
                throw fail(path, "a \(object.className) without _parameters, _buffers and _modules: not a torch module")
            }
            classes[path] = object.className
            attributes[path] = own
            let prefix = path.isEmpty ? "" : path + "."
            for (kind, dict) in [("parameter", parameters), ("buffer", buffers)] {
                for item in dict.items {
                    guard case .string(let name) = item.key else { throw fail(path, "a \(kind) named by \(item.key.kind)") }
                    if kind == "buffer" && nonPersistent.contains(name) { continue }
                    switch item.value {
                    case .tensor(let t): tensors.append((prefix + name, t))
                    case .none: continue
                    default: throw fail(path, "\(kind) '\(name)' is \(item.value.kind), not a tensor")
                    }
                }
            }
            for item in modules.items {
                guard case .string(let name) = item.key else { throw fail(path, "a sub-module named by \(item.key.kind)") }
                if case .none = item.value { continue }
                try walk(item.value, path: prefix + name, depth: depth + 1)
            }
        }
        guard case .object = network else { throw DataError(file: url, "\(place) is \(network.kind), not a network") }
        try walk(network, path: "", depth: 0)
        moduleClasses = classes
        self.attributes = attributes
        self.tensors = tensors
    }

    /// The element values of `tensor`, widened to Float (float16/bfloat16 exactly, float64
    /// rounded), in row-major order of its shape, whatever its strides.
    public func floats(_ name: String, _ t: PickleTensor) throws -> [Float] {
        guard let range = storages[t.storageKey] else { throw DataError(file: url, entry: name, "tensor '\(name)': missing storage") }
        do {
            let itemSize = try t.floatItemSize(name)
            try t.checkStorage(name, itemSize: itemSize, byteCount: UInt64(range.count))
            let count = try t.checkView(name)
            return t.gatherFloats(bytes[range], itemSize: itemSize, count: count)
        } catch let error as PickleError { throw DataError(file: url, entry: name, error.description) }
    }

    /// The attribute `name` of the module at `path`, else the entry `name` of its recorded init
    /// kwargs (`_init_kwargs`), else nil.
    public func setting(_ name: String, of path: String) -> PickleValue? {
        guard let own = attributes[path] else { return nil }
        if let value = own[name] { return value }
        if case .dict(let kwargs)? = own["_init_kwargs"] {
            return kwargs.items.first { if case .string(name) = $0.key { return true } else { return false } }?.value
        }
        return nil
    }

    /// The entry `name` of the recorded init kwargs of the module at `path`.
    public func initKwarg(_ name: String, of path: String) -> PickleValue? {
        guard case .dict(let kwargs)? = attributes[path]?["_init_kwargs"] else { return nil }
        return kwargs.items.first { if case .string(name) = $0.key { return true } else { return false } }?.value
    }
}
