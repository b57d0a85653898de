// A small, restricted Python-pickle reader: just enough of the virtual machine to read the
// `data.pkl` of a TorchScript zip (what `torch.jit.save` writes: a module tree and its tensors),
// of a torch.save zip (a state dict: DMD2's `.bin` checkpoints, TorchStateDict.swift) and EDM's
// network snapshots, plain pickles of whole objects (EDMSnapshot.swift); each is a `Dialect`
// with its own allow-list.
//
// A pickle is a program for a stack machine (Python's Lib/pickletools.py documents every
// opcode). TorchScript writes protocol 2: objects are built by GLOBAL (a class or function by
// name), NEWOBJ (make an instance), BUILD (set its state dict), REDUCE (call a function with a
// tuple), BINPERSID (an "external" object: here a tensor storage, whose bytes live in the zip as
// `data/<key>`). We implement those, the containers, and the scalars, and throw on anything else,
// naming the opcode and its byte offset, so a file we cannot read says why.
//
// Nothing is executed: a GLOBAL is only a name, and only names on an allow-list are accepted
// (`torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`, `collections.OrderedDict`,
// `torch.jit._pickle.build_*list`, the `torch.*Storage` types and TorchScript's `__torch__.*`
// classes); any other global (`posix.system`, `builtins.eval`, …) is refused where it appears,
// before anything could use it. BUILD on a dict (an OrderedDict's `_metadata`) is ignored.
// Every read is bounds-checked, so a malformed pickle throws. Sets are read as lists.
import Foundation

/// A value produced by the pickle machine. Containers and objects are reference types because a
/// pickle may memoize a container and fill it later (SETITEMS/APPENDS/BUILD act on the same one).
public indirect enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A class or function named by GLOBAL ("module", "name").
    case global(module: String, name: String)
    /// An instance made by NEWOBJ; BUILD fills its state.
    case object(PickleObject)
    /// A tensor storage from BINPERSID: `<archive>/data/<key>`, `count` elements.
    case storage(key: String, dtype: String, count: Int)
    /// A tensor view of a storage (`torch._utils._rebuild_tensor_v2`).
    case tensor(PickleTensor)
    /// A bytes object: `count` bytes at `offset` of the buffer the reader ran on (not copied).
    case bytes(offset: Int, count: Int)

    /// Python-like text of the value; containers deeper than 16 levels print as "…" (a hostile
    /// pickle may nest them without end, or in a cycle).
    public var description: String { describe(depth: 0) }

    private func describe(depth: Int) -> String {
        func inner(_ v: PickleValue) -> String { depth >= 16 ? "…" : v.describe(depth: depth + 1) }
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return String(d)
        case .string(let s): return "'\(s)'"
        case .tuple(let items): return "(" + items.map(inner).joined(separator: ", ") + ")"
        case .list(let l): return "[" + l.items.map(inner).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.items.map { "\(inner($0.key)): \(inner($0.value))" }.joined(separator: ", ") + "}"
        case .global(let m, let n): return "\(m).\(n)"
        case .object(let o): return "<\(o.className)>"
        case .storage(let key, let dtype, let count): return "storage(\(key), \(dtype), \(count))"
        case .tensor(let t): return "tensor(\(t.storageKey), \(t.shape))"
        case .bytes(_, let count): return "bytes(\(count))"
        }
    }

    /// A short name of the value's kind, for messages (a description may be huge).
    public var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .tuple(let t): return "a tuple of \(t.count)"
        case .list(let l): return "a list of \(l.items.count)"
        case .dict(let d): return "a dict of \(d.items.count)"
        case .global(let m, let n): return "\(m).\(n)"
        case .object(let o): return "a \(o.className) object"
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        case .bytes(_, let count): return "\(count) bytes"
        }
    }

    /// The integer, or the list/tuple of integers, this value holds (for attributes such as
    /// `stride = 2` or `padding = [0, 3]`).
    public var integers: [Int]? {
        switch self {
        case .int(let i): return [i]
        case .tuple(let items): return items.allIntegers
        case .list(let l): return l.items.allIntegers
        default: return nil
        }
    }
}

extension Array where Element == PickleValue {
    fileprivate var allIntegers: [Int]? {
        var out: [Int] = []
        for v in self { guard case .int(let i) = v else { return nil }; out.append(i) }
        return out
    }
}

public final class PickleList {
    public var items: [PickleValue] = []
    deinit { PickleTeardown.release(&items) }
}

/// A dict in insertion order (Python dicts keep it; TorchScript's attribute order is the
/// module's declaration order).
public final class PickleDict {
    public var items: [(key: PickleValue, value: PickleValue)] = []
    deinit {
        guard !items.isEmpty else { return }
        var children = items.flatMap { [$0.key, $0.value] }
        items = []
        PickleTeardown.release(&children)
    }
}

