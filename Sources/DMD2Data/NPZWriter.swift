// Writing .npy arrays and .npz archives (what `np.save` / `np.savez` write), for tools and tests
// that make small downsampled-ImageNet-style files: `data` uint8 [N, 3·R·R] channel-planar and
// `labels` 1-based integers.
import Foundation
import ZIPFoundation

public enum NPYWriter {
    /// A version-1.0 .npy: magic, the header dict padded with spaces to a multiple of 64 bytes
    /// (ending in '\n'), then the little-endian elements.
    public static func npy(dtype: NPYHeader.DType, shape: [Int], bytes: Data) -> Data {
        precondition(shape.reduce(1, *) * dtype.itemSize == bytes.count, "NPYWriter: \(bytes.count) bytes for shape \(shape) of \(dtype)")
        let order = dtype.itemSize == 1 ? "|" : "<"
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(order)\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let length = dict.utf8.count
        out.append(UInt8(length & 0xFF))
        out.append(UInt8(length >> 8))
        out.append(contentsOf: Array(dict.utf8))
        out.append(bytes)
        return out
    }

    public static func npy(_ values: [UInt8], shape: [Int]) -> Data { npy(dtype: .uint8, shape: shape, bytes: Data(values)) }

    public static func npy(_ values: [Int64], shape: [Int]) -> Data {
        var bytes = Data(capacity: 8 * values.count)
        for v in values { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        return npy(dtype: .int64, shape: shape, bytes: bytes)
    }
}

public enum NPZWriter {
    /// Write `members` (name without ".npy" → .npy bytes) as a zip, stored (`np.savez`) or
    /// deflated (`np.savez_compressed`), through a temporary file renamed into place.
    public static func write(_ members: [(name: String, npy: Data)], to url: URL, compressed: Bool = false) throws {
        let fm = FileManager.default
        let partial = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: partial)
        do {
            let archive = try Archive(url: partial, accessMode: .create)
            for (name, npy) in members {
                try archive.addEntry(with: name + ".npy", type: .file, uncompressedSize: Int64(npy.count),
                                     compressionMethod: compressed ? .deflate : .none) { position, size in
                    npy.subdata(in: Int(position)..<(Int(position) + size))
                }
            }
        } catch {
            try? fm.removeItem(at: partial)
            throw DataError(file: url, "cannot write npz (\(error))")
        }
        try? fm.removeItem(at: url)
        try fm.moveItem(at: partial, to: url)
    }

    /// A downsampled-ImageNet-style batch: `images` (each R×R×3) stored channel-planar as rows of
    /// `data`, `labels` 0-based in, written 1-based as the original files hold them.
    public static func writeImageNetStyle(images: [Image8], labels: [Int], to url: URL, compressed: Bool = false) throws {
        precondition(images.count == labels.count && !images.isEmpty, "NPZWriter: \(images.count) images, \(labels.count) labels")
        let R = images[0].width, plane = R * R
        var data = [UInt8](repeating: 0, count: images.count * 3 * plane)
        for (n, image) in images.enumerated() {
            precondition(image.width == R && image.height == R && image.channels == 3, "NPZWriter: images must be \(R)×\(R)×3")
            for i in 0..<plane {
                for c in 0..<3 { data[n * 3 * plane + c * plane + i] = image.pixels[3 * i + c] }
            }
        }
        try write([("data", NPYWriter.npy(data, shape: [images.count, 3 * plane])),
                   ("labels", NPYWriter.npy(labels.map { Int64($0 + 1) }, shape: [labels.count]))],
                  to: url, compressed: compressed)
    }
}
