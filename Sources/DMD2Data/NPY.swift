// NumPy's .npy array format and the .npz container (a zip of .npy members), for reading.
//
// .npy (numpy/lib/format.py, "NEP 1"):
//   bytes 0–5   magic "\x93NUMPY"
//   byte 6, 7   format version major, minor (1.0, 2.0 or 3.0)
//   then        header length: little-endian UInt16 (v1) or UInt32 (v2, v3)
//   then        the header: a Python dict literal, e.g.
//               {'descr': '<i8', 'fortran_order': False, 'shape': (1000,), }
//               padded with spaces and '\n' so the data starts on a 16- or 64-byte boundary
//   then        the raw elements, row-major when fortran_order is False
// .npz (`np.savez`, `np.savez_compressed`): a zip whose members are "<name>.npy", stored or
// deflated. We open it with ZIPFoundation and read members in full (small ones, like labels or
// EDM's FID reference `mu`/`sigma`) or extract one to a file once (big ones, see
// ImageNet64Dataset for why); either way every member's CRC-32 is checked (Checksum.swift).
import Foundation

/// The parsed header of one .npy array.
public struct NPYHeader: Equatable, Sendable {
    /// Element types we read: the `descr` string without its byte-order character.
    public enum DType: String, Sendable {
        case uint8 = "u1", int8 = "i1", int32 = "i4", int64 = "i8", uint16 = "u2", float32 = "f4", float64 = "f8"

        public var itemSize: Int {
            switch self {
            case .uint8, .int8: return 1
            case .uint16: return 2
            case .int32, .float32: return 4
            case .int64, .float64: return 8
            }
        }
    }

    public var dtype: DType
    public var shape: [Int]
    /// Offset of the first element from the start of the .npy bytes.
    public var dataOffset: Int

    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { elementCount * dtype.itemSize }

    /// Total header size (preamble + dict) announced by the first bytes, or nil while fewer
    /// than 12 bytes are available. Throws if the bytes are not a .npy preamble.
    static func headerSize(prefix: Data, name: String, entry: String?) throws -> Int? {
        let bytes = [UInt8](prefix.prefix(12))
        if bytes.count >= 6 && bytes[0..<6] != [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59] {    // "\x93NUMPY"
            throw DataError(file: name, entry: entry, "not a .npy array (bad magic bytes)")
        }
        guard bytes.count >= 12 else { return nil }
        switch bytes[6] {
        case 1: return 10 + (Int(bytes[8]) | Int(bytes[9]) << 8)
        case 2, 3: return 12 + (Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24)
        default: throw DataError(file: name, entry: entry, ".npy format version \(bytes[6]).\(bytes[7]) is not supported (1.0, 2.0, 3.0 are)")
        }
    }

    /// Parse the header at the start of `data` (which must hold at least the whole header).
    public static func parse(_ data: Data, name: String, entry: String? = nil) throws -> NPYHeader {
        guard let size = try headerSize(prefix: data, name: name, entry: entry), data.count >= size else {
            throw DataError(file: name, entry: entry, ".npy header is truncated")
        }
        let start = data.startIndex
        let dictBytes = data[(start + (data[start + 6] == 1 ? 10 : 12))..<(start + size)]
        guard let dict = String(bytes: dictBytes, encoding: .utf8) ?? String(bytes: dictBytes, encoding: .isoLatin1) else {
            throw DataError(file: name, entry: entry, ".npy header is not text")
        }
        func fail(_ why: String) -> DataError {
            DataError(file: name, entry: entry, ".npy header \(dict.trimmingCharacters(in: .whitespacesAndNewlines)): \(why)")
        }
        // 'descr': '<i8'
        guard let descr = value(after: "'descr'", in: dict).flatMap({ quoted($0) }) else { throw fail("no 'descr'") }
        let order = descr.first.map(String.init) ?? ""
        let code = String(descr.dropFirst())
        guard let dtype = DType(rawValue: code), ["<", "|", "="].contains(order) || (dtype.itemSize == 1 && order == ">") else {
            throw fail("dtype '\(descr)' is not supported (little-endian u1, i1, u2, i4, i8, f4, f8 are)")
        }
        // 'fortran_order': False
        guard let fortran = value(after: "'fortran_order'", in: dict) else { throw fail("no 'fortran_order'") }
        if fortran.hasPrefix("True") { throw fail("fortran_order True is not supported (save a C-ordered array)") }
        guard fortran.hasPrefix("False") else { throw fail("cannot read 'fortran_order'") }
        // 'shape': (1000, 12288)   — Python 2 files may write longs as "1000L"
        guard let shapeText = value(after: "'shape'", in: dict), shapeText.first == "(",
              let close = shapeText.firstIndex(of: ")") else { throw fail("cannot read 'shape'") }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let digits = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if digits.isEmpty { continue }
            guard let n = Int(digits), n >= 0 else { throw fail("cannot read 'shape'") }
            shape.append(n)
        }
        var bytes = dtype.itemSize
        for n in shape {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: n)
            guard !overflow, product <= 1 << 48 else { throw fail("shape \(shape) is too large (more than 2^48 bytes)") }
            bytes = product
        }
        return NPYHeader(dtype: dtype, shape: shape, dataOffset: size)
    }

    /// The text after `key:` in a Python dict literal, leading spaces removed.
    private static func value(after key: String, in dict: String) -> Substring? {
        guard let range = dict.range(of: key) else { return nil }
        var rest = dict[range.upperBound...].drop { $0 == " " }
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst().drop { $0 == " " }
        return rest
    }

    /// The contents of a leading '…' or "…" string literal.
    private static func quoted(_ text: Substring) -> String? {
        guard let q = text.first, q == "'" || q == "\"" else { return nil }
        let body = text.dropFirst()
        guard let end = body.firstIndex(of: q) else { return nil }
        return String(body[..<end])
    }
}