/// Frees nested containers without recursion. A hostile pickle can nest lists or dicts 100,000
/// deep in a few hundred kilobytes, and Swift frees nested values recursively, which would
/// overflow the stack; so a dying container hands its children to this thread's queue, and only
/// the outermost one frees them, one at a time (tuples, immutable, are bounded in depth by the
/// reader instead).
enum PickleTeardown {
    final class Queue {
        var pending: [PickleValue] = []
        var draining = false
    }

    private static let key = "DMD2Data.PickleTeardown"

    static func release(_ children: inout [PickleValue]) {
        guard !children.isEmpty else { return }
        let dictionary = Thread.current.threadDictionary
        let queue: Queue
        if let q = dictionary[key] as? Queue { queue = q } else { queue = Queue(); dictionary[key] = queue }
        queue.pending.append(contentsOf: children)
        children = []
        guard !queue.draining else { return }
        queue.draining = true
        while let value = queue.pending.popLast() { _ = value }      // a container freed here appends its children
        queue.draining = false
    }
}

/// An instance of a `__torch__.*` class: its name and the state BUILD gave it (a dict of
/// attributes for TorchScript modules).
public final class PickleObject {
    public let className: String
    public var state: PickleValue = .none
    init(className: String) { self.className = className }
    deinit {
        if case .none = state { return }
        var children = [state]
        state = .none
        PickleTeardown.release(&children)
    }

    /// The attributes, when the state is a dict with string keys.
    public var attributes: [(name: String, value: PickleValue)] {
        guard case .dict(let d) = state else { return [] }
        return d.items.compactMap { item in
            if case .string(let name) = item.key { return (name, item.value) }
            return nil
        }
    }
}

/// A strided view of a storage: element (i₀, i₁, …) is storage[offset + Σ iₖ·strides[k]].
public struct PickleTensor {
    public var storageKey: String
    public var dtype: String
    public var storageCount: Int
    public var offset: Int
    public var shape: [Int]
    public var strides: [Int]
}

/// Why a pickle could not be read; `PickleReader` wraps it into a DataError naming the file.
public struct PickleError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a pickle program and returns the object it builds.
public struct PickleReader {
    /// Which kind of pickle is read: what it may name (GLOBAL), make (NEWOBJ) and call (REDUCE).
    public enum Dialect: Sendable {
        /// The `data.pkl` of a torch.save or TorchScript zip: tensor rebuilds, storages named by
        /// persistent ids (their bytes are zip members), OrderedDict, TorchScript's classes.
        case torchArchive
        /// A plain pickle of whole objects (EDM's network snapshots, EDMSnapshot.swift): tensor
        /// rebuilds; storages inlined as legacy torch.save streams (`torch.storage._load_from_bytes`,
        /// parsed here, never handed to anything); EDM's persistent objects
        /// (`torch_utils.persistence._reconstruct_persistent_obj`, read as their class name and
        /// state); plain `torch.nn.modules.*` classes (an empty object for NEWOBJ, never called);
        /// numpy scalars and dtypes (decoded as numbers); sets (read as lists); OrderedDict. No
        /// persistent ids.
        case plainSnapshot
        /// The object pickle of a legacy torch.save stream of one storage: its persistent id only.
        case legacyStorage
    }

    private let bytes: [UInt8]
    private let end: Int
    private let dialect: Dialect
    private var pos: Int
    private var stack: [PickleValue] = []
    private var marks: [Int] = []                 // stack heights at each MARK
    private var memo: [Int: PickleValue] = [:]
    private var depths: [Int] = []                // parallel to `stack`: how deep tuples nest in each value
    private var memoDepths: [Int: Int] = [:]
    /// Storages read from inlined legacy streams (`plainSnapshot`): storage key → the range of
    /// their raw little-endian bytes in the buffer.
    public private(set) var inlineStorages: [String: Range<Int>] = [:]

    /// Where reading stands: after `run`, the byte after the STOP opcode.
    public var position: Int { pos }

    public init(_ data: Data) { self.init(bytes: [UInt8](data)) }

    /// A reader of the pickle in `range` of `bytes` (all of it by default).
    public init(bytes: [UInt8], range: Range<Int>? = nil, dialect: Dialect = .torchArchive) {
        self.bytes = bytes
        let r = range ?? 0..<bytes.count
        let lower = min(max(0, r.lowerBound), bytes.count)
        pos = lower
        end = min(max(lower, r.upperBound), bytes.count)
        self.dialect = dialect
    }

