// The fuzzers (Fuzz.swift) on every parser of user files: safetensors (whole files and the
// JSON header alone), .npy headers, .npz / zip archives (NPZArchive, ImageNet64Dataset,
// EDMDataset), PNG, pickles, torch.save zips and EDM's network snapshots (plain pickles with
// inlined legacy storages). Each must return or throw a clear error.
import DMD2Core
@testable import DMD2Data
import Foundation
import SafeTensors
import XCTest

final class FuzzTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws { folder = try temporaryFolder(self) }

    private func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: fixture(path))) }

    /// Parse a file-based format: the bytes are written to one scratch file per case.
    private func viaFile(_ name: String, _ bytes: [UInt8], _ body: (URL) throws -> Void) throws {
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        try body(url)
    }

    func testSafeTensors() throws {
        var file = SafeTensorsFile(metadata: ["format": "fuzz", "config": "{\"a\": [1, 2]}"])
        file["w"] = try SafeTensor([Float](repeating: 0.5, count: 12), shape: [3, 4])
        file["d"] = try SafeTensor([1.0, -2.0], shape: [2])
        file["i"] = try SafeTensor([Int64(7), 8, 9], shape: [3])
        file["h"] = try SafeTensor(float16: [1, 2, 3, 4], shape: [2, 2])
        file["e"] = try SafeTensor([Float](), shape: [0, 5])
        let whole = [UInt8](try file.serialized())
        Fuzz.run("safetensors", seeds: [whole], cases: Fuzz.cases(default: 3000)) { input in
            let parsed = try SafeTensorsFile(data: Data(input))
            for record in parsed.tensors.values { _ = try? record.floats(); _ = try? Tensor<Float>(record) }
        }
        // The JSON header alone, with the size prefix fixed up, to reach deep into the parser.
        let headerLength = Int(whole[0]) | Int(whole[1]) << 8 | Int(whole[2]) << 16
        let header = Array(whole[8..<(8 + headerLength)]), body = Array(whole[(8 + headerLength)...])
        Fuzz.run("safetensors JSON header", seeds: [header], cases: Fuzz.cases(default: 3000)) { mutated in
            var input = [UInt8](repeating: 0, count: 8)
            for k in 0..<8 { input[k] = UInt8(truncatingIfNeeded: UInt64(mutated.count) >> (8 * UInt64(k))) }
            _ = try SafeTensorsFile(data: Data(input + mutated + body))
        }
    }

    func testNPYHeader() throws {
        let seeds = [NPYWriter.npy([UInt8](repeating: 3, count: 24), shape: [2, 12]),
                     NPYWriter.npy([Int64(1), 2, 3], shape: [3]),
                     try NPZArchive(url: fixture("npz/v2.npz")).rawMember("data")].map { [UInt8]($0) }
        Fuzz.run("npy header", seeds: seeds, cases: Fuzz.cases(default: 3000)) { input in
            let header = try NPYHeader.parse(Data(input), name: "fuzz.npy")
            _ = header.byteCount
        }
    }

    func testNPZ() throws {
        let seeds = [try bytes("npz/tiny8.npz"), try bytes("npz/tiny8_compressed.npz")]
        let cache = folder.appendingPathComponent("cache")
        Fuzz.run("npz", seeds: seeds, cases: Fuzz.cases(default: 1500)) { input in
            try viaFile("f.npz", input) { url in
                let npz = try NPZArchive(url: url)
                for name in npz.memberNames { _ = try? npz.read(name); _ = try? npz.integers(name); _ = try? npz.doubles(name) }
                let data = try ImageNet64Dataset(url: url, resolution: nil, classCount: nil, cacheDirectory: cache)
                for i in Set([0, data.count - 1]) where i >= 0 && i < data.count { _ = try data.item(i) }
            }
        }
    }

    func testEDMZip() throws {
        let seeds = [try bytes("edm/tiny.zip"), try bytes("edm/deflated.zip")]
        Fuzz.run("edm zip", seeds: seeds, cases: Fuzz.cases(default: 1000)) { input in
            try viaFile("f.zip", input) { url in
                let data = try EDMDataset(url: url)
                for i in 0..<data.count { _ = try? data.item(i) }
            }
        }
    }

    func testPNG() throws {
        let seeds = try ["png/rgb8.png", "png/grey8.png", "png/palette.png", "png/rgba8.png", "png/rgb16.png"].map(bytes)
        Fuzz.run("png", seeds: seeds, cases: Fuzz.cases(default: 3000)) { input in
            _ = try PNG.decode(Data(input), name: "fuzz.png")
        }
    }

    func testPickle() throws {
        let state = try TorchStateDict(url: fixture("torch/small_state.bin"))
        XCTAssertEqual(state.tensors.map(\.name), ["weight", "bias", "half", "strided"])
        let pickle = [UInt8](state.rawPickle)
        Fuzz.run("pickle", seeds: [pickle], cases: Fuzz.cases(default: 3000)) { input in
            var reader = PickleReader(Data(input))
            _ = try reader.run()
        }
        Fuzz.run("torch.save zip", seeds: [try bytes("torch/small_state.bin")], cases: Fuzz.cases(default: 1000)) { input in
            try viaFile("f.bin", input) { url in
                let s = try TorchStateDict(url: url)
                for (name, t) in s.tensors { _ = try? s.floats(name, t) }
            }
        }
    }

    func testEDMSnapshot() throws {
        let seed = try bytes("torch/small_snapshot.pkl")
        XCTAssertEqual(try EDMSnapshot(url: fixture("torch/small_snapshot.pkl")).tensors.count, 4)
        // The reader alone (no file), then the whole snapshot reader with every tensor's values.
        Fuzz.run("snapshot pickle", seeds: [seed], cases: Fuzz.cases(default: 2000)) { input in
            var reader = PickleReader(bytes: input, dialect: .plainSnapshot)
            _ = try reader.run()
        }
        Fuzz.run("edm snapshot", seeds: [seed], cases: Fuzz.cases(default: 1000)) { input in
            try viaFile("f.pkl", input) { url in
                let s = try EDMSnapshot(url: url)
                for (name, t) in s.tensors { _ = try? s.floats(name, t) }
            }
        }
    }
}
