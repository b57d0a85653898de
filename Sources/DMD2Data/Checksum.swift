// Integrity: CRC-32 of zip members, checked on every read, and content fingerprints for caches.
//
// ZIPFoundation computes a member's CRC-32 while extracting but hands it back without comparing
// it to the one the archive records, so a flipped bit inside a stored member (or a deflate stream
// that still inflates) would be read as good data. Every member this library reads goes through
// `ZipMembers.extract`, which compares the CRC-32 and the byte count with the central directory's
// and throws "bad CRC-32 in data.npy of X.npz" on a mismatch.
//
// Caches (an extracted `data.npy`, reference features) are keyed by content, never by a path,
// size or modification time: a member's recorded CRC-32 and size (which reading verifies), or
// `ContentHash` over the bytes themselves; a cached file is verified against its key before it
// is served and rebuilt when it does not match.
import CZlib
import Foundation

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), the checksum zip records per member.
/// Slicing-by-8, so verifying a 1.5 GB member costs about a second.
public struct CRC32Checksum: Sendable {
    public private(set) var value: UInt32 = 0

    public init() {}

    private static let tables: [[UInt32]] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            tables[0][i] = c
        }
        for i in 0..<256 {
            for t in 1..<8 { tables[t][i] = (tables[t - 1][i] >> 8) ^ tables[0][Int(tables[t - 1][i] & 0xFF)] }
        }
        return tables
    }()

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var c = ~value
        var i = 0
        let n = bytes.count
        Self.tables.withUnsafeBufferPointer { t in
            let t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3], t4 = t[4], t5 = t[5], t6 = t[6], t7 = t[7]
            while i + 8 <= n {
                let lo = bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ c
                let hi = bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                c = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                    ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t0[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        value = ~c
    }

    public mutating func update(_ data: Data) { data.withUnsafeBytes { update($0) } }

    public static func of(_ data: Data) -> UInt32 {
        var crc = CRC32Checksum()
        crc.update(data)
        return crc.value
    }

    /// The CRC-32 and size of a file, read in 4 MiB chunks.
    public static func ofFile(_ url: URL) throws -> (crc: UInt32, size: UInt64) {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var crc = CRC32Checksum(), size: UInt64 = 0
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
            crc.update(chunk)
            size += UInt64(chunk.count)
        }
        return (crc.value, size)
    }
}

/// A 128-bit content hash (two independent FNV-1a-64 lanes) for cache keys. Not cryptographic:
/// it tells a changed dataset from an unchanged one, it does not resist a forger.
public struct ContentHash: Sendable {
    private var a: UInt64 = 0xCBF2_9CE4_8422_2325
    private var b: UInt64 = 0x6C62_272E_07BB_0142

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var a = self.a, b = self.b
        for byte in bytes {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 ^ (b >> 29)
        }
        self.a = a
        self.b = b
    }

    public mutating func update(_ data: Data) { data.withUnsafeBytes { update($0) } }
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }
    public mutating func update(_ string: String) { update(Array(string.utf8) + [0]) }
    public mutating func update(_ value: Int) { withUnsafeBytes(of: Int64(value).littleEndian) { update($0) } }

    /// 32 hex digits.
    public var hex: String {
        func pad(_ v: UInt64) -> String { let s = String(v, radix: 16); return String(repeating: "0", count: 16 - s.count) + s }
        return pad(a) + pad(b)
    }
}

/// One member of a zip file as its central directory records it.
public struct ZipEntry: Sendable, Equatable {
    /// The member's path inside the archive ("/"-separated; a folder ends in "/").
    public let path: String
    /// Compression method: 0 stored, 8 deflate (the only two read).
    public let method: UInt16
    /// The CRC-32 of the uncompressed bytes.
    public let checksum: UInt32
    public let compressedSize: UInt64
    public let uncompressedSize: UInt64
    /// The first byte of the member's (compressed) data in the file, after its local header.
    public let dataStart: UInt64

    public var isCompressed: Bool { method != 0 }
    /// A file member (not a folder entry).
    public var isFile: Bool { !path.hasSuffix("/") }
}

