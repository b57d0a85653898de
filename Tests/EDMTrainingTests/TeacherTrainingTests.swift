// TeacherTrainer: a run interrupted and resumed continues bitwise identically to one never
// stopped; NaN stops the run naming step and tensor with the checkpoints intact; checkpoint
// folders are complete or absent, strictly loaded, pruned; the loss falls on a toy set.
import DMD2Core
import DMD2Data
import DMD2Train
import EDM
import EDMTraining
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class TeacherTrainingTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// 8×8 grey, 4 classes, dropout and label dropout on (so both draws are exercised).
    let network = UNetConfig(
        resolution: 8, inChannels: 1, outChannels: 1, labelDim: 4, modelChannels: 8,
        channelMult: [1, 2], channelMultEmb: 2, numBlocks: 1, attnResolutions: [4],
        dropout: 0.1, labelDropout: 0.25)

    func dataset() -> ShapesDataset { ShapesDataset(count: 24, classCount: 4, resolution: 8, channels: 1, seed: 11) }

    func config(steps: Int, interval: Int, keep: Int = 0, ema: EMASchedule? = .halfLife(images: 40, rampUp: 0.5)) -> TeacherTrainingConfig {
        TeacherTrainingConfig(network: network, batchSize: 5, optimizer: AdamWConfig(learningRate: 1e-3, weightDecay: 0.01, warmUpSteps: 2),
                              ema: ema, steps: steps, checkpointInterval: interval, keepCheckpoints: keep, seed: 42, xflip: true,
                              maxGradNorm: 5)
    }

    func temporaryRun() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("teacher-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Fails with the number of differing elements unless `a` and `b` are bitwise equal.
    func assertBitwiseEqual(_ a: Tensor<Float>, _ b: Tensor<Float>, _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, line: line)
        let differing = zip(a.scalars, b.scalars).filter { $0.bitPattern != $1.bitPattern }.count
        XCTAssertEqual(differing, 0, "\(what): \(differing) of \(a.count) elements differ", line: line)
    }

    /// 4 steps straight vs 2 steps + a third that is lost (stopped before its checkpoint) +
    /// resume from step 2 + 2 steps: parameters, EMA, optimizer moments, generator, loader
    /// state and the logged losses are bitwise equal.
    func testResumeIsBitwiseIdentical() throws {
        let straightRun = temporaryRun()
        let straight = try TeacherTrainer<Float>(config: config(steps: 4, interval: 2), dataset: dataset(), runDirectory: straightRun)
        var checkpoints: [URL] = []
        try straight.run(onCheckpoint: { checkpoints.append($0) })
        XCTAssertEqual(checkpoints.map(\.lastPathComponent), ["step-00000002", "step-00000004"])

        let interruptedRun = temporaryRun()
        do {
            let first = try TeacherTrainer<Float>(config: config(steps: 4, interval: 2), dataset: dataset(), runDirectory: interruptedRun)
            for _ in 0..<2 { try first.trainStep() }
            try first.saveCheckpoint()
            try first.trainStep()                                  // step 3: logged, never checkpointed
        }
        var notes: [String] = []
        let resumed = try TeacherTrainer<Float>(resuming: interruptedRun, dataset: dataset(), report: { notes.append($0) })
        XCTAssertEqual(resumed.step, 2)
        XCTAssertEqual(notes, [])
        try resumed.run()
        XCTAssertEqual(resumed.step, 4)

        for (name, a, b) in zip3(straight.parameters.names, straight.parameters.variables, resumed.parameters.variables) {
            assertBitwiseEqual(a.value, b.value, "parameter \(name)")
        }
        for i in 0..<straight.parameters.count {
            let name = straight.parameters.names[i]
            assertBitwiseEqual(straight.ema!.values[i], resumed.ema!.values[i], "EMA of \(name)")
            assertBitwiseEqual(straight.optimizer.expAvg[i], resumed.optimizer.expAvg[i], "exp_avg of \(name)")
            assertBitwiseEqual(straight.optimizer.expAvgSq[i], resumed.optimizer.expAvgSq[i], "exp_avg_sq of \(name)")
        }
        XCTAssertEqual(straight.generator, resumed.generator)
        XCTAssertEqual(straight.loader.state, resumed.loader.state)
        XCTAssertEqual(try logged(straightRun).map(\.loss), try logged(interruptedRun).map(\.loss), "log.jsonl of the resumed run")
        XCTAssertEqual(try logged(interruptedRun).map(\.step), [1, 2, 3, 4], "the lost step 3 is logged once")

        // The EMA checkpoints written at step 4 are equal.
        let a = try SafeTensorsFile(contentsOf: straightRun.appendingPathComponent("checkpoints/step-00000004/ema.safetensors"))
        let b = try SafeTensorsFile(contentsOf: interruptedRun.appendingPathComponent("checkpoints/step-00000004/ema.safetensors"))
        XCTAssertEqual(a.metadata, b.metadata)
        XCTAssertEqual(a.tensors.keys.sorted(), b.tensors.keys.sorted())
        XCTAssertTrue(a.tensors.allSatisfy { b.tensors[$0.key] == $0.value }, "EMA checkpoint tensors differ")
        XCTAssertEqual(try a.serialized(), try b.serialized(), "EMA checkpoint bytes differ")
    }

    /// A cool-down added on resume (at the checkpoint or later) gives the run that had it from
    /// the start, bitwise; one that would start before the checkpoint, or move a cool-down already
    /// under way, is refused.
    func testCoolDownAddedOnResumeEqualsOneFromTheStart() throws {
        var cooled = config(steps: 6, interval: 3)
        cooled.coolDownSteps = 3
        let straightRun = temporaryRun()
        let straight = try TeacherTrainer<Float>(config: cooled, dataset: dataset(), runDirectory: straightRun)
        try straight.run()

        let laterRun = temporaryRun()
        do {
            let first = try TeacherTrainer<Float>(config: config(steps: 6, interval: 3), dataset: dataset(), runDirectory: laterRun)
            for _ in 0..<3 { try first.trainStep() }
            try first.saveCheckpoint()
        }
        XCTAssertThrowsError(try TeacherTrainer<Float>(resuming: laterRun, dataset: dataset(), coolDownSteps: 4)) { error in
            XCTAssertTrue("\(error)".contains("would lower the rate from step 3, but the run has already taken 3 steps"), "\(error)")
        }
        let resumed = try TeacherTrainer<Float>(resuming: laterRun, dataset: dataset(), coolDownSteps: 3)
        XCTAssertEqual(resumed.config.coolDownSteps, 3)
        try resumed.run()
        for (name, a, b) in zip3(straight.parameters.names, straight.parameters.variables, resumed.parameters.variables) {
            assertBitwiseEqual(a.value, b.value, "parameter \(name)")
        }
        let lrs = try String(contentsOf: laterRun.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(TeacherStepRecord.self, from: Data($0.utf8)).lr }
        XCTAssertEqual(lrs.count, 6)
        for (got, want) in zip(lrs, [5e-4, 1e-3, 1e-3, 1e-3, 2e-3 / 3, 1e-3 / 3]) { XCTAssertEqual(got, want, accuracy: 1e-15) }

        // The run is now in its cool-down: extending it would move the cool-down, refused by name.
        XCTAssertThrowsError(try TeacherTrainer<Float>(resuming: laterRun, dataset: dataset(), steps: 8)) { error in
            XCTAssertTrue("\(error)".contains("is in its cool-down"), "\(error)")
        }
    }

    func logged(_ run: URL) throws -> [(step: Int, loss: Double)] {
        let text = try String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map {
            let r = try JSONDecoder().decode(TeacherStepRecord.self, from: Data($0.utf8))
            return (r.step, r.loss)
        }
    }

    /// A NaN weight makes the loss NaN: the step stops with its number and the tensor named,
    /// the parameters are not updated, and the last checkpoint still loads.
    func testNaNStopsTheRunAndKeepsTheLastCheckpoint() throws {
        let run = temporaryRun()
        let trainer = try TeacherTrainer<Float>(config: config(steps: 10, interval: 2), dataset: dataset(), runDirectory: run)
        for _ in 0..<2 { try trainer.trainStep() }
        let saved = try trainer.saveCheckpoint()
        let before = try Data(contentsOf: saved.appendingPathComponent("net.safetensors"))
        var poisoned = trainer.parameters["model.out_conv.bias"].value
        poisoned.scalars[0] = .nan
        trainer.parameters.assign("model.out_conv.bias", poisoned)
        let other = trainer.parameters["model.map_layer0.weight"].value
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertEqual((error as? NonFiniteError)?.step, 3, "\(error)")
            XCTAssertEqual((error as? NonFiniteError)?.tensor, "EDM loss")
            XCTAssertTrue("\(error)".contains("step 3"), "\(error)")
        }
        XCTAssertEqual(trainer.step, 2)
        XCTAssertEqual(trainer.parameters["model.map_layer0.weight"].value, other, "no update after the NaN")
        XCTAssertEqual(TeacherCheckpoint.all(in: run).map(\.step), [2])
        XCTAssertEqual(try Data(contentsOf: saved.appendingPathComponent("net.safetensors")), before)
        XCTAssertNoThrow(try TeacherTrainer<Float>(resuming: run, dataset: dataset()))
    }

    func testCheckpointFolderLayoutPruningAndResolution() throws {
        let run = temporaryRun()
        let trainer = try TeacherTrainer<Float>(config: config(steps: 6, interval: 2, keep: 2), dataset: dataset(), runDirectory: run)
        try trainer.run()
        XCTAssertEqual(TeacherCheckpoint.all(in: run).map(\.step), [4, 6], "pruned to the newest 2")
        let folder = try XCTUnwrap(TeacherCheckpoint.latest(in: run))
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        XCTAssertEqual(names, ["ema.safetensors", "net.safetensors", "optimizer.safetensors", "state.json"])
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path)
            .contains { $0.hasPrefix(".") }, "no partial folders left")

        let manifest = try TeacherCheckpoint.manifest(at: folder)
        XCTAssertEqual(manifest.step, 6)
        XCTAssertEqual(manifest.imagesSeen, 30)
        XCTAssertEqual(manifest.config, config(steps: 6, interval: 2, keep: 2))
        XCTAssertEqual(manifest.classNames, ["disk", "square", "triangle", "ring"])

        // The network files are plain EDM checkpoints, EMA by default from a run folder.
        XCTAssertEqual(try TeacherCheckpoint.networkFile(at: run, ema: true), folder.appendingPathComponent("ema.safetensors"))
        XCTAssertEqual(try TeacherCheckpoint.networkFile(at: folder, ema: false), folder.appendingPathComponent("net.safetensors"))
        let ema: LoadedCheckpoint<Float> = try EDMCheckpoint.load(from: folder.appendingPathComponent("ema.safetensors"))
        XCTAssertEqual(ema.step, 6)
        XCTAssertEqual(ema.net.config, network)
        for (i, v) in ema.net.parameters.variables.enumerated() { XCTAssertEqual(v.value, trainer.ema!.values[i]) }
        XCTAssertEqual(ema.metadata["class_names"], #"["disk","square","triangle","ring"]"#)

        // A fresh run refuses a folder with checkpoints.
        XCTAssertThrowsError(try TeacherTrainer<Float>(config: config(steps: 6, interval: 2), dataset: dataset(), runDirectory: run)) {
            guard case .runExists? = $0 as? TeacherTrainingError else { return XCTFail("\($0)") }
        }
        // Resuming with a longer run continues from step 6.
        let longer = try TeacherTrainer<Float>(resuming: run, dataset: dataset(), steps: 7)
        try longer.run()
        XCTAssertEqual(TeacherCheckpoint.all(in: run).map(\.step), [6, 7])
    }

    func testCorruptCheckpointsAreRefusedByName() throws {
        let run = temporaryRun()
        let trainer = try TeacherTrainer<Float>(config: config(steps: 2, interval: 2), dataset: dataset(), runDirectory: run)
        try trainer.run()
        let folder = try XCTUnwrap(TeacherCheckpoint.latest(in: run))

        // Truncated optimizer file: the manifest's sizes catch it.
        let optimizerURL = folder.appendingPathComponent("optimizer.safetensors")
        let original = try Data(contentsOf: optimizerURL)
        try original.prefix(original.count - 8).write(to: optimizerURL)
        assertBadCheckpoint(try TeacherTrainer<Float>(resuming: run, dataset: dataset()), mentions: "optimizer.safetensors")
        try original.write(to: optimizerURL)

        // A network file whose key set differs (same size cannot be faked easily, so rewrite the
        // manifest's size too): strict loading names the key.
        let netURL = folder.appendingPathComponent("net.safetensors")
        var net = try SafeTensorsFile(contentsOf: netURL)
        net["model.extra.weight"] = Tensor<Float>.zeros([1]).safeTensor()
        try net.write(to: netURL)
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("state.json"))) as! [String: Any]
        var files = manifest["files"] as! [String: Any]
        files["net.safetensors"] = try FileManager.default.attributesOfItem(atPath: netURL.path)[.size] as! Int
        manifest["files"] = files
        try JSONSerialization.data(withJSONObject: manifest).write(to: folder.appendingPathComponent("state.json"))
        assertBadCheckpoint(try TeacherTrainer<Float>(resuming: run, dataset: dataset()), mentions: "model.extra.weight")

        // Wrong data: 3 classes for a 4-class network.
        let three = ShapesDataset(count: 24, classCount: 3, resolution: 8, channels: 1, seed: 11)
        XCTAssertThrowsError(try TeacherTrainer<Float>(config: config(steps: 2, interval: 2), dataset: three, runDirectory: temporaryRun())) {
            XCTAssertTrue("\($0)".contains("3 classes"), "\($0)")
        }
        // No checkpoint at all.
        assertBadCheckpoint(try TeacherTrainer<Float>(resuming: temporaryRun(), dataset: dataset()), mentions: "no checkpoint")
    }

    func assertBadCheckpoint<R>(_ body: @autoclosure () throws -> R, mentions text: String, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            guard case .badCheckpoint(let message)? = error as? TeacherTrainingError else { return XCTFail("\(error)", line: line) }
            XCTAssertTrue(message.contains(text), message, line: line)
        }
    }

    /// On the toy shapes the loss falls: the mean of the last 10 of 60 steps is below the mean
    /// of the first 10 (EDM's loss is noisy per batch; averages over 10 batches are not).
    func testLossFalls() throws {
        let run = temporaryRun()
        var c = config(steps: 60, interval: 0, ema: nil)
        c.optimizer = AdamWConfig(learningRate: 3e-3, weightDecay: 0, warmUpSteps: 5)
        c.batchSize = 8
        let trainer = try TeacherTrainer<Float>(config: c, dataset: dataset(), runDirectory: run)
        var losses: [Double] = []
        try trainer.run(onStep: { losses.append($0.loss) })
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(10).reduce(0, +) / 10
        XCTAssertLessThan(last, 0.8 * first, "first 10 steps \(first), last 10 \(last)")
    }
}

func zip3<A: Sequence, B: Sequence, C: Sequence>(_ a: A, _ b: B, _ c: C) -> [(A.Element, B.Element, C.Element)] {
    zip(a, zip(b, c)).map { ($0, $1.0, $1.1) }
}