/// Little-endian integers of any supported integer dtype, as Int.
func npyIntegers(_ bytes: Data, dtype: NPYHeader.DType, count: Int) -> [Int]? {
    var out = [Int](repeating: 0, count: count)
    bytes.withUnsafeBytes { raw in
        for i in 0..<count {
            let o = i * dtype.itemSize
            switch dtype {
            case .uint8: out[i] = Int(raw[o])
            case .int8: out[i] = Int(Int8(bitPattern: raw[o]))
            case .uint16: out[i] = Int(raw.loadUnaligned(fromByteOffset: o, as: UInt16.self).littleEndian)
            case .int32: out[i] = Int(raw.loadUnaligned(fromByteOffset: o, as: Int32.self).littleEndian)
            case .int64: out[i] = Int(raw.loadUnaligned(fromByteOffset: o, as: Int64.self).littleEndian)
            case .float32, .float64: break
            }
        }
    }
    return dtype == .float32 || dtype == .float64 ? nil : out
}

/// A .npz file opened for reading: members by name (without ".npy").
public final class NPZArchive {
    public let url: URL
    private let layout: ZipLayout
    private let entries: [String: ZipEntry]

    /// Open `url`; throws a DataError if it is not a readable zip.
    public init(url: URL) throws {
        self.url = url
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw DataError(file: url, "no such file")
        }
        do { layout = try ZipLayout(url: url) } catch let error as DataError {
            throw error.entry != nil ? error : DataError(file: url, "not a readable zip/npz archive (\(error.reason))")
        }
        var entries: [String: ZipEntry] = [:]
        for entry in layout.files where entry.path.hasSuffix(".npy") {
            entries[String(entry.path.dropLast(4))] = entry
        }
        self.entries = entries
    }

    /// Member names, without ".npy", sorted.
    public var memberNames: [String] { entries.keys.sorted() }

    private func entry(_ name: String) throws -> ZipEntry {
        guard let entry = entries[name] else {
            let has = memberNames.isEmpty ? "no .npy members" : "members: " + memberNames.joined(separator: ", ")
            throw DataError(file: url, entry: name + ".npy", "missing member (\(has))")
        }
        return entry
    }

    /// A member's bytes as stored in the archive (the whole .npy), CRC-32 checked.
    public func rawMember(_ name: String) throws -> Data {
        try ZipMembers.data(try entry(name), layout: layout, archiveName: url.path)
    }

    /// The header of a member, reading only its first bytes.
    public func header(_ name: String) throws -> NPYHeader {
        let entry = try entry(name)
        var prefix = Data()
        struct EnoughBytes: Error {}
        do {
            try ZipMembers.extract(entry, layout: layout, archiveName: url.path, bufferSize: 4096) { chunk in
                prefix.append(chunk)
                if let size = try NPYHeader.headerSize(prefix: prefix, name: self.url.path, entry: name + ".npy"),
                   prefix.count >= size { throw EnoughBytes() }
            }
        } catch is EnoughBytes {
        } catch let error as DataError { throw error
        } catch {
            throw DataError(file: url, entry: name + ".npy", "cannot read member (\(error))")
        }
        return try NPYHeader.parse(prefix, name: url.path, entry: name + ".npy")
    }

    /// A whole member in memory: its header and its element bytes (CRC-32 and size checked).
    public func read(_ name: String) throws -> (header: NPYHeader, bytes: Data) {
        let entry = try entry(name)
        let data = try ZipMembers.data(entry, layout: layout, archiveName: url.path)
        let header = try NPYHeader.parse(data, name: url.path, entry: name + ".npy")
        guard data.count - header.dataOffset >= header.byteCount else {
            throw DataError(file: url, entry: name + ".npy",
                            "holds \(data.count - header.dataOffset) data bytes, shape \(header.shape) of \(header.dtype) needs \(header.byteCount)")
        }
        return (header, data.subdata(in: header.dataOffset..<(header.dataOffset + header.byteCount)))
    }

    /// A member of integers as [Int] with its shape.
    public func integers(_ name: String) throws -> (shape: [Int], values: [Int]) {
        let (header, bytes) = try read(name)
        guard let values = npyIntegers(bytes, dtype: header.dtype, count: header.elementCount) else {
            throw DataError(file: url, entry: name + ".npy", "dtype \(header.dtype) is not an integer type")
        }
        return (header.shape, values)
    }

    /// A member of floats (f4 or f8) as [Double] with its shape (e.g. EDM's FID `mu`, `sigma`).
    public func doubles(_ name: String) throws -> (shape: [Int], values: [Double]) {
        let (header, bytes) = try read(name)
        let n = header.elementCount
        let values: [Double] = try bytes.withUnsafeBytes { raw in
            switch header.dtype {
            case .float64: return (0..<n).map { Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self).littleEndian) }
            case .float32: return (0..<n).map { Double(Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian)) }
            default: throw DataError(file: url, entry: name + ".npy", "dtype \(header.dtype) is not a float type")
            }
        }
        return (header.shape, values)
    }

    /// The CRC-32 and size the archive records for a member: a key of its content (reading the
    /// member checks its bytes against both).
    public func recordedChecksum(_ name: String) throws -> (crc: UInt32, size: UInt64) {
        let entry = try entry(name)
        return (entry.checksum, entry.uncompressedSize)
    }

    /// Extract a member to `directory` once and return the file (a plain .npy) and its header.
    ///
    /// The cache is keyed by content: the file is named by the member's recorded CRC-32 and size
    /// (not by the archive's path), and before a cached file is served its own CRC-32 and size are
    /// computed and compared with that key (one sequential read, about a second per 1.5 GB); a
    /// cached file that does not match is deleted and extracted again. Extraction checks the
    /// member's CRC-32, so a corrupt archive fails ("bad CRC-32 in data.npy of X.npz") and leaves
    /// nothing in the cache; it writes to a temporary name first, so an interrupted run leaves no
    /// file that looks complete.
    public func extractOnce(_ name: String, to directory: URL) throws -> (file: URL, header: NPYHeader) {
        let entry = try entry(name)
        let fm = FileManager.default
        let target = directory.appendingPathComponent(
            "npy-\(ZipMembers.hex8(entry.checksum))-\(entry.uncompressedSize).npy")
        var usable = false
        if fm.fileExists(atPath: target.path) {
            if let (crc, size) = try? CRC32Checksum.ofFile(target), crc == entry.checksum, size == entry.uncompressedSize {
                usable = true
            } else {
                try? fm.removeItem(at: target)           // a corrupt or partial cache is discarded, never served
            }
        }
        if !usable {
            let partial = directory.appendingPathComponent(target.lastPathComponent + ".partial-\(getpid())")
            do {
                try fm.createDirectory(at: directory, withIntermediateDirectories: true)
                try? fm.removeItem(at: partial)
                guard fm.createFile(atPath: partial.path, contents: nil) else {
                    throw DataError(file: partial, "cannot create file")
                }
                let out = try FileHandle(forWritingTo: partial)
                defer { try? out.close() }
                try ZipMembers.extract(entry, layout: layout, archiveName: url.path, bufferSize: 1 << 20) { try out.write(contentsOf: $0) }
                try out.close()
                try? fm.removeItem(at: target)
                try fm.moveItem(at: partial, to: target)
            } catch let error as DataError {
                try? fm.removeItem(at: partial)
                throw error
            } catch {
                try? fm.removeItem(at: partial)
                throw DataError(file: url, entry: name + ".npy", "cannot extract member to \(directory.path) (\(error))")
            }
        }
        let handle = try FileHandle(forReadingFrom: target)
        defer { try? handle.close() }
        let prefix = try handle.read(upToCount: 64 * 1024) ?? Data()
        return (target, try NPYHeader.parse(prefix, name: url.path, entry: name + ".npy"))
    }
}
