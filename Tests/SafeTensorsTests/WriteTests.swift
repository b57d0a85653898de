// WriteTests.swift — the on-disk layout the writer produces (header padding, alignment and
// packing of data_offsets, storage order) and the file-level behaviour: atomic replacement,
// no temporary files left behind, and error messages that carry the file path.

import Foundation
import XCTest
@testable import SafeTensors

final class WriteTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafeTensorsTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func folderContents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    /// A file mixing every element size, with odd byte counts, to exercise the layout.
    func mixedFile() throws -> SafeTensorsFile {
        SafeTensorsFile(metadata: ["m": "x"], tensors: [
            "a_u8": try SafeTensor(dtype: .U8, shape: [3], bytes: [1, 2, 3]),
            "b_f16": try SafeTensor(float16: [1, 2, 3], shape: [3]),
            "c_f32": try SafeTensor([1, 2, 3] as [Float], shape: [3]),
            "d_f64": try SafeTensor([1, 2, 3] as [Double], shape: [3]),
            "e_bool": try SafeTensor(dtype: .BOOL, shape: [1], bytes: [1]),
            "f_i64": try SafeTensor([5] as [Int64], shape: [1]),
            "g_empty": try SafeTensor([Float](), shape: [0, 4]),
            "h_bf16": try SafeTensor(bfloat16: [1], shape: []),
            "i_i32": try SafeTensor(dtype: .I32, shape: [1], bytes: [1, 0, 0, 0]),
        ])
    }

    func testWrittenLayoutIsAlignedAndPacked() throws {
        let file = try mixedFile()
        let data = try file.serialized()
        let headerSize = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual((8 + headerSize) % 8, 0, "data buffer starts 8-byte aligned")
        let headerBytes = data[8..<(8 + headerSize)]
        XCTAssertEqual(headerBytes.first, UInt8(ascii: "{"))
        let trimmed = headerBytes.reversed().drop { $0 == UInt8(ascii: " ") }
        XCTAssertEqual(trimmed.first, UInt8(ascii: "}"), "header is padded with spaces only")

        // Read the header with Foundation's JSON parser, independently of ours.
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any])
        XCTAssertEqual(header["__metadata__"] as? [String: String], ["m": "x"])
        var ranges: [(name: String, begin: Int, end: Int)] = []
        for (name, value) in header where name != "__metadata__" {
            let entry = try XCTUnwrap(value as? [String: Any])
            let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
            let dtype = try XCTUnwrap(SafeTensorsDType(rawValue: try XCTUnwrap(entry["dtype"] as? String)))
            XCTAssertEqual(offsets[0] % dtype.byteSize, 0, "\(name) starts at a multiple of its element size")
            XCTAssertEqual(offsets[1] - offsets[0], file[name]?.bytes.count)
            XCTAssertEqual(Array(data[(8 + headerSize + offsets[0])..<(8 + headerSize + offsets[1])]), file[name]?.bytes)
            ranges.append((name, offsets[0], offsets[1]))
        }
        ranges.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        XCTAssertEqual(ranges.first?.begin, 0)
        for (previous, next) in zip(ranges, ranges.dropFirst()) {
            XCTAssertEqual(next.begin, previous.end, "packed without gaps: \(previous.name) → \(next.name)")
        }
        XCTAssertEqual(8 + headerSize + (ranges.last?.end ?? 0), data.count, "no trailing bytes")

        // Storage order: element size descending, then name.
        let order = SafeTensorsWriter.layout(file.tensors).map(\.name)
        XCTAssertEqual(order, ["d_f64", "f_i64", "c_f32", "g_empty", "i_i32", "b_f16", "h_bf16", "a_u8", "e_bool"])
    }

    func testWriteAndReadFile() throws {
        let url = folder.appendingPathComponent("model.safetensors")
        let file = try mixedFile()
        try file.write(to: url)
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url), file)
        XCTAssertEqual(try Data(contentsOf: url), try file.serialized())
        XCTAssertEqual(try folderContents(), ["model.safetensors"], "no temporary files left")
    }

    func testWriteReplacesExistingFileAtomically() throws {
        let url = folder.appendingPathComponent("ckpt.safetensors")
        try Data("old contents".utf8).write(to: url)
        for step in 0..<3 {
            let file = SafeTensorsFile(metadata: ["step": "\(step)"], tensors: ["w": try SafeTensor([Float(step)], shape: [1])])
            try file.write(to: url)
            XCTAssertEqual(try SafeTensorsFile(contentsOf: url).metadata["step"], "\(step)")
        }
        XCTAssertEqual(try folderContents(), ["ckpt.safetensors"], "no temporary files left")
    }

    func testWriteFailureLeavesNothingBehind() throws {
        // Destination is an existing folder: rename(2) fails after the temporary file is written.
        let target = folder.appendingPathComponent("iam_a_folder")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        XCTAssertThrowsError(try mixedFile().write(to: target)) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .io)
            XCTAssertTrue("\(error)".hasPrefix(target.path + ": "), "\(error)")
            XCTAssertTrue("\(error)".contains("cannot rename"), "\(error)")
        }
        XCTAssertEqual(try folderContents(), ["iam_a_folder"], "temporary file removed")

        // Destination folder does not exist.
        let missing = folder.appendingPathComponent("no/such/dir/x.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile().write(to: missing)) { error in
            XCTAssertTrue("\(error)".contains(missing.path), "\(error)")
            XCTAssertTrue("\(error)".contains("cannot create temporary file"), "\(error)")
        }
    }

    func testInvalidTensorWriteErrorNamesFile() throws {
        let url = folder.appendingPathComponent("bad.safetensors")
        var tensor = try SafeTensor([1.0], shape: [1])
        tensor.bytes.removeLast()
        XCTAssertThrowsError(try SafeTensorsFile(tensors: ["w": tensor]).write(to: url)) { error in
            XCTAssertTrue("\(error)".hasPrefix(url.path + ": tensor 'w'"), "\(error)")
        }
        XCTAssertEqual(try folderContents(), [])
    }

    func testReadErrorsNameTheFile() throws {
        let missing = folder.appendingPathComponent("absent.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: missing)) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .io)
            XCTAssertTrue("\(error)".hasPrefix(missing.path + ": cannot read file"), "\(error)")
        }
        let short = folder.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: short)
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: short)) { error in
            let error = error as? SafeTensorsError
            XCTAssertEqual(error?.path, short.path)
            XCTAssertEqual(error?.description, "\(short.path): file is 3 bytes, shorter than the 8-byte header-size prefix")
        }
    }
}