    /// Whether GLOBAL may name `module.name`: the functions `call` interprets, the storage types
    /// `persistent` reads, OrderedDict, and TorchScript's own classes (made by NEWOBJ, never
    /// called); in a plain snapshot also what `Dialect.plainSnapshot` lists.
    static func isAllowed(module: String, name: String, dialect: Dialect = .torchArchive) -> Bool {
        switch dialect {
        case .torchArchive:
            switch (module, name) {
            case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                 ("collections", "OrderedDict"),
                 ("torch.jit._pickle", "build_intlist"), ("torch.jit._pickle", "build_doublelist"),
                 ("torch.jit._pickle", "build_boollist"), ("torch.jit._pickle", "build_tensorlist"):
                return true
            case ("torch", _): return storageDTypes[name] != nil
            default: return module.hasPrefix("__torch__.") || module == "__torch__"
            }
        case .plainSnapshot:
            switch (module, name) {
            case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                 ("torch._utils", "_rebuild_parameter_with_state"), ("collections", "OrderedDict"),
                 ("torch.storage", "_load_from_bytes"), ("torch_utils.persistence", "_reconstruct_persistent_obj"),
                 ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                 ("builtins", "set"), ("builtins", "frozenset"), ("dnnlib.util", "EasyDict"):
                return true
            default: return isTorchModuleClass(module)
            }
        case .legacyStorage:
            return module == "torch" && storageDTypes[name] != nil
        }
    }

    /// A class of `torch.nn` (ModuleDict, Conv2d, …): a plain snapshot may make an empty instance
    /// of it (NEWOBJ) and give it its state (BUILD), never call it.
    private static func isTorchModuleClass(_ module: String) -> Bool { module.hasPrefix("torch.nn.modules.") }

