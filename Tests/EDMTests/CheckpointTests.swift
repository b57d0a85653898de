// Checkpoints: round trip with EDM's keys and metadata, and strict loading (missing,
// unexpected, mis-shaped keys; resample filters; config in the metadata or given).
import DMD2Core
import EDM
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class CheckpointTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("edm-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func tinyNet() -> UNet<Float> {
        unet(tinyConfig, values: randomParameterValues(tinyConfig.layout.stateEntries, seed: 1))
    }

    func assertError(_ kind: CheckpointError.Kind, key: String, _ body: () throws -> Void, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            guard let e = error as? CheckpointError else { return XCTFail("not a CheckpointError: \(error)", line: line) }
            XCTAssertEqual(e.kind, kind, "\(e)", line: line)
            XCTAssertEqual(e.key, key, "\(e)", line: line)
            XCTAssertTrue(e.description.contains(key), "message should name the key: \(e)", line: line)
        }
    }

    func testRoundTrip() throws {
        let net = tinyNet()
        let url = directory.appendingPathComponent("tiny.safetensors")
        try EDMCheckpoint.save(net, to: url, step: 1234, metadata: ["note": "test"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["tiny.safetensors"])  // no temp file left
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(Set(file.tensors.keys), Set(tinyConfig.layout.stateEntries.map(\.name)))
        XCTAssertEqual(file.metadata["format"], "swift-dmd2.edm-unet")
        XCTAssertEqual(file.metadata["step"], "1234")
        XCTAssertEqual(try file.tensor("model.enc.4x4_down.skip.resample_filter").floats(), [0.25, 0.25, 0.25, 0.25])

        let loaded: LoadedCheckpoint<Float> = try EDMCheckpoint.load(from: url)
        XCTAssertEqual(loaded.net.config, tinyConfig)
        XCTAssertEqual(loaded.step, 1234)
        XCTAssertEqual(loaded.metadata["note"], "test")
        XCTAssertEqual(loaded.net.parameters.names, net.parameters.names)
        for name in net.parameters.names { XCTAssertEqual(loaded.net.parameters[name].value, net.parameters[name].value, name) }
        // Float values load exactly into Double.
        let asDouble: LoadedCheckpoint<Double> = try EDMCheckpoint.load(from: url, config: tinyConfig)
        XCTAssertEqual(asDouble.net.parameters["model.map_label.weight"].value, net.parameters["model.map_label.weight"].value.converted())
    }

    func testStrictLoading() throws {
        let good = try EDMCheckpoint.file(tinyNet(), step: 5)

        var missing = good
        missing["model.dec.4x4_in0.qkv.bias"] = nil
        assertError(.missingKey, key: "model.dec.4x4_in0.qkv.bias") { let _: LoadedCheckpoint<Float> = try EDMCheckpoint.load(missing) }

        var unexpected = good
        unexpected["model.dec.4x4_in1.qkv.weight"] = try SafeTensor([Float](repeating: 0, count: 4), shape: [4])
        assertError(.unexpectedKey, key: "model.dec.4x4_in1.qkv.weight") { let _: LoadedCheckpoint<Float> = try EDMCheckpoint.load(unexpected) }

        var misshaped = good
        misshaped["model.map_label.weight"] = try SafeTensor([Float](repeating: 0, count: 48), shape: [3, 16])
        assertError(.shapeMismatch, key: "model.map_label.weight") { let _: LoadedCheckpoint<Float> = try EDMCheckpoint.load(misshaped) }

        var badFilter = good
        badFilter["model.dec.8x8_up.conv0.resample_filter"] = try SafeTensor([Float](repeating: 1, count: 4), shape: [1, 1, 2, 2])
        assertError(.badResampleFilter, key: "model.dec.8x8_up.conv0.resample_filter") { let _: LoadedCheckpoint<Float> = try EDMCheckpoint.load(badFilter) }

        // Resample filters are optional.
        var noFilters = good
        for key in noFilters.tensors.keys where key.hasSuffix("resample_filter") { noFilters[key] = nil }
        XCTAssertNoThrow(try { let _: LoadedCheckpoint<Float> = try EDMCheckpoint.load(noFilters) }())

        // Config: from the metadata, or given for files without it (converted EDM checkpoints).
        var noConfig = good
        noConfig.metadata["config"] = nil
        assertError(.missingConfig, key: "config") { let _: LoadedCheckpoint<Float> = try EDMCheckpoint.load(noConfig) }
        XCTAssertNoThrow(try { let _: LoadedCheckpoint<Float> = try EDMCheckpoint.load(noConfig, config: tinyConfig) }())
        var other = tinyConfig
        other.dropout = 0.1
        assertError(.configMismatch, key: "config") { let _: LoadedCheckpoint<Float> = try EDMCheckpoint.load(good, config: other) }
        // Another layout entirely: the first foreign key (in sorted order) is reported.
        assertError(.unexpectedKey, key: "model.dec.4x4_block0.affine.bias") {
            let _: ParameterStore<Float> = try EDMCheckpoint.parameters(from: noConfig, layout: UNetConfig.small16.layout)
        }
    }
}
