// A small, restricted Python-pickle reader: just enough of the virtual machine to read the
// `data.pkl` of a TorchScript zip (what `torch.jit.save` writes: a module tree and its tensors)
// and of a torch.save zip (a state dict: DMD2's `.bin` checkpoints, TorchStateDict.swift).
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
// Every read is bounds-checked and nesting is limited, so a malformed pickle throws.
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

    public var description: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return String(d)
        case .string(let s): return "'\(s)'"
        case .tuple(let items): return "(" + items.map(\.description).joined(separator: ", ") + ")"
        case .list(let l): return "[" + l.items.map(\.description).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.items.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case .global(let m, let n): return "\(m).\(n)"
        case .object(let o): return "<\(o.className)>"
        case .storage(let key, let dtype, let count): return "storage(\(key), \(dtype), \(count))"
        case .tensor(let t): return "tensor(\(t.storageKey), \(t.shape))"
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

public final class PickleList { public var items: [PickleValue] = [] }

/// A dict in insertion order (Python dicts keep it; TorchScript's attribute order is the
/// module's declaration order).
public final class PickleDict { public var items: [(key: PickleValue, value: PickleValue)] = [] }

/// An instance of a `__torch__.*` class: its name and the state BUILD gave it (a dict of
/// attributes for TorchScript modules).
public final class PickleObject {
    public let className: String
    public var state: PickleValue = .none
    init(className: String) { self.className = className }

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
    private let bytes: [UInt8]
    private var pos = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []                 // stack heights at each MARK
    private var memo: [Int: PickleValue] = [:]

    public init(_ data: Data) { bytes = [UInt8](data) }

    /// Whether GLOBAL may name `module.name`: the functions `call` interprets, the storage types
    /// `persistent` reads, OrderedDict, and TorchScript's own classes (made by NEWOBJ, never called).
    static func isAllowed(module: String, name: String) -> Bool {
        switch (module, name) {
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
             ("collections", "OrderedDict"),
             ("torch.jit._pickle", "build_intlist"), ("torch.jit._pickle", "build_doublelist"),
             ("torch.jit._pickle", "build_boollist"), ("torch.jit._pickle", "build_tensorlist"):
            return true
        case ("torch", _): return storageDTypes[name] != nil
        default: return module.hasPrefix("__torch__.") || module == "__torch__"
        }
    }

    static let storageDTypes = ["FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
                                "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32"]

    /// Pickle opcodes we implement (names as in Lib/pickletools.py).
    private enum Op: UInt8 {
        case proto = 0x80, frame = 0x95, stop = 0x2E                     // PROTO FRAME .
        case mark = 0x28                                                 // (
        case global = 0x63                                               // c
        case binput = 0x71, longBinput = 0x72, memoize = 0x94            // q r
        case binget = 0x68, longBinget = 0x6A                            // h j
        case emptyTuple = 0x29, tuple = 0x74, tuple1 = 0x85, tuple2 = 0x86, tuple3 = 0x87  // ) t
        case emptyList = 0x5D, append = 0x61, appends = 0x65             // ] a e
        case emptyDict = 0x7D, setitem = 0x73, setitems = 0x75           // } s u
        case none = 0x4E, newTrue = 0x88, newFalse = 0x89                // N
        case binint = 0x4A, binint1 = 0x4B, binint2 = 0x4D, long1 = 0x8A  // J K M
        case binfloat = 0x47                                             // G
        case binunicode = 0x58, shortBinunicode = 0x8C, binunicode8 = 0x8D  // X
        case binpersid = 0x51                                            // Q
        case reduce = 0x52, newobj = 0x81, build = 0x62                  // R b
    }

    /// Python's names of the opcodes we do not implement, for the error message.
    private static let otherOpcodeNames: [UInt8: String] = [
        0x49: "INT", 0x4C: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING",
        0x56: "UNICODE", 0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8E: "BINBYTES8", 0x8B: "LONG4",
        0x50: "PERSID", 0x67: "GET", 0x70: "PUT", 0x93: "STACK_GLOBAL", 0x92: "NEWOBJ_EX",
        0x69: "INST", 0x6F: "OBJ", 0x6C: "LIST", 0x64: "DICT", 0x90: "EMPTY_SET", 0x91: "ADDITEMS",
        0x8F: "FROZENSET", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x82: "EXT1", 0x83: "EXT2",
        0x84: "EXT4", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
    ]