    static let storageDTypes = ["FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
                                "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32"]
    /// Bytes per element of each storage dtype.
    public static let storageItemSizes = ["float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4]

    /// Pickle opcodes we implement (names as in Lib/pickletools.py).
    private enum Op: UInt8 {
        case proto = 0x80, frame = 0x95, stop = 0x2E                     // PROTO FRAME .
        case mark = 0x28                                                 // (
        case global = 0x63, stackGlobal = 0x93                           // c
        case binput = 0x71, longBinput = 0x72, memoize = 0x94            // q r
        case binget = 0x68, longBinget = 0x6A                            // h j
        case emptyTuple = 0x29, tuple = 0x74, tuple1 = 0x85, tuple2 = 0x86, tuple3 = 0x87  // ) t
        case emptyList = 0x5D, append = 0x61, appends = 0x65             // ] a e
        case emptyDict = 0x7D, setitem = 0x73, setitems = 0x75           // } s u
        case emptySet = 0x8F, additems = 0x90, frozenset = 0x91
        case pop = 0x30, popMark = 0x31, dup = 0x32                      // 0 1 2
        case none = 0x4E, newTrue = 0x88, newFalse = 0x89                // N
        case binint = 0x4A, binint1 = 0x4B, binint2 = 0x4D, long1 = 0x8A  // J K M
        case binfloat = 0x47                                             // G
        case binunicode = 0x58, shortBinunicode = 0x8C, binunicode8 = 0x8D  // X
        case shortBinbytes = 0x43, binbytes = 0x42, binbytes8 = 0x8E     // C B
        case binpersid = 0x51                                            // Q
        case reduce = 0x52, newobj = 0x81, build = 0x62                  // R b
    }

    /// Opcodes only a plain pickle uses (protocols 3 and 4, sets, stack shuffles); torch.save and
    /// TorchScript write protocol 2 without them, so there they stay unsupported.
    private static let plainOnly: [Op: String] = [
        .stackGlobal: "STACK_GLOBAL", .emptySet: "EMPTY_SET", .additems: "ADDITEMS", .frozenset: "FROZENSET",
        .pop: "POP", .popMark: "POP_MARK", .dup: "DUP", .shortBinbytes: "SHORT_BINBYTES", .binbytes: "BINBYTES",
        .binbytes8: "BINBYTES8",
    ]

    /// Python's names of the opcodes we do not implement, for the error message.
    private static let otherOpcodeNames: [UInt8: String] = [
        0x49: "INT", 0x4C: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING",
        0x56: "UNICODE", 0x8B: "LONG4", 0x50: "PERSID", 0x67: "GET", 0x70: "PUT", 0x92: "NEWOBJ_EX",
        0x69: "INST", 0x6F: "OBJ", 0x6C: "LIST", 0x64: "DICT", 0x82: "EXT1", 0x83: "EXT2",
        0x84: "EXT4", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
    ]

    public mutating func run() throws -> PickleValue {
        while pos < end {
            let at = pos
            let code = bytes[pos]
            pos += 1
            guard let op = Op(rawValue: code), dialect == .plainSnapshot || !Self.plainOnly.keys.contains(op) else {
                let name = Op(rawValue: code).flatMap { Self.plainOnly[$0] } ?? Self.otherOpcodeNames[code] ?? "unknown"
                throw PickleError("unsupported pickle opcode 0x\(String(code, radix: 16)) (\(name)) at byte \(at)")
            }
            switch op {
            case .proto: _ = try read(1)
            case .frame: _ = try read(8)
            case .stop:
                guard let top = stack.last, stack.count == 1 else {
                    throw PickleError("STOP with \(stack.count) values on the stack (expected 1)")
                }
                return top
            case .mark: marks.append(stack.count)
            case .global:
                let module = try readLine(), name = try readLine()
                try push(try global(module, name, at: at))
            case .stackGlobal:
                let mn = try pop(2)
                guard case .string(let module) = mn[0], case .string(let name) = mn[1] else {
                    throw PickleError("STACK_GLOBAL of \(mn[0].kind) and \(mn[1].kind) at byte \(at): expected two strings")
                }
                try push(try global(module, name, at: at))
            case .binput: try remember(Int(try read(1)[0]))
            case .longBinput: try remember(try readUInt32())
            case .memoize: try remember(memo.count)
            case .binget: try recall(Int(try read(1)[0]))
            case .longBinget: try recall(try readUInt32())
            case .emptyTuple: try push(.tuple([]), depth: 1)
            case .tuple:
                let (items, depth) = try popToMarkWithDepth()
                try push(.tuple(items), depth: depth + 1, at: at)
            case .tuple1, .tuple2, .tuple3:
                let (items, depth) = try popWithDepth(op == .tuple1 ? 1 : op == .tuple2 ? 2 : 3)
                try push(.tuple(items), depth: depth + 1, at: at)
            case .emptyList, .emptySet: try push(.list(PickleList()))
            case .frozenset:
                let list = PickleList()
                list.items = try popToMark()
                try push(.list(list))
            case .append:
                let v = try pop(1)[0]
                guard case .list(let l) = try top() else { throw PickleError("APPEND to a non-list at byte \(at)") }
                l.items.append(v)
            case .appends, .additems:
                let vs = try popToMark()
                guard case .list(let l) = try top() else {
                    throw PickleError("\(op == .appends ? "APPENDS" : "ADDITEMS") to a non-list at byte \(at)")
                }
                l.items.append(contentsOf: vs)
            case .emptyDict: try push(.dict(PickleDict()))
            case .setitem:
                let kv = try pop(2)
                guard case .dict(let d) = try top() else { throw PickleError("SETITEM on a non-dict at byte \(at)") }
                d.items.append((kv[0], kv[1]))
            case .setitems:
                let kvs = try popToMark()
                guard kvs.count % 2 == 0, case .dict(let d) = try top() else {
                    throw PickleError("SETITEMS needs a dict and key/value pairs at byte \(at)")
                }
                for i in stride(from: 0, to: kvs.count, by: 2) { d.items.append((kvs[i], kvs[i + 1])) }
            case .pop:
                if stack.count > (marks.last ?? 0) { stack.removeLast(); depths.removeLast() } else if marks.last == stack.count { marks.removeLast() } else {
                    throw PickleError("stack underflow at byte \(at)")
                }
            case .popMark: _ = try popToMark()
            case .dup: try push(try top(), depth: depths.last ?? 0)
            case .none: try push(.none)
            case .newTrue: try push(.bool(true))
            case .newFalse: try push(.bool(false))
            case .binint: try push(.int(Int(Int32(bitPattern: UInt32(try readUInt32())))))
            case .binint1: try push(.int(Int(try read(1)[0])))
            case .binint2: let b = try read(2); try push(.int(Int(b[0]) | Int(b[1]) << 8))
            case .long1:
                let n = Int(try read(1)[0])
                guard n <= 8 else { throw PickleError("LONG1 of \(n) bytes at byte \(at) does not fit 64 bits") }
                let b = try read(n)
                var v: UInt64 = 0
                for (i, byte) in b.enumerated() { v |= UInt64(byte) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }   // sign-extend
                try push(.int(Int(Int64(bitPattern: v))))
            case .binfloat:
                var v: UInt64 = 0
                for byte in try read(8) { v = v << 8 | UInt64(byte) }                 // big-endian
                try push(.float(Double(bitPattern: v)))
            case .binunicode: try push(.string(try readString(count: try readUInt32())))
            case .shortBinunicode: try push(.string(try readString(count: Int(try read(1)[0]))))
            case .binunicode8:
                var n: UInt64 = 0
                for (i, byte) in try read(8).enumerated() { n |= UInt64(byte) << (8 * UInt64(i)) }
                guard n <= UInt64(end) else { throw PickleError("BINUNICODE8 of \(n) bytes at byte \(at) runs past the end") }
                try push(.string(try readString(count: Int(n))))
            case .shortBinbytes, .binbytes, .binbytes8:
                let width = op == .shortBinbytes ? 1 : op == .binbytes ? 4 : 8
                var n: UInt64 = 0
                for (i, byte) in try read(width).enumerated() { n |= UInt64(byte) << (8 * UInt64(i)) }
                guard n <= UInt64(end - pos) else { throw PickleError("truncated pickle: \(n) bytes wanted at byte \(pos)") }
                try push(.bytes(offset: pos, count: Int(n)))
                pos += Int(n)
            case .binpersid: try push(try persistent(try pop(1)[0], at: at))
            case .reduce:
                let (fa, depth) = try popWithDepth(2)
                try push(try call(fa[0], fa[1], at: at), depth: depth, at: at)     // a result may be part of the arguments
            case .newobj:
                let ca = try pop(2)
                guard case .global(let module, let name) = ca[0] else {
                    throw PickleError("NEWOBJ of \(ca[0].kind) at byte \(at): expected a class")
                }
                if dialect == .plainSnapshot {
                    if (module, name) == ("dnnlib.util", "EasyDict") { try push(.dict(PickleDict())); continue }
                    guard Self.isTorchModuleClass(module) else {
                        throw PickleError("NEWOBJ of \(module).\(name) at byte \(at): only torch.nn classes are made this way")
                    }
                }
                try push(.object(PickleObject(className: "\(module).\(name)")))
            case .build:
                let state = try pop(1)[0]
                switch try top() {
                case .object(let o): o.state = state
                case .dict: break                     // an OrderedDict's attributes (state_dict()'s `_metadata`)
                default:
                    throw PickleError("BUILD on \(try top().kind) at byte \(at): only objects made by NEWOBJ take a state")
                }
            }
        }
        throw PickleError("no STOP opcode: the pickle is truncated")
    }

    /// GLOBAL / STACK_GLOBAL: a name on the dialect's allow-list, else refused where it appears.
    private func global(_ module: String, _ name: String, at: Int) throws -> PickleValue {
        guard Self.isAllowed(module: module, name: name, dialect: dialect) else {
            let accepted = dialect == .plainSnapshot
                ? "tensor rebuilds, storages, OrderedDict, EDM's persistent objects, torch.nn classes and numpy scalars"
                : "tensor rebuilds, storages and OrderedDict"
            throw PickleError("refusing global \(module).\(name) at byte \(at): this reader executes nothing and accepts only \(accepted)")
        }
        return .global(module: module, name: name)
    }

    // MARK: The functions and persistent ids the dialects use

    /// BINPERSID: ('storage', torch.<Type>Storage, key, location, element count), and in a
    /// legacy stream a sixth entry, the view metadata, which must be None.
    private func persistent(_ pid: PickleValue, at: Int) throws -> PickleValue {
        guard dialect != .plainSnapshot else {
            throw PickleError("persistent id at byte \(at): a plain pickle has none (its storages are inlined)")
        }
        guard case .tuple(let t) = pid, t.count == 5 || (dialect == .legacyStorage && t.count == 6), case .string("storage") = t[0],
              case .global(_, let type) = t[1], case .string(let key) = t[2], case .int(let count) = t[4]
        else { throw PickleError("persistent id (\(pid.kind)) at byte \(at) is not a tensor storage") }
        if t.count == 6, case .none = t[5] {} else if t.count == 6 {
            throw PickleError("persistent id at byte \(at) is a view of another storage, which this reader does not read")
        }
        guard count >= 0 else { throw PickleError("storage of \(count) elements at byte \(at)") }
        guard let dtype = Self.storageDTypes[type] else { throw PickleError("storage type \(type) at byte \(at) is not supported") }
        return .storage(key: key, dtype: dtype, count: count)
    }

    /// REDUCE: the callables the dialect allows, interpreted (never called).
    private mutating func call(_ function: PickleValue, _ args: PickleValue, at: Int) throws -> PickleValue {
        guard case .global(let module, let name) = function, case .tuple(let a) = args else {
            throw PickleError("REDUCE of \(function.kind) with \(args.kind) at byte \(at)")
        }
        switch (module, name) {
        case ("torch._utils", "_rebuild_tensor_v2"):
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard a.count >= 4, case .storage(let key, let dtype, let count) = a[0], case .int(let offset) = a[1],
                  let shape = a[2].integers, let strides = a[3].integers, shape.count == strides.count
            else { throw PickleError("_rebuild_tensor_v2 at byte \(at): unexpected arguments (\(args.kind))") }
            return .tensor(PickleTensor(storageKey: key, dtype: dtype, storageCount: count,
                                        offset: offset, shape: shape, strides: strides))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            // (data, requires_grad, backward_hooks[, state]): the tensor itself.
            guard a.count >= 1, case .tensor = a[0] else { throw PickleError("\(name) at byte \(at): expected a tensor") }
            return a[0]
        case ("collections", "OrderedDict"):
            return .dict(PickleDict())
        case ("torch.jit._pickle", "build_intlist"), ("torch.jit._pickle", "build_doublelist"),
             ("torch.jit._pickle", "build_boollist"), ("torch.jit._pickle", "build_tensorlist"):
            guard a.count == 1 else { throw PickleError("\(name) at byte \(at): expected one list, got \(args.kind)") }
            return a[0]
        case ("torch.storage", "_load_from_bytes"):
            guard a.count == 1, case .bytes(let offset, let count) = a[0] else {
                throw PickleError("_load_from_bytes at byte \(at): expected one bytes object, got \(args.kind)")
            }
            return try legacyStorage(offset: offset, count: count, at: at)
        case ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return try persistentObject(a, at: at)
        case ("numpy", "dtype"):
            // (code, align, copy); BUILD then gives its state (version, byte order, …).
            guard a.count >= 1, case .string(let code) = a[0] else { throw PickleError("numpy.dtype at byte \(at): expected a type code") }
            return .object(PickleObject(className: "numpy.dtype[\(code)]"))
        case ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"):
            return try numpyScalar(a, at: at)
        case ("builtins", "set"), ("builtins", "frozenset"):
            let list = PickleList()
            if let first = a.first {
                switch first {
                case .list(let l): list.items = l.items
                case .tuple(let t): list.items = t
                default: throw PickleError("\(name) at byte \(at): expected a list, got \(first.kind)")
                }
            }
            return .list(list)
        default:
            throw PickleError("REDUCE calls \(module).\(name) at byte \(at), which this reader does not interpret")
        }
    }

    /// EDM's persistent object: one meta dict {type: 'class', version, module_src, class_name,
    /// state}; read as an object of that class name whose state is `state` (the module's
    /// `__dict__`). The stored source code is never looked at.
    private func persistentObject(_ a: [PickleValue], at: Int) throws -> PickleValue {
        guard a.count == 1, case .dict(let meta) = a[0] else {
            throw PickleError("_reconstruct_persistent_obj at byte \(at): expected one meta dict")
        }
        func field(_ key: String) -> PickleValue? {
            meta.items.first { if case .string(key) = $0.key { return true } else { return false } }?.value
        }
        guard case .string("class")? = field("type") else {
            let type: String
            if case .string(let t)? = field("type") { type = "'\(t)'" } else { type = field("type")?.kind ?? "missing" }
            throw PickleError("persistent object at byte \(at): type \(type), expected 'class'")
        }
        guard case .string(let className)? = field("class_name") else {
            throw PickleError("persistent object at byte \(at): no class_name")
        }
        let object = PickleObject(className: className)
        switch field("state") {
        case .some(.dict(let state)): object.state = .dict(state)
        case .some(.none): break                                  // an object with an empty __dict__
        case let other: throw PickleError("persistent object \(className) at byte \(at): its state is \(other?.kind ?? "missing"), expected a dict")
        }
        return .object(object)
    }

    /// numpy.core.multiarray.scalar(dtype, bytes): the number (bool, int or float), read from its
    /// bytes in the dtype's byte order; other dtypes become an opaque object.
    private func numpyScalar(_ a: [PickleValue], at: Int) throws -> PickleValue {
        guard a.count == 2, case .object(let dtype) = a[0], dtype.className.hasPrefix("numpy.dtype["),
              case .bytes(let offset, let count) = a[1] else {
            throw PickleError("numpy scalar at byte \(at): expected a dtype and bytes")
        }
        let code = String(dtype.className.dropFirst("numpy.dtype[".count).dropLast())
        var bigEndian = false
        if case .tuple(let state) = dtype.state, state.count > 1, case .string(let order) = state[1] { bigEndian = order == ">" }
        guard let kind = code.first, let size = Int(code.dropFirst()), ["f", "i", "u", "b"].contains(kind), size == count,
              [1, 2, 4, 8].contains(size) else {
            return .object(PickleObject(className: "numpy scalar \(code)"))
        }
        var v: UInt64 = 0
        for k in 0..<size { v |= UInt64(bytes[offset + (bigEndian ? size - 1 - k : k)]) << (8 * UInt64(k)) }
        switch (kind, size) {
        case ("b", 1): return .bool(v != 0)
        case ("f", 8): return .float(Double(bitPattern: v))
        case ("f", 4): return .float(Double(Float(bitPattern: UInt32(v))))
        case ("f", 2): return .float(Double(Float(Float16(bitPattern: UInt16(v)))))
        case ("i", _):
            let shift = UInt64(64 - 8 * size)
            return .int(Int(Int64(bitPattern: v << shift) >> Int64(shift)))
        case ("u", _): return v <= UInt64(Int.max) ? .int(Int(v)) : .object(PickleObject(className: "numpy scalar \(code)"))
        default: return .object(PickleObject(className: "numpy scalar \(code)"))
        }
    }

    /// The first pickle of a legacy (non-zip) torch.save stream: protocol 2, the magic number
    /// 0x1950a86a20f9469cfc6c as a 10-byte LONG1, STOP.
    private static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]