/// The members of a zip file, read from its central directory and local headers by our own
/// parser. ZIPFoundation is used only to write zips: its reader traps (a `precondition` on a
/// malformed central directory), loops forever on data that runs past the end of the file and
/// spins on a deflate stream that never ends — all found by the fuzzers. Every field read here
/// is bounds-checked, and a member whose data would run past the end of the file is refused.
public struct ZipLayout: Sendable {
    /// The members in central-directory order.
    public let entries: [ZipEntry]
    /// Member path → (first byte of its data, compressed size).
    public let dataRanges: [String: (start: UInt64, size: UInt64)]
    public let fileSize: UInt64
    public let url: URL

    /// The file members (folder entries left out), in central-directory order.
    public var files: [ZipEntry] { entries.filter(\.isFile) }

    /// The pickle of a PyTorch zip (torch.save or TorchScript): its one `data.pkl` member at the
    /// top or one folder down, the folder prefix ("archive/", or "" at the top), and its bytes
    /// (CRC-checked), and those bytes run through the restricted pickle reader. `kind` names the file type in the
    /// error when there is not exactly one such member.
    public func torchPickle(kind: String) throws -> (entry: ZipEntry, prefix: String, data: Data, root: PickleValue) {
        let pickles = files.filter { $0.path == "data.pkl" || $0.path.hasSuffix("/data.pkl") }
            .filter { !$0.path.dropLast("data.pkl".count).dropLast().contains("/") }
        guard pickles.count == 1 else {
            throw DataError(file: url, "expected one '<name>/data.pkl' member, found \(pickles.count): not a \(kind) file?")
        }
        let entry = pickles[0]
        let data = try ZipMembers.data(entry, layout: self, archiveName: url.path)
        do {
            var reader = PickleReader(data)
            return (entry, String(entry.path.dropLast("data.pkl".count)), data, try reader.run())
        } catch let error as PickleError {
            throw DataError(file: url, entry: entry.path, error.description)
        }
    }

    /// The file member at `path`, if there is one.
    public func entry(_ path: String) -> ZipEntry? {
        guard let range = dataRanges[path] else { return nil }
        return entries.first { $0.path == path && $0.dataStart == range.start && $0.isFile }
    }