    public mutating func run() throws -> PickleValue {
        while pos < bytes.count {
            let at = pos
            let code = bytes[pos]
            pos += 1
            guard let op = Op(rawValue: code) else {
                let name = Self.otherOpcodeNames[code] ?? "unknown"
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
                guard Self.isAllowed(module: module, name: name) else {
                    throw PickleError("refusing global \(module).\(name) at byte \(at): this reader executes nothing and accepts only tensor rebuilds, storages and OrderedDict")
                }
                stack.append(.global(module: module, name: name))
            case .binput: memo[Int(try read(1)[0])] = try top()
            case .longBinput: memo[try readUInt32()] = try top()
            case .memoize: memo[memo.count] = try top()
            case .binget: stack.append(try recall(Int(try read(1)[0])))
            case .longBinget: stack.append(try recall(try readUInt32()))
            case .emptyTuple: stack.append(.tuple([]))
            case .tuple: stack.append(.tuple(try popToMark()))
            case .tuple1: stack.append(.tuple(try pop(1)))
            case .tuple2: stack.append(.tuple(try pop(2)))
            case .tuple3: stack.append(.tuple(try pop(3)))
            case .emptyList: stack.append(.list(PickleList()))
            case .append:
                let v = try pop(1)[0]
                guard case .list(let l) = try top() else { throw PickleError("APPEND to a non-list at byte \(at)") }
                l.items.append(v)
            case .appends:
                let vs = try popToMark()
                guard case .list(let l) = try top() else { throw PickleError("APPENDS to a non-list at byte \(at)") }
                l.items.append(contentsOf: vs)
            case .emptyDict: stack.append(.dict(PickleDict()))
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
            case .none: stack.append(.none)
            case .newTrue: stack.append(.bool(true))
            case .newFalse: stack.append(.bool(false))
            case .binint: stack.append(.int(Int(Int32(bitPattern: UInt32(try readUInt32())))))
            case .binint1: stack.append(.int(Int(try read(1)[0])))
            case .binint2: let b = try read(2); stack.append(.int(Int(b[0]) | Int(b[1]) << 8))
            case .long1:
                let n = Int(try read(1)[0])
                guard n <= 8 else { throw PickleError("LONG1 of \(n) bytes at byte \(at) does not fit 64 bits") }
                let b = try read(n)
                var v: UInt64 = 0
                for (i, byte) in b.enumerated() { v |= UInt64(byte) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }   // sign-extend
                stack.append(.int(Int(Int64(bitPattern: v))))
            case .binfloat:
                var v: UInt64 = 0
                for byte in try read(8) { v = v << 8 | UInt64(byte) }                 // big-endian
                stack.append(.float(Double(bitPattern: v)))
            case .binunicode: stack.append(.string(try readString(count: try readUInt32())))
            case .shortBinunicode: stack.append(.string(try readString(count: Int(try read(1)[0]))))
            case .binunicode8:
                var n: UInt64 = 0
                for (i, byte) in try read(8).enumerated() { n |= UInt64(byte) << (8 * UInt64(i)) }
                guard n <= UInt64(bytes.count) else { throw PickleError("BINUNICODE8 of \(n) bytes at byte \(at) runs past the end") }
                stack.append(.string(try readString(count: Int(n))))
            case .binpersid: stack.append(try persistent(try pop(1)[0], at: at))
            case .reduce:
                let fa = try pop(2)
                stack.append(try call(fa[0], fa[1], at: at))
            case .newobj:
                let ca = try pop(2)
                guard case .global(let module, let name) = ca[0] else {
                    throw PickleError("NEWOBJ of \(ca[0].kind) at byte \(at): expected a class")
                }
                stack.append(.object(PickleObject(className: "\(module).\(name)")))
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

    // MARK: The functions and persistent ids TorchScript uses

    /// BINPERSID: ('storage', torch.<Type>Storage, key, location, element count).
    private func persistent(_ pid: PickleValue, at: Int) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5, case .string("storage") = t[0],
              case .global(_, let type) = t[1], case .string(let key) = t[2], case .int(let count) = t[4]
        else { throw PickleError("persistent id (\(pid.kind)) at byte \(at) is not a tensor storage") }
        guard count >= 0 else { throw PickleError("storage of \(count) elements at byte \(at)") }
        guard let dtype = Self.storageDTypes[type] else { throw PickleError("storage type \(type) at byte \(at) is not supported") }
        return .storage(key: key, dtype: dtype, count: count)
    }

    /// REDUCE: the three callables TorchScript's data.pkl uses.
    private func call(_ function: PickleValue, _ args: PickleValue, at: Int) throws -> PickleValue {
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
        case ("torch._utils", "_rebuild_parameter"):
            // (data, requires_grad, backward_hooks): the tensor itself.
            guard a.count >= 1, case .tensor = a[0] else { throw PickleError("_rebuild_parameter at byte \(at): expected a tensor") }
            return a[0]
        case ("collections", "OrderedDict"):
            return .dict(PickleDict())
        case ("torch.jit._pickle", "build_intlist"), ("torch.jit._pickle", "build_doublelist"),
             ("torch.jit._pickle", "build_boollist"), ("torch.jit._pickle", "build_tensorlist"):
            guard a.count == 1 else { throw PickleError("\(name) at byte \(at): expected one list, got \(args.kind)") }
            return a[0]
        default:
            throw PickleError("REDUCE calls \(module).\(name) at byte \(at), which this reader does not interpret")
        }
    }

    // MARK: Stack and byte helpers

    private func top() throws -> PickleValue {
        guard let v = stack.last else { throw PickleError("stack underflow at byte \(pos - 1)") }
        return v
    }

    private mutating func pop(_ n: Int) throws -> [PickleValue] {
        guard stack.count >= n + (marks.last ?? 0) else { throw PickleError("stack underflow at byte \(pos - 1)") }
        defer { stack.removeLast(n) }
        return Array(stack.suffix(n))
    }

    private mutating func popToMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw PickleError("no MARK for the opcode at byte \(pos - 1)") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    private func recall(_ index: Int) throws -> PickleValue {
        guard let v = memo[index] else { throw PickleError("memo entry \(index) read before it was written (byte \(pos))") }
        return v
    }

    /// The next n bytes (indexed from 0).
    private mutating func read(_ n: Int) throws -> [UInt8] {
        guard n >= 0, n <= bytes.count - pos else { throw PickleError("truncated pickle: \(n) bytes wanted at byte \(pos)") }
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
        guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw PickleError("unterminated GLOBAL name at byte \(pos)") }
        let line = try readString(count: end - pos)
        pos += 1
        return line
    }
}