    /// `torch.storage._load_from_bytes(b)`: `b` is a legacy torch.save stream of one storage —
    /// the magic number, the protocol version 1001, the system info (little-endian required), the
    /// storage as a persistent id ('storage', type, key, location, numel, None), the list of
    /// keys, then an int64 element count and the raw little-endian data. Every part is checked;
    /// the data is not copied but recorded as a range of the buffer (`inlineStorages`).
    private mutating func legacyStorage(offset: Int, count: Int, at: Int) throws -> PickleValue {
        let what = "storage bytes at byte \(offset) (torch.storage._load_from_bytes)"
        let streamEnd = offset + count
        let magic = Self.legacyMagic
        guard count >= magic.count, bytes[offset..<(offset + magic.count)].elementsEqual(magic) else {
            throw PickleError("\(what): not a legacy torch.save stream (no magic number)")
        }
        var p = offset + magic.count
        func next(_ part: String) throws -> PickleValue {
            var reader = PickleReader(bytes: bytes, range: p..<streamEnd, dialect: .legacyStorage)
            do {
                let value = try reader.run()
                p = reader.position
                return value
            } catch let error as PickleError { throw PickleError("\(what), \(part): \(error.description)") }
        }
        guard case .int(1001) = try next("protocol version") else { throw PickleError("\(what): protocol version is not 1001") }
        guard case .dict(let info) = try next("system info"), info.items.contains(where: {
            if case .string("little_endian") = $0.key, case .bool(true) = $0.value { return true } else { return false }
        }) else { throw PickleError("\(what): the stream was not written little-endian (or has no system info)") }
        guard case .storage(let key, let dtype, let numel) = try next("storage") else {
            throw PickleError("\(what): the stream does not hold one storage")
        }
        guard case .list(let keys) = try next("storage keys"), keys.items.count == 1, case .string(key) = keys.items[0] else {
            throw PickleError("\(what): its key list does not name its one storage '\(key)'")
        }
        guard streamEnd - p >= 8 else { throw PickleError("\(what): truncated before the element count") }
        var n: UInt64 = 0
        for k in 0..<8 { n |= UInt64(bytes[p + k]) << (8 * UInt64(k)) }
        p += 8
        let itemSize = Self.storageItemSizes[dtype] ?? 1
        guard n == UInt64(numel) else {
            throw PickleError("\(what): inconsistent storage sizes: the persistent id says \(numel) elements, the data's count \(n)")
        }
        guard numel <= (streamEnd - p) / itemSize, numel * itemSize == streamEnd - p else {
            throw PickleError("\(what): inconsistent storage sizes: \(numel) \(dtype) values need \(numel * itemSize) bytes, the stream holds \(streamEnd - p)")
        }
        let storageKey = "inline@\(p)"
        inlineStorages[storageKey] = p..<streamEnd
        return .storage(key: storageKey, dtype: dtype, count: numel)
    }

