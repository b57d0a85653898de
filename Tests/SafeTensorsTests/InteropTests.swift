// InteropTests.swift — reads Resources/interop.safetensors, written by the reference Python
// implementation (Hugging Face safetensors 0.8.0, see Resources/make_interop.py), and checks
// every tensor's dtype, shape and values, and the metadata, exactly.

import Foundation
import XCTest
@testable import SafeTensors

final class InteropTests: XCTestCase {
    func loadFixture() throws -> SafeTensorsFile {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "interop", withExtension: "safetensors", subdirectory: "Resources"),
                                "interop.safetensors missing from the test bundle")
        return try SafeTensorsFile(contentsOf: url)
    }

    func testReadsFileWrittenByPythonSafetensors() throws {
        let file = try loadFixture()
        XCTAssertEqual(file.metadata, ["format": "np", "source": "make_interop.py", "note": "héllo ✓ \"quoted\""])
        XCTAssertEqual(Set(file.tensors.keys),
                       ["f32", "f64", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "bool", "empty", "scalar"])

        func check(_ name: String, _ dtype: SafeTensorsDType, _ shape: [Int], line: UInt = #line) throws -> SafeTensor {
            let tensor = try file.tensor(name)
            XCTAssertEqual(tensor.dtype, dtype, name, line: line)
            XCTAssertEqual(tensor.shape, shape, name, line: line)
            return tensor
        }

        XCTAssertEqual(try check("f32", .F32, [2, 3]).floats(), [0, 1, -2.5, 3.25, 1e30, -1e-30])
        XCTAssertEqual(try check("f64", .F64, [3]).doubles(), [0.1, -1e300, .pi])

        let f16 = try check("f16", .F16, [2, 3]).floats()
        XCTAssertEqual(f16, [1, -0.5, 65504, 0x1p-24, .infinity, -0.0])
        XCTAssertEqual(f16[5].sign, .minus, "-0 keeps its sign")

        let bf16 = try check("bf16", .BF16, [2, 3]).floats()
        XCTAssertEqual(bf16, [1, -2, 3.140625, 0x1p-7, Float(bitPattern: 0x7F7F_0000), 0x1p-133])
        XCTAssertEqual(bf16[4], 3.3895313892515355e38)

        XCTAssertEqual(try check("i64", .I64, [4]).int64s(), [0, -1, 1 << 62, .min])
        XCTAssertEqual(try check("i32", .I32, [2, 2]).int64s(), [7, -8, Int64(Int32.max), Int64(Int32.min)])
        XCTAssertEqual(try check("i16", .I16, [3]).int64s(), [-32768, 0, 32767])
        XCTAssertEqual(try check("i8", .I8, [3]).int64s(), [-128, -1, 127])
        XCTAssertEqual(try check("u8", .U8, [3]).int64s(), [0, 128, 255])
        XCTAssertEqual(try check("bool", .BOOL, [3]).int64s(), [1, 0, 1])
        XCTAssertEqual(try check("empty", .F32, [0, 3]).floats(), [])
        XCTAssertEqual(try check("scalar", .F64, []).doubles(), [42.5])
    }

    /// Re-serialising with our writer round-trips, and packs the data buffer as tightly as the
    /// reference writer does (the order within one element size may differ: it sorts by dtype).
    func testRewritingKeepsTheDataBuffer() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "interop", withExtension: "safetensors", subdirectory: "Resources"))
        let original = try Data(contentsOf: url)
        let file = try SafeTensorsFile(data: original)
        let rewritten = try file.serialized()
        XCTAssertEqual(try SafeTensorsFile(data: rewritten), file)

        func dataBuffer(_ data: Data) -> [UInt8] {
            let headerSize = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            return Array(data[(data.startIndex + 8 + headerSize)...])
        }
        XCTAssertEqual(dataBuffer(rewritten).count, dataBuffer(original).count, "both packed without padding")
    }
}
