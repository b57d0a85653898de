// JSON.swift — a small, strict JSON parser for safetensors headers, and the string quoting
// the writer uses. Written here (rather than using JSONSerialization) so that numbers keep
// their exact text, object key order and duplicate keys are visible, nesting depth is bounded,
// and every syntax error reports the byte offset where it was found.

/// A parsed JSON value. Numbers keep their source text; objects keep their key order.
enum JSONValue {
    case object([JSONMember])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// The member named `key`, when this is an object that has it.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// A short description for error messages, e.g. `string "F8"`, `array [1,-2]`, `null`.
    var summary: String {
        let kind: String
        switch self {
        case .object: kind = "object"
        case .array: kind = "array"
        case .string: kind = "string"
        case .number: kind = "number"
        case .bool: kind = "boolean"
        case .null: return "null"
        }
        var text = compactText
        if text.count > 60 { text = String(text.prefix(57)) + "..." }
        return "\(kind) \(text)"
    }

    /// The value written back as compact JSON.
    var compactText: String {
        switch self {
        case .object(let members):
            return "{" + members.map { jsonQuoted($0.key) + ":" + $0.value.compactText }.joined(separator: ",") + "}"
        case .array(let elements):
            return "[" + elements.map(\.compactText).joined(separator: ",") + "]"
        case .string(let string): return jsonQuoted(string)
        case .number(let text): return text
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        }
    }
}

/// One `"key": value` pair of a JSON object.
struct JSONMember {
    var key: String
    var value: JSONValue
}

/// A JSON syntax error: what was wrong and the byte offset (from the start of the text) where.
struct JSONSyntaxError: Error {
    var message: String
    var offset: Int
}

/// `"text"` with the characters JSON requires escaped (quote, backslash, control characters).
func jsonQuoted(_ string: String) -> String {
    var out = "\""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// Recursive-descent parser over UTF-8 bytes (RFC 8259 grammar, no extensions).
struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private let maxDepth: Int

    /// Parses exactly one JSON value, allowing whitespace around it and nothing else.
    /// Arrays and objects nested deeper than `maxDepth` are rejected rather than risking the stack.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.position < bytes.count {
            throw parser.error("unexpected \(parser.current) after the top-level value")
        }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    // MARK: helpers

    private var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

    /// The byte at the current position, described for an error message.
    private var current: String {
        guard let byte = peek else { return "end of input" }
        if byte >= 0x21 && byte <= 0x7E { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16, uppercase: true)
    }

    private func error(_ message: String) -> JSONSyntaxError {
        JSONSyntaxError(message: message, offset: position)
    }

    private mutating func skipWhitespace() {
        while let byte = peek, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            position += 1
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(JSONSyntaxError) {
        guard peek == byte else { throw error("expected \(what), found \(current)") }
        position += 1
    }

    private static func isDigit(_ byte: UInt8?) -> Bool {
        guard let byte else { return false }
        return byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    // MARK: grammar

    private mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard let byte = peek else { throw error("expected a value, found end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try parseLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("expected a value, found \(current)")
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth <= maxDepth else { throw error("objects and arrays nest deeper than \(maxDepth) levels") }
        position += 1  // "{"
        skipWhitespace()
        var members: [JSONMember] = []
        if peek == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        var seen = Set<String>()
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw error("expected a string key, found \(current)") }
            let keyPosition = position
            let key = try parseString()
            guard seen.insert(key).inserted else {
                throw JSONSyntaxError(message: "duplicate key \(jsonQuoted(key))", offset: keyPosition)
            }
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':' after an object key")
            skipWhitespace()
            members.append(JSONMember(key: key, value: try parseValue(depth: depth)))
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(members)
            default: throw error("expected ',' or '}' in an object, found \(current)")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth <= maxDepth else { throw error("objects and arrays nest deeper than \(maxDepth) levels") }
        position += 1  // "["
        skipWhitespace()
        var elements: [JSONValue] = []
        if peek == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(elements)
            default: throw error("expected ',' or ']' in an array, found \(current)")
            }
        }
    }

    private mutating func parseLiteral(_ word: StaticString) throws(JSONSyntaxError) {
        let count = word.utf8CodeUnitCount
        let matches = position + count <= bytes.count
            && (0..<count).allSatisfy { bytes[position + $0] == word.utf8Start[$0] }
        guard matches else { throw error("expected a value, found \(current)") }
        position += count
    }

    /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? — returned as its source text.
    private mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
        let start = position
        if peek == UInt8(ascii: "-") { position += 1 }
        guard Self.isDigit(peek) else { throw error("expected a digit in a number, found \(current)") }
        if peek == UInt8(ascii: "0") {
            position += 1
        } else {
            while Self.isDigit(peek) { position += 1 }
        }
        if peek == UInt8(ascii: ".") {
            position += 1
            guard Self.isDigit(peek) else { throw error("expected a digit after '.', found \(current)") }
            while Self.isDigit(peek) { position += 1 }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            position += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { position += 1 }
            guard Self.isDigit(peek) else { throw error("expected a digit in an exponent, found \(current)") }
            while Self.isDigit(peek) { position += 1 }
        }
        return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self))
    }

    /// A string literal, unescaped. The caller has checked the input is valid UTF-8.
    private mutating func parseString() throws(JSONSyntaxError) -> String {
        position += 1  // opening quote
        var out: [UInt8] = []
        var runStart = position
        while true {
            guard let byte = peek else { throw error("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position]))
                position += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position]))
                position += 1
                try parseEscape(into: &out)
                runStart = position
            case 0..<0x20:
                throw error("unescaped control character \(current) in a string")
            default:
                position += 1
            }
        }
    }

    /// One escape sequence after the backslash, appended to `out` as UTF-8.
    private mutating func parseEscape(into out: inout [UInt8]) throws(JSONSyntaxError) {
        guard let byte = peek else { throw error("unterminated string") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var value = try parseHex4()
            if (0xD800...0xDBFF).contains(value) {
                // A high surrogate must be followed by an escaped low surrogate.
                guard peek == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                    throw error("unpaired UTF-16 surrogate in a \\u escape")
                }
                position += 2
                let low = try parseHex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired UTF-16 surrogate in a \\u escape") }
                value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(value) {
                throw error("unpaired UTF-16 surrogate in a \\u escape")
            }
            guard let scalar = Unicode.Scalar(value) else { throw error("invalid \\u escape") }
            out.append(contentsOf: String(Character(scalar)).utf8)
        default:
            position -= 1
            throw error("invalid escape sequence '\\' followed by \(current)")
        }
    }

    private mutating func parseHex4() throws(JSONSyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek else { throw error("unterminated \\u escape") }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("expected a hex digit in a \\u escape, found \(current)")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }
}
