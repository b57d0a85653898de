// EDM network snapshots read by the restricted pickle reader (EDMSnapshot.swift): the small
// snapshot written by reference/make_edm_pkl_fixtures.py reads back as torch's state_dict(), and
// hostile pickles (made here byte by byte) are refused with errors that name the problem.
@testable import DMD2Data
import Foundation
import XCTest

final class EDMSnapshotTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws { folder = try temporaryFolder(self) }

    private func write(_ bytes: [UInt8], _ name: String = "hostile.pkl") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// SHORT_BINUNICODE of `s`.
    private func str(_ s: String) -> [UInt8] { [0x8C, UInt8(s.utf8.count)] + Array(s.utf8) }

    private func assertRefused(_ bytes: [UInt8], _ needles: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try write(bytes)
        XCTAssertThrowsError(try EDMSnapshot(url: url), file: file, line: line) { error in
            let text = "\(error)"
            for needle in needles { XCTAssertTrue(text.contains(needle), "'\(needle)' not in: \(text)", file: file, line: line) }
            XCTAssertTrue(text.contains("hostile.pkl"), "names the file: \(text)", file: file, line: line)
        }
    }

    func testSmallSnapshotReadsAsTorchStateDict() throws {
        let snapshot = try EDMSnapshot(url: fixture("torch/small_snapshot.pkl"))
        XCTAssertEqual(snapshot.entries, ["ema", "augment_pipe"])
        // torch's state_dict() order: own buffers (not the None one, not the non-persistent one), then sub-modules.
        XCTAssertEqual(snapshot.tensors.map(\.name), ["narrow", "strided", "layers.lin.weight", "layers.lin.bias"])
        XCTAssertEqual(snapshot.moduleClasses, ["": "Net", "layers": "torch.nn.modules.container.ModuleDict", "layers.lin": "Linear"])
        let values = try Dictionary(uniqueKeysWithValues: snapshot.tensors.map { ($0.name, try snapshot.floats($0.name, $0.tensor)) })
        XCTAssertEqual(values["layers.lin.weight"], (0..<12).map { Float($0) / 4 })
        XCTAssertEqual(values["layers.lin.bias"], [0, 0, 0])
        XCTAssertEqual(values["narrow"], [1, 2, 3, 4])                       // float16, widened
        XCTAssertEqual(snapshot.tensors.first { $0.name == "narrow" }?.tensor.dtype, "float16")
        // arange(12) as [4, 3], transposed: a [3, 4] view with strides (1, 3).
        XCTAssertEqual(snapshot.tensors.first { $0.name == "strided" }?.tensor.strides, [1, 3])
        XCTAssertEqual(values["strided"], [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11])
        // Recorded init kwargs, numpy scalars decoded from their bytes.
        guard case .float(let w)? = snapshot.initKwarg("init_weight", of: "layers.lin") else {
            return XCTFail("init_weight: \(String(describing: snapshot.initKwarg("init_weight", of: "layers.lin")))")
        }
        XCTAssertEqual(w, (1.0 / 3.0).squareRoot())
        guard case .int(-7)? = snapshot.initKwarg("seed", of: "layers.lin") else { return XCTFail("numpy int64 seed") }
        guard case .float(0.25)? = snapshot.setting("label_dropout", of: "") else { return XCTFail("label_dropout from the init kwargs") }
        guard case .bool(false)? = snapshot.attributes[""]?["training"] else { return XCTFail("training attribute") }
    }

    func testMissingEntryListsTheEntries() throws {
        XCTAssertThrowsError(try EDMSnapshot(url: fixture("torch/small_snapshot.pkl"), entry: "generator")) { error in
            XCTAssertTrue("\(error)".contains("no 'generator' entry; entries: ema, augment_pipe"), "\(error)")
        }
    }

    func testNotAPickle() throws {
        XCTAssertThrowsError(try EDMSnapshot(url: fixture("torch/small_state.bin"))) { error in
            XCTAssertTrue("\(error)".contains("a zip, not a plain pickle"), "\(error)")
        }
    }

    func testGlobalsOutsideTheAllowListAreRefused() throws {
        for (module, name) in [("posix", "system"), ("builtins", "eval"), ("os", "system"), ("torch", "load"),
                               ("torch_utils.persistence", "persistent_class"), ("numpy", "load")] {
            let at = 2 + str(module).count + str(name).count            // the STACK_GLOBAL opcode after the two names
            try assertRefused([0x80, 0x04] + str(module) + str(name) + [0x93, 0x2E], ["refusing global \(module).\(name) at byte \(at)"])
            // The protocol-2 spelling (GLOBAL with newline-terminated names) too.
            try assertRefused([0x80, 0x02, 0x63] + Array("\(module)\n\(name)\n".utf8) + [0x2E], ["refusing global \(module).\(name)"])
        }
    }

    func testUnknownOpcodesAndMisuseAreRefused() throws {
        try assertRefused([0x80, 0x04, 0x49] + Array("1\n".utf8) + [0x2E], ["unsupported pickle opcode 0x49 (INT) at byte 2"])
        try assertRefused([0x80, 0x04, 0xFF, 0x2E], ["unsupported pickle opcode 0xff (unknown)"])
        // NEWOBJ of an allowed function that is no torch.nn class.
        try assertRefused([0x80, 0x04] + str("collections") + str("OrderedDict") + [0x93, 0x29, 0x81, 0x2E],
                          ["NEWOBJ of collections.OrderedDict", "only torch.nn classes"])
        // REDUCE on a torch.nn class: classes are never called.
        try assertRefused([0x80, 0x04] + str("torch.nn.modules.linear") + str("Linear") + [0x93, 0x29, 0x52, 0x2E],
                          ["REDUCE calls torch.nn.modules.linear.Linear", "does not interpret"])
        // A persistent id has no place in a plain pickle.
        try assertRefused([0x80, 0x04, 0x4E, 0x85, 0x51, 0x2E], ["persistent id at byte 4", "a plain pickle has none"])
        // Truncated: no STOP, or a string running past the end.
        try assertRefused([0x80, 0x04, 0x7D], ["no STOP opcode", "truncated"])
        try assertRefused([0x80, 0x04, 0x8C, 0x09, 0x61], ["truncated pickle"])
        // A persistent object whose meta is not of type 'class'.
        let meta = [0x7D, 0x28] + str("type") + str("function") + str("class_name") + str("X") + [0x75]
        try assertRefused([0x80, 0x04] + str("torch_utils.persistence") + str("_reconstruct_persistent_obj") + [0x93] + meta
                          + [0x85, 0x52, 0x2E], ["persistent object", "type 'function', expected 'class'"])
    }

    func testBadStorageStreamsAreRefused() throws {
        let load = [0x80, 0x04] + str("torch.storage") + str("_load_from_bytes") + [0x93]
        // Not a legacy torch.save stream.
        try assertRefused(load + [0x43, 0x03, 0x61, 0x62, 0x63, 0x85, 0x52, 0x2E], ["not a legacy torch.save stream"])
        // Bytes that claim to run past the end of the file.
        try assertRefused(load + [0x42, 0xFF, 0xFF, 0xFF, 0x7F, 0x2E], ["truncated pickle: 2147483647 bytes wanted"])
        // A real stream from the fixture, its element count changed, its data cut, its key list changed.
        let good = [UInt8](try Data(contentsOf: fixture("torch/small_snapshot.pkl")))
        let magic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        guard let first = (0...(good.count - magic.count)).first(where: { good[$0..<($0 + magic.count)].elementsEqual(magic) }) else {
            return XCTFail("no legacy stream in small_snapshot.pkl")
        }
        // The stream is the payload of the BINBYTES just before it: 4-byte length at first - 4.
        let length = (0..<4).reduce(0) { $0 | Int(good[first - 4 + $1]) << (8 * $1) }
        let streamEnd = first + length
        // The first storage is `narrow` (float16, 4 elements): count at streamEnd - 8 - 8.
        let countAt = streamEnd - 8 - 8
        XCTAssertEqual(good[countAt], 4, "the element count of the float16 storage")
        var bad = good
        bad[countAt] = 5
        try assertRefused(bad, ["inconsistent storage sizes: the persistent id says 4 elements, the data's count 5"])
        // One byte less data (the BINBYTES length shortened, the byte removed).
        bad = good
        bad.remove(at: streamEnd - 1)
        bad[first - 4] &-= 1
        try assertRefused(bad, ["inconsistent storage sizes: 4 float16 values need 8 bytes, the stream holds 7"])
        // The stream's little-endian flag cleared: NEWTRUE after 'little_endian' becomes NEWFALSE.
        bad = good
        let flag = Array("little_endian".utf8)
        if let at = (first..<streamEnd).first(where: { bad[$0..<($0 + flag.count)].elementsEqual(flag) }),
           let t = (at..<streamEnd).first(where: { bad[$0] == 0x88 }) {
            bad[t] = 0x89
            try assertRefused(bad, ["not written little-endian"])
        } else { XCTFail("no little_endian flag") }
    }

    /// A module that contains itself (a cycle made with memo and SETITEM after the object exists)
    /// is refused, not walked forever.
    func testCyclicModuleIsRefused() throws {
        var b: [UInt8] = [0x80, 0x04] + str("torch_utils.persistence") + str("_reconstruct_persistent_obj") + [0x93]
        b += [0x7D, 0x28] + str("type") + str("class") + str("class_name") + str("Net") + str("state")
        b += [0x7D, 0x28] + str("_parameters") + [0x7D] + str("_buffers") + [0x7D] + str("_modules") + [0x7D, 0x94]   // memo 0
        b += [0x75, 0x75, 0x85, 0x52, 0x94]                                                                        // memo 1: the object
        b += [0x68, 0x00] + str("self") + [0x68, 0x01, 0x73, 0x30, 0x2E]                                           // modules['self'] = it
        try assertRefused(b, ["entry 'self'", "the same module object as ''"])
    }

    /// Deeply nested values are refused or read, and neither reading, describing nor freeing them
    /// overflows the stack: 200,000 one-element tuples (refused: tuples nest at most 1000 deep),
    /// 100,000 nested lists (read; freed iteratively).
    func testDeepNestingNeitherCrashesNorHangs() throws {
        try assertRefused([0x80, 0x04, 0x4E] + [UInt8](repeating: 0x85, count: 200_000) + [0x2E],
                          ["values nested deeper than 1000 tuples at byte 1003"])
        let lists = [0x80, 0x04] + [UInt8](repeating: 0x5D, count: 100_000) + [UInt8](repeating: 0x61, count: 99_999) + [0x2E]
        try assertRefused(lists, ["holds a list of 1, not an EDM snapshot dict"])
        var reader = PickleReader(bytes: lists, dialect: .plainSnapshot)
        let value = try reader.run()
        XCTAssertTrue(value.description.hasPrefix("[[[[") && value.description.contains("…"), "described to 16 levels")
        // A dict nested in a list nested in a dict …, 50,000 deep, through objects too (torchArchive dialect).
        var mixed: [UInt8] = [0x80, 0x02]
        for _ in 0..<50_000 { mixed += [0x7D, 0x4B, 0x01] }             // {} 1  (key 1, the value comes next)
        mixed += [0x4E] + [UInt8](repeating: 0x73, count: 50_000) + [0x2E]
        var deep = PickleReader(Data(mixed))
        guard case .dict = try deep.run() else { return XCTFail("a dict") }
    }
}
