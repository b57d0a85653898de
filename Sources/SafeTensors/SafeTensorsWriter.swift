// SafeTensorsWriter.swift — lays a SafeTensorsFile out as bytes: chooses each tensor's
// data_offsets, writes the JSON header (padded with spaces so the data starts 8-byte aligned),
// and copies the tensor bytes in with one block copy each.
//
// Layout. Tensors are packed back to back, with no gaps, ordered by element size (largest
// first) and then by name (UTF-8 byte order). Because the data buffer starts 8-byte aligned and
// every element size is a power of two dividing 8, each tensor then starts at a multiple of its
// own element size (F64/I64 at multiples of 8, F32/I32 of 4, ...), so typed loads are aligned.
// This is the layout of the reference implementation (huggingface/safetensors), and it has to
// be gap-free: that reader rejects any padding between tensors ("invalid offset") and any
// unused bytes at the end ("incomplete metadata, file not fully covered").

import Foundation

enum SafeTensorsWriter {
    /// Byte alignment of the data buffer's start within the file.
    static let alignment = 8

    /// The tensors in storage order, with their byte ranges in the data buffer.
    static func layout(_ tensors: [String: SafeTensor]) -> [(name: String, tensor: SafeTensor, begin: Int, end: Int)] {
        let ordered = tensors.sorted { lhs, rhs in
            let (left, right) = (lhs.value.dtype.byteSize, rhs.value.dtype.byteSize)
            if left != right { return left > right }
            return lhs.key.utf8.lexicographicallyPrecedes(rhs.key.utf8)
        }
        var offset = 0
        return ordered.map { name, tensor in
            let begin = offset
            offset += tensor.bytes.count
            return (name, tensor, begin, offset)
        }
    }

    /// The complete file.
    static func serialize(_ file: SafeTensorsFile) throws -> Data {
        for (name, tensor) in file.tensors {
            guard name != SafeTensorsFile.metadataKey else {
                throw SafeTensorsError(.invalidTensor, "\"\(SafeTensorsFile.metadataKey)\" is reserved for metadata and cannot name a tensor")
            }
            try tensor.validate(name: name)
        }
        let placed = layout(file.tensors)

        // Header JSON: metadata first (keys sorted, so output is deterministic), then tensors in storage order.
        var fields: [String] = []
        if !file.metadata.isEmpty {
            let pairs = file.metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { jsonQuoted($0.key) + ":" + jsonQuoted($0.value) }
            fields.append(jsonQuoted(SafeTensorsFile.metadataKey) + ":{" + pairs.joined(separator: ",") + "}")
        }
        for (name, tensor, begin, end) in placed {
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            fields.append(jsonQuoted(name)
                + ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(end)]}")
        }
        var header = Array(("{" + fields.joined(separator: ",") + "}").utf8)
        // Pad with spaces (valid trailing JSON whitespace) so 8 + header.count is a multiple of 8.
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (alignment - header.count % alignment) % alignment))
        guard header.count <= SafeTensorsFile.maxHeaderSize else {
            throw SafeTensorsError(.invalidHeader, "header would be \(header.count) bytes, over the limit of \(SafeTensorsFile.maxHeaderSize)")
        }

        let dataStart = 8 + header.count
        let total = dataStart + (placed.last?.end ?? 0)
        var data = Data(count: total)
        data.withUnsafeMutableBytes { out in
            out.storeBytes(of: UInt64(header.count).littleEndian, toByteOffset: 0, as: UInt64.self)
            header.withUnsafeBytes { out.baseAddress!.advanced(by: 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            for (_, tensor, begin, _) in placed where !tensor.bytes.isEmpty {
                tensor.bytes.withUnsafeBytes {
                    out.baseAddress!.advanced(by: dataStart + begin).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
                }
            }
        }
        return data
    }
}
