// `dmd2 convert` without Python (issue 16, part 6): DMD2 `.bin` files written by torch.save
// (reference/make_convert_fixtures.py) convert to exactly what reference/convert_dmd2_bin.py
// writes (edm_tiny_from_bin.safetensors), EDM `.pkl` snapshots (reference/make_edm_pkl_fixtures.py)
// to exactly what reference/convert_edm_pkl.py writes (snapshot_expected.safetensors), and
// malformed ones are refused with clear errors.
import DMD2Core
import DMD2Data
@testable import EDM
import EDMConvert
import Foundation
import SafeTensors
import XCTest

final class ConvertTests: XCTestCase {
    private func convertFixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Resources/convert/\(name)", withExtension: "bin"),
                      "Tests/EDMTests/Resources/convert/\(name).bin is missing (reference/make_convert_fixtures.py)")
    }

    private func reference() throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: XCTUnwrap(Bundle.module.url(forResource: "edm_tiny_from_bin", withExtension: "safetensors",
                                                                    subdirectory: "Resources")))
    }

    private let tinyConfig = UNetConfig(
        resolution: 8, inChannels: 2, outChannels: 2, labelDim: 3, modelChannels: 4,
        channelMult: [1, 2], channelMultEmb: 2, numBlocks: 1, attnResolutions: [4], dropout: 0.10, labelDropout: 0)

    func testBinConvertsBitForBitLikeThePythonConverter() throws {
        var notes: [String] = []
        let (file, config) = try DMD2BinConverter.convert(try convertFixture("prefixed")) { notes.append($0) }
        XCTAssertEqual(config, tinyConfig)
        XCTAssertTrue(notes.contains { $0.contains("prefix 'feedforward_model.model.'") }, "\(notes)")
        let expected = try reference()
        XCTAssertEqual(Set(file.tensors.keys), Set(expected.tensors.keys))
        for (name, record) in expected.tensors {
            XCTAssertEqual(file.tensors[name], record, "\(name) differs from convert_dmd2_bin.py's output")
        }
        // The same config (Python writes 0.0 where Swift's encoder writes 0).
        let decode = { (json: String?) in try JSONDecoder().decode(UNetConfig.self, from: Data((json ?? "").utf8)) }
        XCTAssertEqual(try decode(file.metadata["config"]), try decode(expected.metadata["config"]))
        XCTAssertEqual(file.metadata["format"], EDMCheckpoint.format)
        // What it wrote loads as a network.
        let loaded: LoadedCheckpoint<Float> = try EDMCheckpoint.load(file)
        XCTAssertEqual(loaded.net.config, tinyConfig)
    }

    func testHalfPrecisionIsWidenedExactly() throws {
        let (file, _) = try DMD2BinConverter.convert(try convertFixture("half"))
        let expected = try reference()
        for (name, record) in expected.tensors {
            let want = try record.floats().map { Float(Float16($0)) }
            XCTAssertEqual(try file.tensors[name]?.floats(), want, name)
        }
    }

    func testNestedFileWithTwoNetworksNeedsAPrefix() throws {
        let url = try convertFixture("nested_two")
        XCTAssertThrowsError(try DMD2BinConverter.convert(url)) { error in
            XCTAssertTrue("\(error)".contains("--prefix"), "\(error)")
        }
        XCTAssertThrowsError(try DMD2BinConverter.convert(url, prefix: "feedforward_model.model.")) { error in
            XCTAssertTrue("\(error)".contains("149 unknown keys: guidance_model.fake_unet.model."), "unknown keys are named: \(error)")
        }
        var notes: [String] = []
        let (file, _) = try DMD2BinConverter.convert(url, prefix: "feedforward_model.model.", ignoreUnknown: true) { notes.append($0) }
        XCTAssertTrue(notes.contains("using the nested dict under 'state_dict'"), "\(notes)")
        for (name, record) in try reference().tensors { XCTAssertEqual(file.tensors[name], record, name) }
    }

    func testUnknownGlobalIsRefusedAndNothingRuns() throws {
        XCTAssertThrowsError(try DMD2BinConverter.convert(try convertFixture("evil_global"))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("posix.system") && text.contains("refus"), text)
            XCTAssertTrue(text.contains("evil_global.bin"), "names the file: \(text)")
        }
    }

    func testTruncatedFilesAreRefused() throws {
        XCTAssertThrowsError(try DMD2BinConverter.convert(try convertFixture("truncated"))) { error in
            XCTAssertTrue("\(error)".contains("not a readable zip"), "\(error)")
        }
        XCTAssertThrowsError(try DMD2BinConverter.convert(try convertFixture("truncated_pickle"))) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
    }

    func testInferConfigErrorsNameTheProblem() {
        XCTAssertThrowsError(try UNetConfig.infer(fromShapes: ["model.x": [1]])) { error in
            XCTAssertTrue("\(error)".contains("map_layer0"), "\(error)")
        }
    }

    /// An F32 tensor relabelled I32 (same byte length) is refused naming the tensor (part 5).
    func testIntegerDtypeInACheckpointIsRefused() throws {
        let good = try reference()
        var bad = good
        let name = "model.enc.8x8_conv.weight"
        let record = try XCTUnwrap(good.tensors[name])
        bad.tensors[name] = try SafeTensor(dtype: .I32, shape: record.shape, bytes: record.bytes)
        XCTAssertThrowsError(try EDMCheckpoint.load(bad, as: Float.self)) { error in
            XCTAssertTrue("\(error)".contains(name) && "\(error)".contains("I32"), "\(error)")
        }
        XCTAssertThrowsError(try bad.tensor(name, as: Float.self) as Tensor<Float>) { error in
            XCTAssertTrue("\(error)".contains("tensor '\(name)'"), "\(error)")
        }
    }

    /// F16 ↔ BF16 relabels cannot be seen in the bytes (2 bytes per value either way, every bit
    /// pattern a number in both); a whole file relabelled is caught by its resample filters,
    /// which must decode to 0.25 (docs/DATA.md).
    func testHalfRelabelledBFloat16IsCaughtByTheResampleFilters() throws {
        var half = SafeTensorsFile(metadata: try reference().metadata)
        for (name, record) in try reference().tensors { half.tensors[name] = try SafeTensor(float16: try record.floats(), shape: record.shape) }
        XCTAssertNoThrow(try EDMCheckpoint.load(half, as: Float.self), "the F16 file itself loads")
        for (from, to) in [(SafeTensorsDType.F16, SafeTensorsDType.BF16), (.BF16, .F16)] {
            var relabelled = half
            for (name, record) in half.tensors {
                let source = from == .F16 ? record : try SafeTensor(bfloat16: try record.floats(), shape: record.shape)
                relabelled.tensors[name] = try SafeTensor(dtype: to, shape: source.shape, bytes: source.bytes)
            }
            XCTAssertThrowsError(try EDMCheckpoint.load(relabelled, as: Float.self), "\(from) relabelled \(to)") { error in
                XCTAssertTrue("\(error)".contains("resample_filter") && "\(error)".contains("a resample filter is 0.25"), "\(error)")
            }
        }
    }

    // MARK: EDM network snapshots (.pkl)

    private func snapshotFixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Resources/convert/\(name)", withExtension: "pkl"),
                      "Tests/EDMTests/Resources/convert/\(name).pkl is missing (reference/make_edm_pkl_fixtures.py)")
    }

    func testPklConvertsBitForBitLikeThePythonConverter() throws {
        var notes: [String] = []
        let (file, config) = try EDMPickleConverter.convert(try snapshotFixture("snapshot")) { notes.append($0) }
        // Structure from the shapes, dropout 0.10 and label dropout 0.1 from what the pickle records.
        var want = tinyConfig
        want.labelDropout = 0.1
        XCTAssertEqual(config, want)
        XCTAssertTrue(notes.contains { $0.contains("'ema': EDMPrecond with 149 state-dict tensors") }, "\(notes)")
        XCTAssertTrue(notes.contains("dropout 0.1 (from the pickle), label dropout 0.1 (from the pickle)"), "\(notes)")
        let expected = try SafeTensorsFile(contentsOf: XCTUnwrap(Bundle.module.url(forResource: "Resources/convert/snapshot_expected",
                                                                                   withExtension: "safetensors")))
        XCTAssertEqual(Set(file.tensors.keys), Set(expected.tensors.keys))
        for (name, record) in expected.tensors {
            XCTAssertEqual(file.tensors[name], record, "\(name) differs from convert_edm_pkl.py's output")
        }
        let decode = { (json: String?) in try JSONDecoder().decode(UNetConfig.self, from: Data((json ?? "").utf8)) }
        XCTAssertEqual(try decode(file.metadata["config"]), try decode(expected.metadata["config"]))
        XCTAssertEqual(try decode(file.metadata["config"]), want)
        XCTAssertEqual(file.metadata["source"], "snapshot.pkl")
        // The same weights as the tiny network's other conversions, and it loads as a network.
        for (name, record) in try reference().tensors { XCTAssertEqual(file.tensors[name], record, name) }
        let loaded: LoadedCheckpoint<Float> = try EDMCheckpoint.load(file)
        XCTAssertEqual(loaded.net.config, want)
    }

    func testPklGivenDropoutReplacesTheRecordedOne() throws {
        let (_, config) = try EDMPickleConverter.convert(try snapshotFixture("snapshot"), dropout: 0.2, labelDropout: 0)
        XCTAssertEqual(config.dropout, 0.2)
        XCTAssertEqual(config.labelDropout, 0)
        XCTAssertThrowsError(try EDMPickleConverter.convert(try snapshotFixture("snapshot"), entry: "generator")) { error in
            XCTAssertTrue("\(error)".contains("no 'generator' entry; entries: ema, loss_fn, augment_pipe, dataset_kwargs"), "\(error)")
        }
    }

    func testPklUnknownGlobalIsRefusedAndNothingRuns() throws {
        XCTAssertThrowsError(try EDMPickleConverter.convert(try snapshotFixture("snapshot_evil_global"))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("refusing global posix.system at byte"), text)
            XCTAssertTrue(text.contains("snapshot_evil_global.pkl"), "names the file: \(text)")
        }
    }

    func testPklTruncatedAndBadStorageAreRefused() throws {
        XCTAssertThrowsError(try EDMPickleConverter.convert(try snapshotFixture("snapshot_truncated"))) { error in
            XCTAssertTrue("\(error)".contains("snapshot_truncated.pkl: truncated pickle"), "\(error)")
        }
        XCTAssertThrowsError(try EDMPickleConverter.convert(try snapshotFixture("snapshot_bad_storage"))) { error in
            XCTAssertTrue("\(error)".contains("inconsistent storage sizes: the persistent id says 32 elements, the data's count 33"), "\(error)")
        }
        // A DMD2 .bin is not a snapshot, and says so.
        XCTAssertThrowsError(try EDMPickleConverter.convert(try convertFixture("prefixed"))) { error in
            XCTAssertTrue("\(error)".contains("a zip, not a plain pickle"), "\(error)")
        }
    }

    /// What EDM records must agree with the weights and with itself: snapshot.pkl with one
    /// recorded value changed in place (the first occurrence of each pattern: the UNet's
    /// attn_resolutions kwarg, the first block's dropout attribute, the network's sigma_data).
    func testPklRecordsThatDisagreeAreRefused() throws {
        let good = [UInt8](try Data(contentsOf: try snapshotFixture("snapshot")))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-pkl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func float(_ d: Double) -> [UInt8] { [0x47] + (0..<8).map { UInt8(truncatingIfNeeded: d.bitPattern >> (56 - 8 * UInt64($0))) } }
        func key(_ k: String) -> [UInt8] { [0x8C, UInt8(k.utf8.count)] + Array(k.utf8) + [0x94] }
        let cases: [(pattern: [UInt8], replacement: [UInt8], error: String)] = [
            (key("attn_resolutions") + [0x5D, 0x94, 0x4B, 0x04], key("attn_resolutions") + [0x5D, 0x94, 0x4B, 0x08],
             "'model' records attn_resolutions = 8, the weights say 4"),
            (float(0.1), float(0.2), "the pickle records dropout = 0.1 (init kwargs of 'model') and 0.2 (block 'model.enc.8x8_block0')"),
            (key("sigma_data") + float(0.5), key("sigma_data") + float(1.0), "sigma_data = 1.0; our preconditioning uses 0.5"),
        ]
        for (n, c) in cases.enumerated() {
            guard let at = (0...(good.count - c.pattern.count)).first(where: { good[$0..<($0 + c.pattern.count)].elementsEqual(c.pattern) }) else {
                XCTFail("pattern \(n) not in snapshot.pkl"); continue
            }
            var bad = good
            bad.replaceSubrange(at..<(at + c.pattern.count), with: c.replacement)
            let url = folder.appendingPathComponent("case\(n).pkl")
            try Data(bad).write(to: url)
            XCTAssertThrowsError(try EDMPickleConverter.convert(url)) { error in
                XCTAssertTrue("\(error)".contains(c.error), "case \(n): \(error)")
            }
        }
    }
}
