// SafeTensorsReader.swift — parses and validates the bytes of a safetensors file: the size
// prefix, the UTF-8 JSON header, every tensor entry (dtype, shape, data_offsets), the metadata,
// bounds and overlap of the data ranges; then copies each tensor's bytes out in one block.
// Every malformed input becomes a SafeTensorsError naming the problem; nothing traps.

enum SafeTensorsReader {
    /// A header entry that passed validation, before its bytes are copied.
    private struct Entry {
        var name: String
        var dtype: SafeTensorsDType
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    /// Parses a whole file.
    static func parse(_ file: UnsafeRawBufferPointer) throws -> SafeTensorsFile {
        // 1. The 8-byte little-endian header size.
        guard file.count >= 8 else {
            throw SafeTensorsError(.truncatedFile,
                                   "file is \(file.count) bytes, shorter than the 8-byte header-size prefix")
        }
        var headerSize64: UInt64 = 0
        for index in 0..<8 { headerSize64 |= UInt64(file[index]) << (8 * UInt64(index)) }
        guard headerSize64 <= UInt64(SafeTensorsFile.maxHeaderSize) else {
            throw SafeTensorsError(.invalidHeader,
                                   "header size \(headerSize64) exceeds the limit of \(SafeTensorsFile.maxHeaderSize) bytes")
        }
        let headerSize = Int(headerSize64)
        guard headerSize <= file.count - 8 else {
            throw SafeTensorsError(.truncatedFile,
                                   "header size \(headerSize) runs past the end of the file: it needs \(8 + headerSize) bytes, the file has \(file.count)")
        }
        let header = UnsafeRawBufferPointer(rebasing: file[8..<(8 + headerSize)])
        let buffer = UnsafeRawBufferPointer(rebasing: file[(8 + headerSize)...])

        // 2. The header: UTF-8, JSON, an object.
        if let badOffset = firstInvalidUTF8Offset(header) {
            throw SafeTensorsError(.invalidHeader, "header is not valid UTF-8 (bad byte at header offset \(badOffset))")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(header)
        } catch {
            throw SafeTensorsError(.invalidHeader,
                                   "header is not valid JSON: \(error.message) (at header offset \(error.offset))")
        }
        guard case .object(let members) = json else {
            throw SafeTensorsError(.invalidHeader, "header JSON must be an object, found \(json.summary)")
        }

        // 3. Metadata and tensor entries.
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        entries.reserveCapacity(members.count)
        for member in members {
            let (key, value) = (member.key, member.value)
            if key == SafeTensorsFile.metadataKey {
                metadata = try parseMetadata(value)
            } else {
                entries.append(try parseEntry(name: key, value, bufferSize: buffer.count))
            }
        }
        try checkNoOverlap(entries)

        // 4. Copy each tensor's bytes out of the buffer (one memcpy each).
        var tensors: [String: SafeTensor] = [:]
        tensors.reserveCapacity(entries.count)
        for entry in entries {
            let bytes = Array(UnsafeRawBufferPointer(rebasing: buffer[entry.begin..<entry.end]))
            tensors[entry.name] = SafeTensor(unchecked: entry.dtype, shape: entry.shape, bytes: bytes)
        }
        return SafeTensorsFile(metadata: metadata, tensors: tensors)
    }

    // MARK: pieces

    /// Byte offset of the first byte that is not part of a valid UTF-8 sequence, or nil.
    private static func firstInvalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        // Fast path: pure ASCII, the usual case.
        if !bytes.contains(where: { $0 >= 0x80 }) { return nil }
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// `"__metadata__"`: an object whose values are all strings (null counts as no metadata).
    private static func parseMetadata(_ value: JSONValue) throws -> [String: String] {
        switch value {
        case .null:
            return [:]
        case .object(let members):
            var metadata: [String: String] = [:]
            for member in members {
                let (key, value) = (member.key, member.value)
                guard case .string(let string) = value else {
                    throw SafeTensorsError(.invalidHeader,
                                           "\"__metadata__\" value for key '\(key)' must be a string, found \(value.summary)")
                }
                metadata[key] = string
            }
            return metadata
        default:
            throw SafeTensorsError(.invalidHeader,
                                   "\"__metadata__\" must be an object of string values, found \(value.summary)")
        }
    }