    // MARK: Stack and byte helpers

    private func top() throws -> PickleValue {
        guard let v = stack.last else { throw PickleError("stack underflow at byte \(pos - 1)") }
        return v
    }

    /// Tuples nested deeper than this are refused: Swift frees nested tuples recursively, and a
    /// hostile pickle nests them 200,000 deep in 200 KB. (Lists, dicts and objects are freed
    /// iteratively, PickleTeardown, and count 0 here.)
    public static let maximumTupleDepth = 1000

    private mutating func push(_ value: PickleValue, depth: Int = 0, at: Int? = nil) throws {
        guard depth <= Self.maximumTupleDepth else {
            throw PickleError("values nested deeper than \(Self.maximumTupleDepth) tuples at byte \(at ?? pos - 1)")
        }
        stack.append(value)
        depths.append(depth)
    }

    private mutating func remember(_ index: Int) throws {
        memo[index] = try top()
        memoDepths[index] = depths.last ?? 0
    }

    private mutating func recall(_ index: Int) throws {
        guard let v = memo[index] else { throw PickleError("memo entry \(index) read before it was written (byte \(pos))") }
        try push(v, depth: memoDepths[index] ?? 0)
    }

    private mutating func pop(_ n: Int) throws -> [PickleValue] { try popWithDepth(n).values }

