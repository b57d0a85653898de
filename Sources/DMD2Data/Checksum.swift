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
import Foundation
import ZIPFoundation

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

/// Reading zip members with their CRC-32 and size checked.
public enum ZipMembers {
    /// Stream `entry` of `archive` to `consumer`, then check that the bytes' CRC-32 and count
    /// match what the archive records. `archiveName` and the member's path name the error.
    /// A consumer that throws stops the read (its error is rethrown as is, unchecked).
    public static func extract(_ entry: Entry, of archive: Archive, archiveName: String,
                               bufferSize: Int = 64 * 1024, consumer: (Data) throws -> Void) throws {
        var crc = CRC32Checksum(), count: UInt64 = 0
        struct Stop: Error { let underlying: Error }
        do {
            _ = try archive.extract(entry, bufferSize: bufferSize, skipCRC32: true) { chunk in
                crc.update(chunk)
                count += UInt64(chunk.count)
                do { try consumer(chunk) } catch { throw Stop(underlying: error) }
            }
        } catch let stop as Stop {
            throw stop.underlying
        } catch {
            throw DataError(file: archiveName, entry: entry.path,
                            "cannot read member of \((archiveName as NSString).lastPathComponent) (\(error))")
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
    public static func data(_ entry: Entry, of archive: Archive, archiveName: String) throws -> Data {
        var data = Data()
        // The recorded size is untrusted: reserve at most 64 MiB up front.
        data.reserveCapacity(Int(min(entry.uncompressedSize, 64 << 20)))
        try extract(entry, of: archive, archiveName: archiveName) { data.append($0) }
        return data
    }

    static func hex8(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}