    /// One tensor entry, fully checked against the data buffer's size.
    private static func parseEntry(name: String, _ value: JSONValue, bufferSize: Int) throws -> Entry {
        func entryError(_ message: String) -> SafeTensorsError {
            SafeTensorsError(.invalidTensorEntry, "tensor '\(name)': \(message)")
        }
        func offsetsError(_ message: String) -> SafeTensorsError {
            SafeTensorsError(.invalidDataOffsets, "tensor '\(name)': \(message)")
        }
        guard case .object = value else {
            throw entryError("entry must be an object with dtype, shape and data_offsets, found \(value.summary)")
        }

        // dtype
        guard let dtypeValue = value["dtype"] else { throw entryError("missing \"dtype\"") }
        guard case .string(let dtypeName) = dtypeValue else {
            throw entryError("\"dtype\" must be a string, found \(dtypeValue.summary)")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let supported = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw entryError("unknown dtype \(jsonQuoted(dtypeName)) (supported: \(supported))")
        }

        // shape
        guard let shapeValue = value["shape"] else { throw entryError("missing \"shape\"") }
        guard case .array(let shapeElements) = shapeValue else {
            throw entryError("\"shape\" must be an array of non-negative integers, found \(shapeValue.summary)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeElements.count)
        for (index, element) in shapeElements.enumerated() {
            shape.append(try nonNegativeInteger(element, what: "shape[\(index)]", error: entryError))
        }
        guard let elementCount = checkedElementCount(shape),
              case let (byteCount, overflow) = elementCount.multipliedReportingOverflow(by: dtype.byteSize), !overflow
        else {
            throw entryError("shape \(describeShape(shape)) has more elements than Int can count")
        }

        // data_offsets
        guard let offsetsValue = value["data_offsets"] else { throw entryError("missing \"data_offsets\"") }
        guard case .array(let offsetElements) = offsetsValue, offsetElements.count == 2 else {
            throw entryError("\"data_offsets\" must be an array [begin, end] of two non-negative integers, found \(offsetsValue.summary)")
        }
        let begin = try nonNegativeInteger(offsetElements[0], what: "data_offsets[0]", error: offsetsError)
        let end = try nonNegativeInteger(offsetElements[1], what: "data_offsets[1]", error: offsetsError)
        guard begin <= end else {
            throw offsetsError("data_offsets begin \(begin) is greater than end \(end)")
        }
        guard end <= bufferSize else {
            throw offsetsError("data_offsets [\(begin), \(end)] run past the end of the data buffer (\(bufferSize) bytes)")
        }
        guard end - begin == byteCount else {
            throw offsetsError("dtype \(dtype.rawValue) with shape \(describeShape(shape)) needs \(byteCount) bytes but data_offsets [\(begin), \(end)] hold \(end - begin)")
        }
        return Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// A JSON number that is a non-negative integer fitting in `Int` (no fraction or exponent).
    private static func nonNegativeInteger(_ value: JSONValue, what: String,
                                           error: (String) -> SafeTensorsError) throws -> Int {
        guard case .number(let text) = value, !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else {
            throw error("\(what) must be a non-negative integer, found \(value.summary)")
        }
        if let integer = Int(text) {
            guard integer >= 0 else { throw error("\(what) must be a non-negative integer, found \(text) (negative)") }
            return integer
        }
        if text.hasPrefix("-") { throw error("\(what) must be a non-negative integer, found \(text) (negative)") }
        throw error("\(what) is \(text), too large for a 64-bit integer")
    }

    /// Throws if two tensors share any byte. Empty tensors occupy no bytes and never overlap.
    /// Gaps between tensors, and unused bytes after the last one, are allowed.
    private static func checkNoOverlap(_ entries: [Entry]) throws {
        let occupied = entries.filter { $0.end > $0.begin }.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        guard var furthest = occupied.first else { return }  // the entry reaching furthest so far
        for entry in occupied.dropFirst() {
            if entry.begin < furthest.end {
                throw SafeTensorsError(.invalidDataOffsets,
                                       "tensors '\(furthest.name)' (data_offsets [\(furthest.begin), \(furthest.end)]) and '\(entry.name)' (data_offsets [\(entry.begin), \(entry.end)]) overlap")
            }
            if entry.end > furthest.end { furthest = entry }
        }
    }
}
