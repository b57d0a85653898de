// MalformedInputTests.swift — a table of malformed files, each of which must be rejected with a
// SafeTensorsError of the right kind whose message contains a specific phrase; the lenient
// cases the reader deliberately accepts; and a mutation fuzz that must never trap.

import Foundation
import XCTest
@testable import SafeTensors

final class MalformedInputTests: XCTestCase {
    /// A file from a raw header (no padding added) and data buffer.
    static func file(_ header: String, data: [UInt8] = []) -> Data {
        file(headerBytes: Array(header.utf8), data: data)
    }

    static func file(headerBytes: [UInt8], data: [UInt8] = []) -> Data {
        Data(RoundTripTests.le([UInt64(headerBytes.count)]) + headerBytes + data)
    }

    /// `{"w": {...entry...}}` with the given entry body.
    static func entry(_ body: String, data: [UInt8] = Array(repeating: 0, count: 16)) -> Data {
        file(#"{"w":{"# + body + "}}", data: data)
    }

    struct Case {
        var label: String
        var data: Data
        var kind: SafeTensorsError.Kind
        var phrase: String
    }

    static let okEntry = #""dtype":"F32","shape":[2,2],"data_offsets":[0,16]"#

    static let cases: [Case] = [
        // Size prefix and header extent
        Case(label: "empty file", data: Data(), kind: .truncatedFile,
             phrase: "file is 0 bytes, shorter than the 8-byte header-size prefix"),
        Case(label: "7-byte file", data: Data([2, 0, 0, 0, 0, 0, 0]), kind: .truncatedFile,
             phrase: "file is 7 bytes, shorter than the 8-byte header-size prefix"),
        Case(label: "absurd header size", data: Data(RoundTripTests.le([UInt64(200_000_000)]) + Array("{}".utf8)),
             kind: .invalidHeader, phrase: "header size 200000000 exceeds the limit of 100000000 bytes"),
        Case(label: "maximal header size", data: Data(RoundTripTests.le([UInt64.max])), kind: .invalidHeader,
             phrase: "header size 18446744073709551615 exceeds the limit"),
        Case(label: "header past end of file", data: Data(RoundTripTests.le([UInt64(100)]) + Array(repeating: 0x20, count: 12)),
             kind: .truncatedFile, phrase: "header size 100 runs past the end of the file: it needs 108 bytes, the file has 20"),

        // Header encoding and JSON syntax
        Case(label: "invalid UTF-8", data: file(headerBytes: Array(#"{"a"#.utf8) + [0xFF] + Array(#"":1}"#.utf8)),
             kind: .invalidHeader, phrase: "header is not valid UTF-8 (bad byte at header offset 3)"),
        Case(label: "truncated UTF-8 sequence", data: file(headerBytes: Array(#"{"é"#.utf8.dropLast()) + Array(#"":1}"#.utf8)),
             kind: .invalidHeader, phrase: "header is not valid UTF-8"),
        Case(label: "zero-size header", data: file(""), kind: .invalidHeader,
             phrase: "header is not valid JSON: expected a value, found end of input (at header offset 0)"),
        Case(label: "truncated JSON", data: file(#"{"w":"#), kind: .invalidHeader,
             phrase: "header is not valid JSON: expected a value, found end of input"),
        Case(label: "unterminated string", data: file(#"{"w"#), kind: .invalidHeader, phrase: "unterminated string"),
        Case(label: "missing colon", data: file(#"{"w" 1}"#), kind: .invalidHeader, phrase: "expected ':' after an object key, found '1'"),
        Case(label: "trailing comma", data: file(#"{"w":{},}"#), kind: .invalidHeader, phrase: "expected a string key, found '}'"),
        Case(label: "garbage after JSON", data: file("{} x"), kind: .invalidHeader,
             phrase: "unexpected 'x' after the top-level value (at header offset 3)"),
        Case(label: "NUL padding", data: file("{}\0\0"), kind: .invalidHeader, phrase: "unexpected byte 0x0 after the top-level value"),
        Case(label: "single quotes", data: file("{'w':1}"), kind: .invalidHeader, phrase: "expected a string key, found '''"),
        Case(label: "bad literal", data: file(#"{"__metadata__":nul}"#), kind: .invalidHeader, phrase: "expected a value, found 'n'"),
        Case(label: "leading zero", data: file(#"{"w":{"shape":[01]}}"#), kind: .invalidHeader,
             phrase: "expected ',' or ']' in an array, found '1'"),
        Case(label: "bare minus", data: file(#"{"w":-}"#), kind: .invalidHeader, phrase: "expected a digit in a number, found '}'"),
        Case(label: "invalid escape", data: file(#"{"a\x":1}"#), kind: .invalidHeader, phrase: #"invalid escape sequence '\' followed by 'x'"#),
        Case(label: "lone surrogate", data: file(#"{"\ud800":1}"#), kind: .invalidHeader, phrase: "unpaired UTF-16 surrogate"),
        Case(label: "control character", data: file("{\"a\tb\":1}"), kind: .invalidHeader, phrase: "unescaped control character byte 0x9"),
        Case(label: "duplicate key", data: file(#"{"w":{},"w":{}}"#), kind: .invalidHeader, phrase: #"duplicate key "w""#),
        Case(label: "deep nesting", data: file(#"{"__metadata__":"# + String(repeating: "[", count: 100_000)), kind: .invalidHeader,
             phrase: "objects and arrays nest deeper than 64 levels"),

        // Header shape
        Case(label: "header is an array", data: file("[1,2]"), kind: .invalidHeader, phrase: "header JSON must be an object, found array [1,2]"),
        Case(label: "header is a string", data: file(#""hi""#), kind: .invalidHeader, phrase: #"header JSON must be an object, found string "hi""#),
        Case(label: "metadata not an object", data: file(#"{"__metadata__":["a"]}"#), kind: .invalidHeader,
             phrase: #""__metadata__" must be an object of string values, found array ["a"]"#),
        Case(label: "metadata value a number", data: file(#"{"__metadata__":{"ok":"1","k":1}}"#), kind: .invalidHeader,
             phrase: #""__metadata__" value for key 'k' must be a string, found number 1"#),
        Case(label: "metadata value null", data: file(#"{"__metadata__":{"k":null}}"#), kind: .invalidHeader,
             phrase: #""__metadata__" value for key 'k' must be a string, found null"#),
        Case(label: "metadata value an object", data: file(#"{"__metadata__":{"k":{"a":"b"}}}"#), kind: .invalidHeader,
             phrase: #"value for key 'k' must be a string, found object {"a":"b"}"#),

        // Tensor entries
        Case(label: "entry not an object", data: file(#"{"w":5}"#), kind: .invalidTensorEntry,
             phrase: "tensor 'w': entry must be an object with dtype, shape and data_offsets, found number 5"),
        Case(label: "missing dtype", data: entry(#""shape":[2,2],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: #"tensor 'w': missing "dtype""#),
        Case(label: "missing shape", data: entry(#""dtype":"F32","data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: #"tensor 'w': missing "shape""#),
        Case(label: "missing data_offsets", data: entry(#""dtype":"F32","shape":[2,2]"#), kind: .invalidTensorEntry,
             phrase: #"tensor 'w': missing "data_offsets""#),
        Case(label: "dtype a number", data: entry(#""dtype":1,"shape":[2,2],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: #"tensor 'w': "dtype" must be a string, found number 1"#),
        Case(label: "unknown dtype", data: entry(#""dtype":"F8_E4M3","shape":[2,2],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: #"tensor 'w': unknown dtype "F8_E4M3" (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"#),
        Case(label: "lowercase dtype", data: entry(#""dtype":"f32","shape":[2,2],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: #"unknown dtype "f32""#),
        Case(label: "shape not an array", data: entry(#""dtype":"F32","shape":4,"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: #"tensor 'w': "shape" must be an array of non-negative integers, found number 4"#),
        Case(label: "negative dimension", data: entry(#""dtype":"F32","shape":[2,-3],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: "tensor 'w': shape[1] must be a non-negative integer, found -3 (negative)"),
        Case(label: "fractional dimension", data: entry(#""dtype":"F32","shape":[2.5],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: "shape[0] must be a non-negative integer, found number 2.5"),
        Case(label: "exponent dimension", data: entry(#""dtype":"F32","shape":[4e0],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: "shape[0] must be a non-negative integer, found number 4e0"),
        Case(label: "string dimension", data: entry(#""dtype":"F32","shape":["4"],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: #"shape[0] must be a non-negative integer, found string "4""#),
        Case(label: "boolean dimension", data: entry(#""dtype":"F32","shape":[true],"data_offsets":[0,16]"#), kind: .invalidTensorEntry,
             phrase: "shape[0] must be a non-negative integer, found boolean true"),
        Case(label: "huge dimension", data: entry(#""dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,16]"#),
             kind: .invalidTensorEntry, phrase: "shape[0] is 99999999999999999999, too large for a 64-bit integer"),
        Case(label: "element count overflows", data: entry(#""dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,16]"#),
             kind: .invalidTensorEntry, phrase: "tensor 'w': shape [4294967296, 4294967296] has more elements than Int can count"),
        Case(label: "byte count overflows", data: entry(#""dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,16]"#),
             kind: .invalidTensorEntry, phrase: "shape [2305843009213693952] has more elements than Int can count"),

        // data_offsets
        Case(label: "offsets not an array", data: entry(#""dtype":"F32","shape":[2,2],"data_offsets":"0,16""#), kind: .invalidTensorEntry,
             phrase: #""data_offsets" must be an array [begin, end] of two non-negative integers, found string "0,16""#),
        Case(label: "one offset", data: entry(#""dtype":"F32","shape":[2,2],"data_offsets":[0]"#), kind: .invalidTensorEntry,
             phrase: #""data_offsets" must be an array [begin, end] of two non-negative integers, found array [0]"#),
        Case(label: "three offsets", data: entry(#""dtype":"F32","shape":[2,2],"data_offsets":[0,8,16]"#), kind: .invalidTensorEntry,
             phrase: "found array [0,8,16]"),
        Case(label: "negative offset", data: entry(#""dtype":"F32","shape":[2,2],"data_offsets":[-4,12]"#), kind: .invalidDataOffsets,
             phrase: "tensor 'w': data_offsets[0] must be a non-negative integer, found -4 (negative)"),
        Case(label: "huge offset", data: entry(#""dtype":"F32","shape":[2,2],"data_offsets":[0,18446744073709551616]"#),
             kind: .invalidDataOffsets, phrase: "data_offsets[1] is 18446744073709551616, too large for a 64-bit integer"),
        Case(label: "begin after end", data: entry(#""dtype":"F32","shape":[2,2],"data_offsets":[16,0]"#), kind: .invalidDataOffsets,
             phrase: "tensor 'w': data_offsets begin 16 is greater than end 0"),
        Case(label: "past end of buffer", data: entry(okEntry, data: Array(repeating: 0, count: 12)), kind: .invalidDataOffsets,
             phrase: "tensor 'w': data_offsets [0, 16] run past the end of the data buffer (12 bytes)"),
        Case(label: "far past end of buffer", data: entry(#""dtype":"U8","shape":[4],"data_offsets":[9223372036854775800,9223372036854775804]"#),
             kind: .invalidDataOffsets, phrase: "run past the end of the data buffer (16 bytes)"),
        Case(label: "byte count mismatch", data: entry(#""dtype":"F32","shape":[2,2],"data_offsets":[0,12]"#), kind: .invalidDataOffsets,
             phrase: "tensor 'w': dtype F32 with shape [2, 2] needs 16 bytes but data_offsets [0, 12] hold 12"),
        Case(label: "scalar with no bytes", data: entry(#""dtype":"F64","shape":[],"data_offsets":[0,0]"#), kind: .invalidDataOffsets,
             phrase: "dtype F64 with shape [] needs 8 bytes but data_offsets [0, 0] hold 0"),
        Case(label: "overlapping tensors",
             data: file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                        data: Array(repeating: 0, count: 12)),
             kind: .invalidDataOffsets, phrase: "tensors 'a' (data_offsets [0, 8]) and 'b' (data_offsets [4, 12]) overlap"),
        Case(label: "identical ranges",
             data: file(#"{"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}"#,
                        data: Array(repeating: 0, count: 4)),
             kind: .invalidDataOffsets, phrase: "overlap"),
        Case(label: "nested overlap",
             data: file(#"{"big":{"dtype":"U8","shape":[10],"data_offsets":[0,10]},"x":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"y":{"dtype":"U8","shape":[2],"data_offsets":[5,7]}}"#,
                        data: Array(repeating: 0, count: 10)),
             kind: .invalidDataOffsets, phrase: "tensors 'big' (data_offsets [0, 10]) and 'x' (data_offsets [2, 3]) overlap"),
    ]

    func testMalformedInputsAreRejectedWithClearErrors() {
        for testCase in Self.cases {
            XCTAssertThrowsError(try SafeTensorsFile(data: testCase.data), testCase.label) { error in
                guard let error = error as? SafeTensorsError else {
                    return XCTFail("\(testCase.label): not a SafeTensorsError: \(error)")
                }
                XCTAssertEqual(error.kind, testCase.kind, "\(testCase.label): \(error)")
                XCTAssertTrue(error.description.contains(testCase.phrase),
                              "\(testCase.label): expected “\(testCase.phrase)” in “\(error.description)”")
                XCTAssertNil(error.path)
            }
        }
    }

    func testMalformedFileErrorsIncludeThePath() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("malformed-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Self.entry(#""dtype":"F32","shape":[2,2],"data_offsets":[0,12]"#).write(to: url)
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url)) { error in
            XCTAssertEqual("\(error)", "\(url.path): tensor 'w': dtype F32 with shape [2, 2] needs 16 bytes but data_offsets [0, 12] hold 12")
        }
    }

    // MARK: accepted on purpose

    func testLenientButWellDefinedInputsAreAccepted() throws {
        // Gaps between tensors and unused trailing bytes (padding) are allowed.
        let gappy = try SafeTensorsFile(data: Self.file(
            #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
            data: [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3F, 0xEE, 0xEE]))
        XCTAssertEqual(try gappy.tensor("a").int64s(), [7])
        XCTAssertEqual(try gappy.tensor("b").floats(), [1])

        // An empty tensor occupies no bytes, so sitting inside another's range is not an overlap.
        let empty = try SafeTensorsFile(data: Self.file(
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#,
            data: Array(repeating: 0, count: 8)))
        XCTAssertEqual(try empty.tensor("e").shape, [0])

        // Whitespace around the JSON, "__metadata__": null, unknown extra fields, escapes in names.
        let relaxed = try SafeTensorsFile(data: Self.file(
            " \n{\"__metadata__\": null, \"caf\\u00e9\\n\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4], \"extra\": [1, {}]}}\t  ",
            data: [0, 0, 0x80, 0x3F]))
        XCTAssertEqual(relaxed.metadata, [:])
        XCTAssertEqual(try relaxed.tensor("café\n").floats(), [1])

        // A surrogate pair escape decodes to one scalar.
        let pair = try SafeTensorsFile(data: Self.file(#"{"__metadata__":{"clef":"\ud834\udd1e"}}"#))
        XCTAssertEqual(pair.metadata["clef"], "𝄞")

        // No tensors at all.
        XCTAssertEqual(try SafeTensorsFile(data: Self.file("{}")), SafeTensorsFile())
    }

    // MARK: fuzz

    /// Truncating a valid file anywhere, or corrupting random bytes, must throw or parse, never trap.
    func testTruncationsAndMutationsNeverTrap() throws {
        let valid = try SafeTensorsFile(metadata: ["k": "v"], tensors: [
            "w": try SafeTensor([1, 2, 3, 4] as [Float], shape: [2, 2]),
            "b": try SafeTensor(bfloat16: [1, 2], shape: [2]),
            "n": try SafeTensor([7] as [Int64], shape: []),
        ]).serialized()

        for length in 0..<valid.count {
            XCTAssertThrowsError(try SafeTensorsFile(data: valid.prefix(length)), "truncated to \(length)") { error in
                XCTAssertTrue(error is SafeTensorsError)
            }
        }

        let structural = Array(#"{}[]",:0-9e."#.utf8)
        var rng = SplitMix64(seed: 42)
        let headerEnd = 8 + Int(valid[0]) + Int(valid[1]) << 8
        var parsed = 0
        for _ in 0..<5_000 {
            var bytes = [UInt8](valid)
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                // Mostly hit the header, where the structure is.
                let index = rng.next() % 4 == 0 ? Int(rng.next() % UInt64(bytes.count)) : Int(rng.next() % UInt64(headerEnd))
                bytes[index] = rng.next() % 2 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : structural[Int(rng.next() % UInt64(structural.count))]
            }
            do {
                _ = try SafeTensorsFile(data: Data(bytes))
                parsed += 1
            } catch {
                XCTAssertTrue(error is SafeTensorsError, "\(error)")
            }
        }
        XCTAssertGreaterThan(parsed, 0, "some mutations (e.g. in tensor data) still parse")
    }
}