    /// Parse the central directory of the zip at `url` (reading only it, the end records and the
    /// local headers, never the members' data); throws a DataError when it is malformed.
    public init(url: URL) throws {
        func fail(_ why: String) -> DataError { DataError(file: url, "not a valid zip: \(why)") }
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: url) } catch {
            throw DataError(file: url, "cannot read file (\(error.localizedDescription))")
        }
        defer { try? handle.close() }
        let n = (try? handle.seekToEnd()) ?? 0
        /// `count` bytes at `offset`, or a failure when they are not all there.
        func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
            guard offset <= n, UInt64(count) <= n - offset else { throw fail("a record runs past the end of the file") }
            do {
                try handle.seek(toOffset: offset)
                let data = try handle.read(upToCount: count) ?? Data()
                guard data.count == count else { throw fail("short read") }
                return [UInt8](data)
            } catch let error as DataError { throw error } catch { throw fail("cannot read (\(error))") }
        }
        func u(_ b: [UInt8], _ o: Int, _ width: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<width { v |= UInt64(b[o + k]) << (8 * UInt64(k)) }
            return v
        }
        // End of central directory: the last signature within 64 KiB + 22 bytes of the end.
        guard n >= 22 else { throw fail("shorter than an end-of-central-directory record") }
        let tailStart = n > 65_557 ? n - 65_557 : 0
        let tail = try read(tailStart, Int(n - tailStart))
        guard let e = stride(from: tail.count - 22, through: 0, by: -1)
            .first(where: { tail[$0] == 0x50 && tail[$0 + 1] == 0x4B && tail[$0 + 2] == 0x05 && tail[$0 + 3] == 0x06 })
        else { throw fail("no end-of-central-directory record") }
        let eocd = tailStart + UInt64(e)
        var count = u(tail, e + 10, 2), offset = u(tail, e + 16, 4), size = u(tail, e + 12, 4)
        if count == 0xFFFF || offset == 0xFFFF_FFFF || size == 0xFFFF_FFFF, eocd >= 20 {
            let locator = try read(eocd - 20, 20)
            if u(locator, 0, 4) == 0x0706_4B50 {
                let record = try read(u(locator, 8, 8), 56)
                guard u(record, 0, 4) == 0x0606_4B50 else { throw fail("bad zip64 end-of-central-directory record") }
                count = u(record, 32, 8)
                size = u(record, 40, 8)
                offset = u(record, 48, 8)
            }
        }
        guard size <= n, count <= size / 46 + 1 else { throw fail("central directory size or count past the end") }
        let directory = try read(offset, Int(size))
        var ranges: [String: (UInt64, UInt64)] = [:]
        var entries: [ZipEntry] = []
        entries.reserveCapacity(Int(count))
        var o = 0
        for _ in 0..<Int(count) {
            guard o + 46 <= directory.count, u(directory, o, 4) == 0x0201_4B50 else { throw fail("bad central directory record") }
            var compressed = u(directory, o + 20, 4), uncompressed = u(directory, o + 24, 4), local = u(directory, o + 42, 4)
            let method = UInt16(u(directory, o + 10, 2)), crc = UInt32(u(directory, o + 16, 4))
            let nameLength = Int(u(directory, o + 28, 2)), extraLength = Int(u(directory, o + 30, 2))
            let commentLength = Int(u(directory, o + 32, 2))
            guard o + 46 + nameLength + extraLength <= directory.count else { throw fail("central directory record runs past its end") }
            let name = String(decoding: directory[(o + 46)..<(o + 46 + nameLength)], as: UTF8.self)
            // A zip64 extra field holds the 64-bit values of the fields that read 0xFFFFFFFF.
            var x = o + 46 + nameLength
            while x + 4 <= o + 46 + nameLength + extraLength {
                let id = u(directory, x, 2), length = Int(u(directory, x + 2, 2))
                if id == 0x0001 {
                    var f = x + 4
                    func next() -> UInt64 {
                        guard f + 8 <= min(x + 4 + length, directory.count) else { return 0xFFFF_FFFF_FFFF_FFFF }
                        defer { f += 8 }
                        return u(directory, f, 8)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = next() }
                    if compressed == 0xFFFF_FFFF { compressed = next() }
                    if local == 0xFFFF_FFFF { local = next() }
                }
                x += 4 + length
            }
            let header = try read(local, 30)
            guard u(header, 0, 4) == 0x0403_4B50 else { throw fail("member \(name): bad local header") }
            let start = local + 30 + u(header, 26, 2) + u(header, 28, 2)
            let (end, overflow) = start.addingReportingOverflow(compressed)
            guard !overflow, end <= n else {
                throw DataError(file: url, entry: name,
                                "\(name) of \(url.lastPathComponent): its data (\(compressed) bytes from byte \(start)) runs past the end of the \(n)-byte file (corrupt or truncated archive)")
            }
            guard ranges[name] == nil else { throw fail("member \(name) is listed twice") }
            ranges[name] = (start, compressed)
            entries.append(ZipEntry(path: name, method: method, checksum: crc, compressedSize: compressed,
                                    uncompressedSize: uncompressed, dataStart: start))
            o += 46 + nameLength + extraLength + commentLength
        }
        self.entries = entries
        dataRanges = ranges
        fileSize = n
        self.url = url
    }

    /// Throws unless `entry` is one of this archive's members, stored or deflated, whose recorded
    /// uncompressed size could come from its compressed bytes.
    public func check(_ entry: ZipEntry, archiveName: String) throws {
        guard let range = dataRanges[entry.path], range.start == entry.dataStart, range.size == entry.compressedSize else {
            throw DataError(file: archiveName, entry: entry.path, "member not in the central directory")
        }
        guard entry.method == 0 || entry.method == 8 else {
            throw DataError(file: archiveName, entry: entry.path,
                            "\(entry.path): compression method \(entry.method) is not supported (only stored and deflate)")
        }
        // Deflate expands at most ~1032×; a stored member is its own size.
        let limit = entry.isCompressed ? range.size.multipliedReportingOverflow(by: 1032).partialValue + 1024 : range.size
        guard entry.uncompressedSize <= limit else {
            throw DataError(file: archiveName, entry: entry.path,
                            "\(entry.path): \(entry.uncompressedSize) bytes cannot come from \(range.size) stored bytes (corrupt archive)")
        }
    }
}