    /// The top n values and the deepest tuple nesting among them.
    private mutating func popWithDepth(_ n: Int) throws -> (values: [PickleValue], depth: Int) {
        guard stack.count >= n + (marks.last ?? 0) else { throw PickleError("stack underflow at byte \(pos - 1)") }
        defer { stack.removeLast(n); depths.removeLast(n) }
        return (Array(stack.suffix(n)), depths.suffix(n).max() ?? 0)
    }

    private mutating func popToMark() throws -> [PickleValue] { try popToMarkWithDepth().values }

    private mutating func popToMarkWithDepth() throws -> (values: [PickleValue], depth: Int) {
        guard let m = marks.popLast() else { throw PickleError("no MARK for the opcode at byte \(pos - 1)") }
        defer { stack.removeSubrange(m...); depths.removeSubrange(m...) }
        return (Array(stack[m...]), depths[m...].max() ?? 0)
    }

    /// The next n bytes (indexed from 0).
    private mutating func read(_ n: Int) throws -> [UInt8] {
        guard n >= 0, n <= end - pos else { throw PickleError("truncated pickle: \(n) bytes wanted at byte \(pos)") }
        defer { pos += n }
        return Array(bytes[pos..<(pos + n)])
    }

    private mutating func readUInt32() throws -> Int {
        let b = try read(4)
        return b.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    }

