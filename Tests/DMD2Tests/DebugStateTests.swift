// The DMD2 debug state (DebugState.swift): the committed file replays within its tolerances,
// recording the same random inputs again reproduces it tensor by tensor, and a corrupt or
// mis-formatted file is refused with an error that names the problem.
import DMD2
import DMD2Core
import EDM
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class DebugStateTests: CheckedTestCase {
    /// The committed file records 2 threads in its metadata, and `record` writes Threads.count
    /// there, so these tests use 2 (on this machine the tensors are the same with 1).
    override func setUp() { Threads.count = 2 }

    func committed() throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: debugStateURL()) }

    func testCommittedFileReplays() throws {
        let file = try committed()
        XCTAssertEqual(file.metadata["format"], DebugState.format)
        XCTAssertEqual(file.metadata["threads"], "2")
        let comparisons = try DebugState.replay(file)
        XCTAssertEqual(comparisons.count, file.tensors.count, "every tensor of the file is compared")
        let failed = comparisons.filter { !$0.passed }
        XCTAssertTrue(failed.isEmpty, "replay differs: " + failed.map { "\($0.key) \($0.error) > \($0.tolerance)" }.joined(separator: "; "))
        // Every class of key is present and checked with its tolerance.
        for prefix in ["input.", "real.", "generator.", "fake.", "head.", "gen.", "dm.", "gen_gan.", "fake.x_t", "disc.", "loss.",
                       "grad_norm.", "lr.", "grad.generator.", "grad.fake.", "grad.head.", "updated.generator.", "updated.fake.", "updated.head."] {
            XCTAssertTrue(comparisons.contains { $0.key.hasPrefix(prefix) }, "no key with prefix \(prefix)")
        }
        XCTAssertEqual(DebugState.tolerance(forKey: "input.z"), 0)
        XCTAssertEqual(DebugState.tolerance(forKey: "updated.head.cls_pred_branch.0.bias"), 1e-6)
        XCTAssertEqual(DebugState.tolerance(forKey: "loss.dm"), 1e-4)
        // Computed keys that share a network's name are not weights (fake.model.… are).
        XCTAssertEqual(DebugState.tolerance(forKey: "fake.model.out_conv.bias"), 0)
        XCTAssertEqual(DebugState.tolerance(forKey: "fake.x_t"), 1e-4)
        XCTAssertEqual(DebugState.tolerance(forKey: "fake.pred"), 1e-4)
        let worst = comparisons.max { $0.error < $1.error }!
        print("debug state replay: \(comparisons.count) tensors, worst \(worst.key) at \(worst.error) (tolerance \(worst.tolerance))")
    }

    /// The file's step: the clipping norm 2 lies between the two gradient norms, so one update
    /// is clipped and the other not (the settings' documented intent); the warm-up gives lr/W.
    func testCommittedFileExercisesClippingAndWarmUp() throws {
        let file = try committed()
        let inputs = try DebugState.inputs(from: file)
        let gNorm = try file.tensor("grad_norm.generator").doubles()[0], cNorm = try file.tensor("grad_norm.critic").doubles()[0]
        XCTAssertLessThan(gNorm, inputs.settings.maxGradNorm)
        XCTAssertGreaterThan(cNorm, inputs.settings.maxGradNorm)
        XCTAssertEqual(try file.tensor("lr.generator").doubles()[0], inputs.settings.learningRate / Double(inputs.settings.warmUpSteps),
                       accuracy: 1e-15)
        // The generator loss is L_DM + w_G·L_G, the critic loss L_fake + w_D·L_D (Float rounding).
        let v = { (k: String) in Double(try file.tensor(k).floats()[0]) }
        XCTAssertEqual(try v("loss.generator"), try v("loss.dm") + inputs.settings.ganWeightGenerator * v("loss.gen_gan"), accuracy: 1e-6 * abs(try v("loss.generator")))
        XCTAssertEqual(try v("loss.critic"), try v("loss.fake") + inputs.settings.ganWeightCritic * v("loss.disc"), accuracy: 1e-6 * abs(try v("loss.critic")))
    }

    /// record(randomInputs(seed: 0)) reproduces the committed file: the inputs bitwise, every
    /// intermediate, loss, norm and gradient within the replay tolerance. The updated weights
    /// are compared differently: AdamW's first step is lr·ĝ/(|ĝ| + ε) per element (ĝ the clipped
    /// gradient), so an element whose gradient is at rounding level (the key bias of attention,
    /// whose true gradient is 0, ~1e-10 here) moves by a different fraction of lr in each
    /// recording. Every difference of the updates must be exactly what the two files'
    /// gradients predict, to the replay tolerance 1e-6.
    /// The recording itself is bitwise reproducible run to run; whether it matches the
    /// committed file bitwise depends on the machine (BLIS picks its kernels by CPU) and is
    /// printed, not asserted.
    func testRecordingReproducesTheCommittedFile() throws {
        let file = try committed()
        let recorded = try DebugState.record(DebugState.randomInputs(seed: 0))
        XCTAssertEqual(recorded.tensors.keys.sorted(), file.tensors.keys.sorted())
        XCTAssertEqual(recorded.metadata, file.metadata)
        let settings = try DebugState.inputs(from: file).settings
        func scalar(_ f: SafeTensorsFile, _ key: String) throws -> Double { try f.tensor(key).doubles()[0] }
        func clip(_ f: SafeTensorsFile, _ which: String) throws -> Double {
            let n = try scalar(f, "grad_norm.\(which)"), c = settings.maxGradNorm / (n + 1e-6)
            return c < 1 ? c : 1
        }
        var differing: [String] = []
        for key in file.tensors.keys.sorted() {
            let a = recorded.tensors[key]!, b = file.tensors[key]!
            XCTAssertEqual(a.shape, b.shape, key)
            XCTAssertEqual(a.dtype, b.dtype, key)
            if a.bytes != b.bytes { differing.append(key) }
            let tolerance = DebugState.tolerance(forKey: key)
            let x = try a.doubles(), y = try b.doubles()
            let scale = max(y.map(abs).max() ?? 0, 1e-30)
            if tolerance == 0 {
                XCTAssertEqual(a.bytes, b.bytes, "\(key): an input must be reproduced bitwise")
            } else if key.hasPrefix("updated.") {
                let name = key.dropFirst("updated.".count), which = name.hasPrefix("generator.") ? "generator" : "critic"
                let gx = try recorded.tensor("grad.\(name)").doubles(), gy = try file.tensor("grad.\(name)").doubles()
                let cx = try clip(recorded, which), cy = try clip(file, which)
                let lr = try scalar(file, "lr.\(which)")
                XCTAssertEqual(lr, try scalar(recorded, "lr.\(which)"), key)
                let φ = { (g: Double) -> Double in g / (abs(g) + settings.eps) }
                var worst = 0.0
                for i in 0..<x.count {
                    let predicted: Double = lr * (φ(cy * gy[i]) - φ(cx * gx[i]))      // Δθ = −lr·Δφ
                    worst = max(worst, abs((x[i] - y[i]) - predicted))
                }
                XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(key): update differences not explained by the gradients")
            } else {
                let error = zip(x, y).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(error / scale, tolerance, key)
            }
        }
        XCTAssertTrue(try DebugState.replay(recorded).allSatisfy(\.passed), "a fresh recording replays")
        let again = try DebugState.record(DebugState.randomInputs(seed: 0))
        XCTAssertTrue(again.tensors.allSatisfy { recorded.tensors[$0.key]?.bytes == $0.value.bytes }, "recording is bitwise reproducible")
        let oneThread = try Threads.with(1) { try DebugState.record(DebugState.randomInputs(seed: 0)) }
        let threadDifferences = oneThread.tensors.keys.filter { oneThread.tensors[$0]!.bytes != recorded.tensors[$0]!.bytes }.count
        print("debug state re-recorded with \(Threads.count) threads: \(differing.count) of \(file.tensors.count) tensors differ bitwise from the committed file; with 1 thread instead of 2, \(threadDifferences) differ")
    }

    /// A corrupt or mis-formatted file is refused with an error naming the problem (never a trap).
    func testCorruptFilesGiveClearErrors() throws {
        let file = try committed()
        let folder = temporaryFolder(self, "debug-state")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)

        // Truncated bytes: the reader names the file and the problem.
        let bytes = try Data(contentsOf: debugStateURL())
        let truncated = folder.appendingPathComponent("truncated.safetensors")
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: truncated)) { error in
            XCTAssertTrue("\(error)".contains("truncated.safetensors"), "\(error)")
            XCTAssertNotNil(error as? SafeTensorsError, "\(error)")
        }

        func assertRefused(_ edit: (inout SafeTensorsFile) throws -> Void, mentions words: [String], line: UInt = #line) rethrows {
            var f = file
            try edit(&f)
            XCTAssertThrowsError(try DebugState.replay(f), line: line) { error in
                for w in words { XCTAssertTrue("\(error)".contains(w), "'\(w)' missing from: \(error)", line: line) }
            }
        }
        // Not a debug state.
        assertRefused({ $0.metadata["format"] = "swift-dmd2.gan-head" }, mentions: ["format", "swift-dmd2.gan-head"])
        assertRefused({ $0.metadata["config"] = "{" }, mentions: ["config"])
        // A missing input, named.
        assertRefused({ $0["input.dm.t"] = nil }, mentions: ["input.dm.t"])
        // A weight of the wrong shape, named with both shapes.
        try assertRefused({ $0["fake.model.out_conv.bias"] = try SafeTensor([Float](repeating: 0, count: 2), shape: [2]) },
                          mentions: ["fake.model.out_conv.bias", "[2]", "[3]"])
        // Latents of the wrong batch.
        try assertRefused({ $0["input.z"] = try SafeTensor([Float](repeating: 0, count: 768), shape: [1, 3, 16, 16]) },
                          mentions: ["input.z", "[2, 3, 16, 16]"])
        // Indices stored as floats, and indices outside the σ grid or the classes.
        try assertRefused({ $0["input.labels"] = try SafeTensor([Float(0), 1], shape: [2]) }, mentions: ["input.labels", "F32"])
        try assertRefused({ $0["input.fake.t"] = try SafeTensor([Int64(3), 1000], shape: [2]) }, mentions: ["input.fake.t", "1000"])
        try assertRefused({ $0["input.real_labels"] = try SafeTensor([Int64(4), 0], shape: [2]) }, mentions: ["input.real_labels", "4"])
        // A recorded gradient of the wrong shape, and an unknown extra key.
        try assertRefused({ $0["grad.head.cls_pred_branch.6.bias"] = try SafeTensor([Float(0), 0], shape: [2]) },
                          mentions: ["grad.head.cls_pred_branch.6.bias", "[2]", "[1]"])
        try assertRefused({ $0["loss.extra"] = try SafeTensor([Float(0)], shape: []) }, mentions: ["keys differ", "loss.extra"])

        // A wrong result is not an error but a failed comparison, for that key only.
        var tampered = file
        var loss = try file.tensor("loss.dm").floats()
        loss[0] *= 1.001
        tampered["loss.dm"] = try SafeTensor(loss, shape: [])
        let failed = try DebugState.replay(tampered).filter { !$0.passed }.map(\.key)
        XCTAssertEqual(failed, ["loss.dm"])
    }

    /// The recorded inputs are what `randomInputs` says: non-zero weights in every layer (so no
    /// gradient vanishes), the debug network, DM indices in 20…980 and the settings.
    func testRandomInputs() throws {
        let inputs = DebugState.randomInputs(seed: 0)
        XCTAssertEqual(inputs.config, DebugState.network)
        XCTAssertEqual(inputs.config.bottleneckChannels, 16)
        for store in [inputs.real, inputs.generator, inputs.fake] {
            for (name, value) in store.namedTensors { XCTAssertGreaterThan(value.maxAbs(), 0, name) }
        }
        XCTAssertTrue(inputs.draws.dm.t.allSatisfy { (20...980).contains($0) })
        XCTAssertNotEqual(inputs.generator.namedTensors.map(\.value), inputs.fake.namedTensors.map(\.value), "three independent draws")
        let again = DebugState.randomInputs(seed: 0), other = DebugState.randomInputs(seed: 1)
        XCTAssertEqual(again.draws.latents, inputs.draws.latents)
        XCTAssertNotEqual(other.draws.latents, inputs.draws.latents)
    }
}