/// Reading zip members with their CRC-32 and size checked.
public enum ZipMembers {
    /// Stream `entry` of `archive` to `consumer`, then check that the bytes' CRC-32 and count
    /// match what the archive records. `archiveName` and the member's path name the error.
    /// A consumer that throws stops the read (its error is rethrown as is, unchecked).
    public static func extract(_ entry: ZipEntry, layout: ZipLayout, archiveName: String,
                               bufferSize: Int = 64 * 1024, consumer: (Data) throws -> Void) throws {
        try layout.check(entry, archiveName: archiveName)
        var crc = CRC32Checksum(), count: UInt64 = 0
        struct Stop: Error { let underlying: Error }
        func fail(_ why: String) -> DataError {
            DataError(file: archiveName, entry: entry.path, "cannot read member of \((archiveName as NSString).lastPathComponent) (\(why))")
        }
        // The member's bytes are read from its data range directly and inflated with zlib here.
        let range = (start: entry.dataStart, size: entry.compressedSize)
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: layout.url); try handle.seek(toOffset: range.start) } catch {
            throw fail("\(error)")
        }
        defer { try? handle.close() }
        var remaining = range.size
        func nextInput() throws -> Data {
            guard remaining > 0 else { return Data() }
            let chunk: Data
            do { chunk = try handle.read(upToCount: Int(min(remaining, UInt64(bufferSize)))) ?? Data() } catch { throw fail("\(error)") }
            guard !chunk.isEmpty else { throw fail("the file ends inside the member") }
            remaining -= UInt64(chunk.count)
            return chunk
        }
        func emit(_ chunk: Data) throws {
            crc.update(chunk)
            count += UInt64(chunk.count)
            guard count <= entry.uncompressedSize else { throw fail("more bytes than the recorded \(entry.uncompressedSize)") }
            do { try consumer(chunk) } catch { throw Stop(underlying: error) }
        }
        do {
            if !entry.isCompressed {
                while remaining > 0 { try emit(try nextInput()) }
            } else {
                var stream = z_stream()
                guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                    throw fail("zlib cannot start")
                }
                defer { inflateEnd(&stream) }
                var output = [UInt8](repeating: 0, count: bufferSize)
                var finished = false
                while !finished {
                    var input = [UInt8](try nextInput())
                    if input.isEmpty { throw fail("the deflate stream ends early: corrupt member") }
                    try input.withUnsafeMutableBufferPointer { inputBuffer in
                        stream.next_in = inputBuffer.baseAddress
                        stream.avail_in = UInt32(inputBuffer.count)
                        repeat {
                            let inputBefore = stream.avail_in
                            let (result, produced): (Int32, Int) = output.withUnsafeMutableBufferPointer { out in
                                stream.next_out = out.baseAddress
                                stream.avail_out = UInt32(out.count)
                                let r = inflate(&stream, Z_NO_FLUSH)
                                return (r, out.count - Int(stream.avail_out))
                            }
                            guard result == Z_OK || result == Z_STREAM_END || (result == Z_BUF_ERROR && produced == 0) else {
                                throw fail("corrupt deflate stream (zlib \(result))")
                            }
                            if produced > 0 { try emit(Data(output[0..<produced])) }
                            if result == Z_STREAM_END { finished = true; break }
                            if produced == 0 && stream.avail_in == 0 { break }
                            if produced == 0 && stream.avail_in == inputBefore { throw fail("corrupt deflate stream (no progress)") }
                        } while stream.avail_in > 0 || stream.avail_out == 0
                    }
                }
            }
        } catch let stop as Stop {
            throw stop.underlying
        } catch let error as DataError {
            throw error
        } catch {
            throw fail("\(error)")
        }
        guard count == entry.uncompressedSize else {
            throw DataError(file: archiveName, entry: entry.path,
                            "\(entry.path) of \((archiveName as NSString).lastPathComponent) holds \(count) bytes, the archive records \(entry.uncompressedSize) (corrupt archive)")
        }
        guard crc.value == entry.checksum else {
            throw DataError(file: archiveName, entry: entry.path,
                            "bad CRC-32 in \(entry.path) of \((archiveName as NSString).lastPathComponent) "
                            + "(\(hex8(crc.value)) read, \(hex8(entry.checksum)) recorded): the archive is corrupt")
        }
    }

    /// A whole member in memory, checked.
    public static func data(_ entry: ZipEntry, layout: ZipLayout, archiveName: String) throws -> Data {
        var data = Data()
        // The recorded size is untrusted: reserve at most 64 MiB up front.
        data.reserveCapacity(Int(min(entry.uncompressedSize, 64 << 20)))
        try extract(entry, layout: layout, archiveName: archiveName) { data.append($0) }
        return data
    }

    static func hex8(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}
