// RoundTripTests.swift — writes SafeTensorsFiles to bytes and reads them back: every dtype,
// metadata, empty and scalar tensors, awkward names; plus the typed initialisers and the
// floats()/doubles()/int64s() conversions, and the errors of the in-memory API.

import Foundation
import XCTest
@testable import SafeTensors

final class RoundTripTests: XCTestCase {
    /// Little-endian bytes of fixed-width integers.
    static func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { value in (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    }

    func roundTrip(_ file: SafeTensorsFile, file line: UInt = #line) throws -> SafeTensorsFile {
        let data = try file.serialized()
        let back = try SafeTensorsFile(data: data)
        XCTAssertEqual(back, file, line: line)
        XCTAssertEqual(try back.serialized(), data, "re-serialising is byte-identical", line: line)
        return back
    }

    /// One tensor of every dtype in one file, with values checked through the conversions.
    func testEveryDTypeRoundTrips() throws {
        let f64 = try SafeTensor([0.1, -1e300, .pi, -0.0, .infinity, .leastNonzeroMagnitude], shape: [2, 3])
        let f32 = try SafeTensor([1, -2.5, .greatestFiniteMagnitude, .leastNonzeroMagnitude, -.infinity, 1e-30] as [Float], shape: [3, 2])
        let f16 = try SafeTensor(float16: [1, -0.5, 65504, 0x1p-24, .infinity, -0.0], shape: [6])
        let bf16 = try SafeTensor(bfloat16: [1, -2, 3.140625, 0x1p-133], shape: [2, 2])
        let i64 = try SafeTensor([0, -1, .max, .min], shape: [4])
        let i32 = try SafeTensor(dtype: .I32, shape: [3], bytes: Self.le([Int32.min, -7, Int32.max]))
        let i16 = try SafeTensor(dtype: .I16, shape: [1, 3], bytes: Self.le([Int16.min, 300, Int16.max]))
        let i8 = try SafeTensor(dtype: .I8, shape: [3], bytes: Self.le([Int8.min, -1, Int8.max]))
        let u8 = try SafeTensor(dtype: .U8, shape: [3], bytes: [0, 128, 255])
        let bool = try SafeTensor(dtype: .BOOL, shape: [3], bytes: [1, 0, 1])
        let file = SafeTensorsFile(metadata: ["k": "v"], tensors: [
            "f64": f64, "f32": f32, "f16": f16, "bf16": bf16, "i64": i64,
            "i32": i32, "i16": i16, "i8": i8, "u8": u8, "bool": bool,
        ])
        XCTAssertEqual(Set(file.tensors.values.map(\.dtype)), Set(SafeTensorsDType.allCases), "covers every dtype")

        let back = try roundTrip(file)
        XCTAssertEqual(try back.tensor("f64").doubles(), [0.1, -1e300, .pi, -0.0, .infinity, .leastNonzeroMagnitude])
        XCTAssertEqual(try back.tensor("f32").floats(), [1, -2.5, .greatestFiniteMagnitude, .leastNonzeroMagnitude, -.infinity, 1e-30])
        XCTAssertEqual(try back.tensor("f16").floats(), [1, -0.5, 65504, 0x1p-24, .infinity, -0.0])
        XCTAssertEqual(try back.tensor("bf16").floats(), [1, -2, 3.140625, 0x1p-133])
        XCTAssertEqual(try back.tensor("i64").int64s(), [0, -1, .max, .min])
        XCTAssertEqual(try back.tensor("i32").int64s(), [Int64(Int32.min), -7, Int64(Int32.max)])
        XCTAssertEqual(try back.tensor("i16").int64s(), [-32768, 300, 32767])
        XCTAssertEqual(try back.tensor("i8").int64s(), [-128, -1, 127])
        XCTAssertEqual(try back.tensor("u8").int64s(), [0, 128, 255])
        XCTAssertEqual(try back.tensor("bool").int64s(), [1, 0, 1])
        XCTAssertEqual(try back.tensor("i16").shape, [1, 3])
        XCTAssertEqual(try back.tensor("f64").elementCount, 6)
    }

    func testFloatBitPatternsSurviveExactly() throws {
        let nanWithPayload = Float(bitPattern: 0x7FA0_1234)
        let values: [Float] = [nanWithPayload, -0.0, 0x1p-149, .ulpOfOne, -.nan]
        let tensor = try SafeTensor(values, shape: [5])
        let back = try roundTrip(SafeTensorsFile(tensors: ["x": tensor]))
        XCTAssertEqual(try back.tensor("x").floats().map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(Array(tensor.bytes[0..<4]), [0x34, 0x12, 0xA0, 0x7F], "stored little-endian")
    }

    func testConversionsBetweenTypes() throws {
        let f64 = try SafeTensor([1.5, 1e300, 0.1], shape: [3])
        XCTAssertEqual(try f64.floats(), [1.5, .infinity, 0.1])
        let f32 = try SafeTensor([Float(0.1), 2], shape: [2])
        XCTAssertEqual(try f32.doubles(), [Double(Float(0.1)), 2])
        let f16 = try SafeTensor(float16: [0.1, 3], shape: [2])
        XCTAssertEqual(try f16.doubles(), [0.0999755859375, 3])
        XCTAssertEqual(try f16.floats(), [0.0999755859375, 3])
        let bf16 = try SafeTensor(bfloat16: [0.1], shape: [])
        XCTAssertEqual(try bf16.floats(), [0.10009765625])
        let i64 = try SafeTensor([Int64(1) << 53 + 1, -3], shape: [2])
        XCTAssertEqual(try i64.doubles(), [0x1p53, -3])
        XCTAssertEqual(try i64.floats(), [0x1p53, -3])
        let bool = try SafeTensor(dtype: .BOOL, shape: [3], bytes: [0, 1, 7])
        XCTAssertEqual(try bool.floats(), [0, 1, 1])
        XCTAssertEqual(try bool.doubles(), [0, 1, 1])
        XCTAssertEqual(try bool.int64s(), [0, 1, 1])
        let i8 = try SafeTensor(dtype: .I8, shape: [2], bytes: [0xFF, 0x80])
        XCTAssertEqual(try i8.floats(), [-1, -128])
        let u8 = try SafeTensor(dtype: .U8, shape: [2], bytes: [0xFF, 0x80])
        XCTAssertEqual(try u8.doubles(), [255, 128])
    }

    func testInt64sRejectsFloatingPoint() {
        for dtype in SafeTensorsDType.allCases where dtype.isFloatingPoint {
            let tensor = try! SafeTensor(dtype: dtype, shape: [1], bytes: Array(repeating: 0, count: dtype.byteSize))
            XCTAssertThrowsError(try tensor.int64s()) { error in
                XCTAssertEqual((error as? SafeTensorsError)?.kind, .unsupportedConversion)
                XCTAssertTrue("\(error)".contains("cannot read a \(dtype.rawValue) tensor as Int64"), "\(error)")
            }
        }
    }

    func testEmptyAndScalarTensors() throws {
        let file = SafeTensorsFile(tensors: [
            "empty": try SafeTensor([Float](), shape: [0]),
            "empty3d": try SafeTensor(dtype: .F64, shape: [2, 0, 3], bytes: []),
            "emptyBool": try SafeTensor(dtype: .BOOL, shape: [0], bytes: []),
            "scalar": try SafeTensor([42.5], shape: []),
            "scalarI8": try SafeTensor(dtype: .I8, shape: [], bytes: [0xFE]),
        ])
        let back = try roundTrip(file)
        XCTAssertEqual(try back.tensor("empty3d").shape, [2, 0, 3])
        XCTAssertEqual(try back.tensor("empty3d").elementCount, 0)
        XCTAssertEqual(try back.tensor("empty").floats(), [])
        XCTAssertEqual(try back.tensor("scalar").shape, [])
        XCTAssertEqual(try back.tensor("scalar").elementCount, 1)
        XCTAssertEqual(try back.tensor("scalar").doubles(), [42.5])
        XCTAssertEqual(try back.tensor("scalarI8").int64s(), [-2])
    }

    func testEmptyFileAndMetadataOnlyFile() throws {
        let empty = SafeTensorsFile()
        let data = try empty.serialized()
        XCTAssertEqual(data.count, 16, "8-byte size + \"{}\" padded to 8")
        XCTAssertEqual(try SafeTensorsFile(data: data), empty)
        _ = try roundTrip(SafeTensorsFile(metadata: ["only": "metadata"]))
    }

    func testMetadataAndNamesWithAwkwardCharacters() throws {
        let metadata = [
            "format": "pt",
            "quote\"back\\slash": "line\nbreak\ttab\r\u{01}\u{1F}",
            "unicode": "héllo ✓ 𝄞 日本",
            "": "empty key",
            "emptyValue": "",
            "json": #"{"nested": [1, 2]}"#,
        ]
        let tensor = try SafeTensor([1.0], shape: [1])
        let names = ["a.b.weight", "名前", "with \"quotes\"", "back\\slash", "tab\there", "", "/"]
        let file = SafeTensorsFile(metadata: metadata, tensors: Dictionary(uniqueKeysWithValues: names.map { ($0, tensor) }))
        let back = try roundTrip(file)
        XCTAssertEqual(back.metadata, metadata)
        XCTAssertEqual(Set(back.tensors.keys), Set(names))
    }

    func testTypedInitialisersCheckShape() {
        XCTAssertThrowsError(try SafeTensor([Float](repeating: 0, count: 5), shape: [2, 3])) { error in
            XCTAssertTrue("\(error)".contains("shape [2, 3] holds 6 elements but 5 values were given"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensor([1.0], shape: [-1])) { error in
            XCTAssertTrue("\(error)".contains("negative dimension (-1)"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensor([Int64](), shape: [Int.max, 2])) { error in
            XCTAssertTrue("\(error)".contains("more elements than Int can count"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensor(float16: [1], shape: [2])) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .invalidTensor)
        }
        XCTAssertThrowsError(try SafeTensor(bfloat16: [1, 2, 3], shape: [])) { error in
            XCTAssertTrue("\(error)".contains("holds 1 elements but 3 values"), "\(error)")
        }
    }

    func testRawInitialiserChecksByteCount() {
        XCTAssertThrowsError(try SafeTensor(dtype: .F32, shape: [2, 2], bytes: [UInt8](repeating: 0, count: 12))) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .invalidTensor)
            XCTAssertTrue("\(error)".contains("dtype F32 with shape [2, 2] needs 16 bytes but has 12"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensor(dtype: .I64, shape: [Int.max / 4], bytes: [])) { error in
            XCTAssertTrue("\(error)".contains("more elements than Int can count"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensor(dtype: .U8, shape: [3, -2], bytes: [])) { error in
            XCTAssertTrue("\(error)".contains("negative dimension (-2)"), "\(error)")
        }
    }

    func testEditedTensorsAreRecheckedBeforeUse() throws {
        var tensor = try SafeTensor([1, 2, 3, 4] as [Float], shape: [4])
        tensor.shape = [5]
        XCTAssertEqual(tensor.elementCount, 5)
        XCTAssertThrowsError(try tensor.floats())
        XCTAssertThrowsError(try SafeTensorsFile(tensors: ["w": tensor]).serialized()) { error in
            XCTAssertTrue("\(error)".contains("tensor 'w': dtype F32 with shape [5] needs 20 bytes but has 16"), "\(error)")
        }
        tensor.shape = [-4]
        XCTAssertEqual(tensor.elementCount, 0)
        XCTAssertThrowsError(try tensor.doubles())
    }

    func testReservedMetadataNameCannotBeATensor() throws {
        let file = SafeTensorsFile(tensors: ["__metadata__": try SafeTensor([1.0], shape: [1])])
        XCTAssertThrowsError(try file.serialized()) { error in
            XCTAssertTrue("\(error)".contains("reserved for metadata"), "\(error)")
        }
    }

    func testSubscriptAndLookup() throws {
        var file = SafeTensorsFile()
        XCTAssertNil(file["w"])
        file["w"] = try SafeTensor([1, 2] as [Float], shape: [2])
        file["b"] = try SafeTensor([3] as [Float], shape: [1])
        XCTAssertEqual(try file.tensor("w").floats(), [1, 2])
        file["b"] = nil
        XCTAssertNil(file["b"])
        XCTAssertThrowsError(try file.tensor("missing.weight")) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .missingTensor)
            XCTAssertTrue("\(error)".contains("no tensor named 'missing.weight' (available: 'w')"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensorsFile().tensor("x")) { error in
            XCTAssertTrue("\(error)".contains("no tensor named 'x' (the file has no tensors)"), "\(error)")
        }
    }

    func testSerializationIsDeterministic() throws {
        var tensors: [String: SafeTensor] = [:]
        for index in 0..<50 { tensors["t\(index)"] = try SafeTensor([Float(index)], shape: [1]) }
        let a = try SafeTensorsFile(metadata: ["x": "1", "y": "2", "z": "3"], tensors: tensors).serialized()
        let b = try SafeTensorsFile(metadata: ["z": "3", "y": "2", "x": "1"], tensors: tensors).serialized()
        XCTAssertEqual(a, b)
    }

    /// Data slices (non-zero startIndex) parse like whole Data.
    func testParsesDataSlice() throws {
        let file = SafeTensorsFile(tensors: ["x": try SafeTensor([1, 2, 3] as [Float], shape: [3])])
        let padded = Data([9, 9, 9]) + (try file.serialized()) + Data([7])
        let slice = padded[3..<(padded.count - 1)]
        XCTAssertEqual(try SafeTensorsFile(data: slice), file)
    }
}