    private mutating func readString(count: Int) throws -> String {
        let b = try read(count)
        guard let s = String(bytes: b, encoding: .utf8) else { throw PickleError("invalid UTF-8 string at byte \(pos - count)") }
        return s
    }

    private mutating func readLine() throws -> String {
        guard let lineEnd = bytes[pos..<end].firstIndex(of: 0x0A) else { throw PickleError("unterminated GLOBAL name at byte \(pos)") }
        let line = try readString(count: lineEnd - pos)
        pos += 1
        return line
    }
}

// MARK: Tensor values

extension PickleTensor {
    /// Bytes per element of a floating-point dtype (the ones widened to Float).
    func floatItemSize(_ name: String) throws -> Int {
        switch dtype {
        case "float32": return 4
        case "float16", "bfloat16": return 2
        case "float64": return 8
        default: throw PickleError("tensor '\(name)': dtype \(dtype) is not a floating-point type")
        }
    }

    /// Checks that a storage of `storageCount` values of `itemSize` bytes is `byteCount` bytes.
    func checkStorage(_ name: String, itemSize: Int, byteCount: UInt64) throws {
        let (needed, overflow) = UInt64(max(0, storageCount)).multipliedReportingOverflow(by: UInt64(itemSize))
        guard storageCount >= 0, !overflow, needed == byteCount else {
            throw PickleError("tensor '\(name)': a storage of \(storageCount) \(dtype) values does not fit the member's \(byteCount) bytes")
        }
    }

    /// Checks that the view lies inside its storage; returns its element count.
    func checkView(_ name: String) throws -> Int {
        guard shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }), offset >= 0 else {
            throw PickleError("tensor '\(name)': negative size, stride or offset")
        }
        var count = 1, last = offset
        for (n, s) in zip(shape, strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            let (reach, o2) = (n == 0 ? 0 : n - 1).multipliedReportingOverflow(by: s)
            let (l, o3) = last.addingReportingOverflow(reach)
            guard !o1, !o2, !o3 else { throw PickleError("tensor '\(name)': shape \(shape) overflows") }
            count = c
            last = l
        }
        guard count == 0 || last < storageCount else {
            throw PickleError("tensor '\(name)': view offset \(offset), shape \(shape), strides \(strides) reaches outside its storage of \(storageCount)")
        }
        return count
    }

    /// The view's `count` elements widened to Float (float16/bfloat16 exactly, float64 rounded),
    /// in row-major order of its shape, whatever its strides, from the storage's raw
    /// little-endian bytes (checked with `checkStorage` and `checkView` first).
    func gatherFloats(_ storage: ArraySlice<UInt8>, itemSize: Int, count: Int) -> [Float] {
        let base = storage.startIndex
        let isBF16 = dtype == "bfloat16"
        func value(_ i: Int) -> Float {
            let o = base + i * itemSize
            switch itemSize {
            case 4:
                return Float(bitPattern: UInt32(storage[o]) | UInt32(storage[o + 1]) << 8 | UInt32(storage[o + 2]) << 16 | UInt32(storage[o + 3]) << 24)
            case 8:
                var v: UInt64 = 0
                for k in 0..<8 { v |= UInt64(storage[o + k]) << (8 * UInt64(k)) }
                return Float(Double(bitPattern: v))
            default:
                let h = UInt16(storage[o]) | UInt16(storage[o + 1]) << 8
                return isBF16 ? Float(bitPattern: UInt32(h) << 16) : Float(Float16(bitPattern: h))
            }
        }
        var out = [Float](repeating: 0, count: count)
        // Row-major strides: consecutive elements.
        var expected = 1, rowMajor = true
        for (n, s) in zip(shape, strides).reversed() where n > 1 {
            if s != expected { rowMajor = false; break }
            expected *= n
        }
        if rowMajor {
            for i in 0..<count { out[i] = value(offset + i) }
            return out
        }
        var index = [Int](repeating: 0, count: shape.count)
        for i in 0..<count {
            var source = offset
            for (k, ik) in index.enumerated() { source += ik * strides[k] }
            out[i] = value(source)
            var k = index.count - 1
            while k >= 0 { index[k] += 1; if index[k] < shape[k] { break }; index[k] = 0; k -= 1 }
        }
        return out
    }
}
