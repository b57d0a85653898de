// DistillTrainer (Trainer.swift): an interrupted and resumed run continues bitwise identically
// to one never stopped; a NaN stops the run naming step and tensor with the last checkpoint
// intact; checkpoints are complete or absent; bad settings and damaged checkpoints are
// refused with errors that name the setting or the file.
import DMD2
import DMD2Core
import DMD2Data
import DMD2Train
import EDM
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class TrainerTests: CheckedTestCase {
    override func setUp() { Threads.count = 1 }

    /// 12 iterations at ratio 5 (G at 0, 5, 10), an EMA of G, warm-up, a high lr so every step
    /// moves the weights visibly.
    func config(iterations: Int = 12, interval: Int = 6, keep: Int = 0) -> DistillConfig {
        DistillConfig(network: DebugState.network, batchSize: 2, iterations: iterations, learningRate: 1e-3, warmUpSteps: 2,
                      tturRatio: 5, ema: .halfLife(images: 8, rampUp: 0.5), seed: 9, checkpointInterval: interval, keepCheckpoints: keep)
    }

    func trainer(_ config: DistillConfig, run: URL) throws -> DistillTrainer<Float> {
        try DistillTrainer<Float>(config: config, teacher: randomTeacher(seed: 21), dataset: shapes(), runDirectory: run)
    }

    /// log.jsonl's records without the timings.
    func logged(_ run: URL) throws -> [DistillRecord] {
        let text = try String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map {
            var r = try JSONDecoder().decode(DistillRecord.self, from: Data($0.utf8))
            r.seconds = 0
            r.imagesPerSecond = 0
            return r
        }
    }

    func checkpointFolder(_ run: URL, step: Int) -> URL {
        run.appendingPathComponent("checkpoints").appendingPathComponent(DistillCheckpoint.folderName(step: step))
    }

    // MARK: Resume

    /// 12 iterations straight vs 6, a checkpoint, a 7th that is lost (logged, never saved), then
    /// a new trainer resuming at 6 for 6 more: G, μ_fake, the head, the EMA, both optimisers'
    /// states, the trainer's generator, the loader and the log are bitwise equal, and so are the
    /// final checkpoint files.
    func testResumeIsBitwiseIdentical() throws {
        let straightRun = temporaryFolder(self, "distill-straight")
        let straight = try trainer(config(), run: straightRun)
        var saved: [String] = []
        try straight.run(onCheckpoint: { saved.append($0.lastPathComponent) })
        XCTAssertEqual(saved, ["step-00000006", "step-00000012"])

        let interruptedRun = temporaryFolder(self, "distill-interrupted")
        do {
            let first = try trainer(config(), run: interruptedRun)
            for _ in 0..<6 { try first.iterate() }
            try first.saveCheckpoint()
            try first.iterate()                                         // step 7: logged, never checkpointed
        }
        var notes: [String] = []
        let resumed = try DistillTrainer<Float>(resuming: interruptedRun, dataset: shapes(), report: { notes.append($0) })
        XCTAssertEqual(resumed.step, 6)
        XCTAssertEqual(notes, [])
        XCTAssertEqual(resumed.config, straight.config)
        try resumed.run()
        XCTAssertEqual(resumed.step, 12)

        let a = straight.networks, b = resumed.networks
        for (what, x, y) in [("G", a.generator.parameters, b.generator.parameters), ("μ_fake", a.fake.parameters, b.fake.parameters),
                             ("head", a.head.parameters, b.head.parameters), ("μ_real", a.real.parameters, b.real.parameters)] {
            XCTAssertEqual(x.names, y.names)
            for (name, p, q) in zip3(x.names, x.variables, y.variables) { assertBitwiseEqual(p.value, q.value, "\(what) \(name)") }
        }
        for (what, p, q) in [("generator", straight.optimizers.generator, resumed.optimizers.generator),
                             ("critic", straight.optimizers.critic, resumed.optimizers.critic)] {
            XCTAssertEqual(p.stepCount, q.stepCount, what)
            XCTAssertEqual(p.parameterSteps, q.parameterSteps, what)
            XCTAssertEqual(p.names, q.names)
            for i in p.names.indices {
                assertBitwiseEqual(p.expAvg[i], q.expAvg[i], "\(what) exp_avg of \(p.names[i])")
                assertBitwiseEqual(p.expAvgSq[i], q.expAvgSq[i], "\(what) exp_avg_sq of \(p.names[i])")
            }
        }
        XCTAssertEqual(straight.optimizers.generator.stepCount, 3)
        XCTAssertEqual(straight.optimizers.critic.stepCount, 12)
        let emaA = try XCTUnwrap(straight.ema), emaB = try XCTUnwrap(resumed.ema)
        for i in emaA.values.indices { assertBitwiseEqual(emaA.values[i], emaB.values[i], "EMA \(i)") }
        XCTAssertEqual(straight.rng, resumed.rng)
        XCTAssertEqual(straight.loader?.state, resumed.loader?.state)
        XCTAssertNotNil(straight.loader)

        let logA = try logged(straightRun), logB = try logged(interruptedRun)
        XCTAssertEqual(logB.map(\.step), Array(1...12), "the lost step 7 is logged once")
        XCTAssertEqual(logA, logB, "log.jsonl minus the timings")
        XCTAssertEqual(logA.filter(\.generatorStep).map(\.step), [1, 6, 11])

        // The final checkpoints are the same bytes.
        let folderA = checkpointFolder(straightRun, step: 12), folderB = checkpointFolder(interruptedRun, step: 12)
        let names = try FileManager.default.contentsOfDirectory(atPath: folderA.path).sorted()
        XCTAssertEqual(names, [DistillCheckpoint.fakeName, DistillCheckpoint.generatorName, DistillCheckpoint.generatorEMAName,
                               DistillCheckpoint.headName, DistillCheckpoint.criticOptimizerName, DistillCheckpoint.generatorOptimizerName,
                               DistillCheckpoint.manifestName].sorted())
        for name in names {
            XCTAssertEqual(try Data(contentsOf: folderA.appendingPathComponent(name)), try Data(contentsOf: folderB.appendingPathComponent(name)),
                           "\(name) of the final checkpoints")
        }
    }

    // MARK: Non-finite values

    /// A NaN in G's weights makes x_g and so L_DM NaN at the next generator iteration: the run
    /// stops with that step and tensor named, nothing is updated or logged, the checkpoint on
    /// disk is untouched and resumes. A NaN in μ_fake at a critic-only iteration stops at L_fake.
    func testNaNStopsTheRunAndKeepsTheLastCheckpoint() throws {
        let run = temporaryFolder(self, "distill-nan")
        let t = try trainer(config(iterations: 20, interval: 5), run: run)
        for _ in 0..<5 { try t.iterate() }
        let saved = try t.saveCheckpoint()
        let before = try FileManager.default.contentsOfDirectory(atPath: saved.path).sorted().map {
            ($0, try Data(contentsOf: saved.appendingPathComponent($0)))
        }
        var poisoned = t.networks.generator.parameters["model.out_conv.bias"].value
        poisoned.scalars[0] = .nan
        t.networks.generator.parameters.assign("model.out_conv.bias", poisoned)
        let fake = snapshot(t.networks.fake.parameters.variables), head = snapshot(t.networks.head.parameters.variables)
        XCTAssertThrowsError(try t.run()) { error in
            let e = error as? NonFiniteError
            XCTAssertEqual(e?.step, 6, "\(error)")
            XCTAssertEqual(e?.tensor, "L_DM", "\(error)")
            XCTAssertTrue("\(error)".contains("step 6") && "\(error)".contains("L_DM"), "\(error)")
        }
        XCTAssertEqual(t.step, 5)
        XCTAssertEqual(snapshot(t.networks.fake.parameters.variables), fake, "no update after the NaN")
        XCTAssertEqual(snapshot(t.networks.head.parameters.variables), head)
        XCTAssertEqual(t.optimizers.critic.stepCount, 5)
        XCTAssertEqual(try logged(run).map(\.step), [1, 2, 3, 4, 5], "the failed iteration is not logged")
        XCTAssertEqual(DistillCheckpoint.all(in: run).map(\.step), [5])
        for (name, data) in before { XCTAssertEqual(try Data(contentsOf: saved.appendingPathComponent(name)), data, "\(name) on disk") }

        // The checkpoint resumes with finite weights; a NaN in μ_fake at the critic-only
        // iteration 6 (step 7) stops at L_fake.
        let resumed = try DistillTrainer<Float>(resuming: run, dataset: shapes())
        XCTAssertEqual(resumed.step, 5)
        XCTAssertTrue(resumed.networks.generator.parameters.variables.allSatisfy(\.value.isFinite))
        try resumed.iterate()
        var bad = resumed.networks.fake.parameters["model.out_conv.weight"].value
        bad.scalars[3] = .infinity
        resumed.networks.fake.parameters.assign("model.out_conv.weight", bad)
        XCTAssertThrowsError(try resumed.iterate()) { error in
            XCTAssertEqual((error as? NonFiniteError)?.step, 7, "\(error)")
            XCTAssertEqual((error as? NonFiniteError)?.tensor, "L_fake", "\(error)")
        }
        XCTAssertEqual(resumed.step, 6)
    }

    // MARK: Checkpoint folders

    /// Complete or absent: no hidden partial folders after saving (also over an existing
    /// checkpoint of the same step); leftovers of a crash (a partial folder, a step folder
    /// without a manifest) are ignored; old checkpoints are pruned.
    func testCheckpointsAreAtomicAndPruned() throws {
        let run = temporaryFolder(self, "distill-atomic")
        let t = try trainer(config(iterations: 6, interval: 2, keep: 2), run: run)
        try t.run()
        let root = run.appendingPathComponent("checkpoints")
        XCTAssertEqual(DistillCheckpoint.all(in: run).map(\.step), [4, 6], "pruned to the newest 2")
        func hidden() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.hasPrefix(".") } }
        XCTAssertEqual(try hidden(), [], "no partial folders left")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent(DistillCheckpoint.teacherName).path))

        // Saving the same step again replaces the folder and leaves nothing aside.
        let again = try t.saveCheckpoint()
        XCTAssertEqual(again.lastPathComponent, "step-00000006")
        XCTAssertEqual(try hidden(), [])
        XCTAssertEqual(DistillCheckpoint.all(in: run).map(\.step), [4, 6])

        // A crash's leftovers: a partial folder and a step folder without its manifest.
        let partial = root.appendingPathComponent(".step-00000008.partial-\(UUID().uuidString)")
        let incomplete = root.appendingPathComponent("step-00000010")
        for folder in [partial, incomplete] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data([1, 2, 3]).write(to: folder.appendingPathComponent(DistillCheckpoint.generatorName))
        }
        XCTAssertEqual(DistillCheckpoint.all(in: run).map(\.step), [4, 6])
        XCTAssertEqual(DistillCheckpoint.latest(in: run)?.lastPathComponent, "step-00000006")
        let resumed = try DistillTrainer<Float>(resuming: run, dataset: shapes(), iterations: 7)
        XCTAssertEqual(resumed.step, 6)
        XCTAssertEqual(resumed.config.iterations, 7)

        // The manifest and the generator file a run folder designates.
        let manifest = try DistillCheckpoint.manifest(at: checkpointFolder(run, step: 6))
        XCTAssertEqual(manifest.step, 6)
        XCTAssertEqual(manifest.threads, 1)
        XCTAssertEqual(manifest.dtype, "F32")
        XCTAssertEqual(manifest.config, t.config)
        XCTAssertEqual(Set(manifest.files.keys).count, 6)
        XCTAssertEqual(try DistillCheckpoint.generatorFile(at: run).lastPathComponent, DistillCheckpoint.generatorEMAName)
        XCTAssertEqual(try DistillCheckpoint.generatorFile(at: run, ema: false).lastPathComponent, DistillCheckpoint.generatorName)
        let generator = try DMD2Generator(contentsOf: run, ema: false)
        XCTAssertEqual(generator.step, 6)
        for (p, q) in zip(generator.denoiser.parameters.variables, t.networks.generator.parameters.variables) { XCTAssertEqual(p.value, q.value) }

        // A fresh run refuses a folder with checkpoints.
        XCTAssertThrowsError(try trainer(config(), run: run)) { error in
            XCTAssertTrue("\(error)".contains("already holds checkpoints"), "\(error)")
        }
    }

    /// A damaged checkpoint is refused with an error naming the file.
    func testDamagedCheckpointsNameTheFile() throws {
        let run = temporaryFolder(self, "distill-damaged")
        let t = try trainer(config(iterations: 2, interval: 2), run: run)
        try t.run()
        let folder = checkpointFolder(run, step: 2)
        let fm = FileManager.default

        func damage(_ url: URL, _ edit: (inout Data) -> Void, mentions words: [String], line: UInt = #line) throws {
            let original = try Data(contentsOf: url)
            var data = original
            edit(&data)
            try data.write(to: url)
            defer { try? original.write(to: url) }
            XCTAssertThrowsError(try DistillTrainer<Float>(resuming: run, dataset: shapes()), line: line) { error in
                for w in words { XCTAssertTrue("\(error)".contains(w), "'\(w)' missing from: \(error)", line: line) }
            }
        }
        // Truncated files listed in the manifest: named, with both sizes.
        for name in [DistillCheckpoint.fakeName, DistillCheckpoint.generatorOptimizerName, DistillCheckpoint.headName] {
            let url = folder.appendingPathComponent(name)
            let size = try Data(contentsOf: url).count
            try damage(url, { $0 = $0.prefix($0.count - 100) }, mentions: [url.path, "truncated", "\(size)"])
        }
        // A same-size file with a broken header, and the run's teacher truncated (not in the manifest).
        let head = folder.appendingPathComponent(DistillCheckpoint.headName)
        try damage(head, { $0.replaceSubrange(8..<16, with: Data(repeating: 0x7B, count: 8)) }, mentions: [head.path])
        let teacher = run.appendingPathComponent(DistillCheckpoint.teacherName)
        try damage(teacher, { $0 = $0.prefix($0.count / 2) }, mentions: [teacher.path])
        // The manifest itself.
        let manifest = folder.appendingPathComponent(DistillCheckpoint.manifestName)
        try damage(manifest, { $0 = $0.prefix(20) }, mentions: [manifest.path, "manifest"])
        // Everything restored: it resumes.
        XCTAssertNoThrow(try DistillTrainer<Float>(resuming: run, dataset: shapes()))
        // No checkpoint at all.
        let empty = temporaryFolder(self, "distill-empty")
        try fm.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try DistillTrainer<Float>(resuming: empty, dataset: shapes())) { error in
            XCTAssertTrue("\(error)".contains("no checkpoint to resume"), "\(error)")
        }
    }

    // MARK: Settings and data

    /// Every invalid setting is refused by name, before the run folder is touched.
    func testConfigValidationNamesTheSetting() throws {
        let base = config()
        XCTAssertNoThrow(try base.validate())
        var cases: [(String, (inout DistillConfig) -> Void)] = [
            ("batch size", { $0.batchSize = 0 }),
            ("iterations", { $0.iterations = -1 }),
            ("TTUR ratio", { $0.tturRatio = 0 }),
            ("no loss", { $0.distributionMatching = false; $0.gan = false }),
            ("GAN weights", { $0.ganWeightGenerator = -1 }),
            ("GAN weights", { $0.ganWeightCritic = .infinity }),
            ("max gradient norm", { $0.maxGradNorm = 0 }),
            ("DM steps", { $0.dmMinStep = 990 }),
            ("DM steps", { $0.dmMaxStep = 1000 }),
            ("real guidance", { $0.realGuidance = .nan }),
            ("regression weight", { $0.regression = RegressionSettings(pairsFile: "pairs.safetensors", weight: -1) }),
            ("max items", { $0.maxItems = 0 }),
            ("generator optimizer", { $0.generatorOptimizer.beta1 = 1 }),
            ("critic optimizer", { $0.criticOptimizer.learningRate = -1 }),
            ("EMA decay", { $0.ema = .decay(1.5) }),
            ("EMA half-life", { $0.ema = .halfLife(images: 0, rampUp: nil) }),
        ]
        // A teacher whose encoder ends at 4×4: the head needs 8×8.
        cases.append(("8×8 bottleneck", { $0.network.channelMult = [1, 2, 2] }))
        cases.append(("real guidance needs a class-conditional", { $0.network.labelDim = 0; $0.realGuidance = 2 }))
        for (words, edit) in cases {
            var c = base
            edit(&c)
            XCTAssertThrowsError(try c.validate(), words) { error in
                guard case .badConfig(let message)? = error as? DistillError else { return XCTFail("\(words): \(error)") }
                XCTAssertTrue(message.contains(words), "'\(words)' missing from: \(message)")
            }
        }
        var bad = base
        bad.tturRatio = 0
        let run = temporaryFolder(self, "distill-bad-config")
        XCTAssertThrowsError(try trainer(bad, run: run)) { XCTAssertTrue("\($0)".contains("TTUR ratio"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.path), "nothing is written for a bad config")
    }

    /// Real images that do not fit the teacher, or none when the GAN needs them.
    func testDataMismatchIsNamed() throws {
        let run = temporaryFolder(self, "distill-data")
        let small = ShapesDataset(count: 4, classCount: 4, resolution: 8, channels: 3, seed: 1)
        XCTAssertThrowsError(try DistillTrainer<Float>(config: config(), teacher: randomTeacher(seed: 1), dataset: small, runDirectory: run)) {
            XCTAssertTrue("\($0)".contains("8×8×3") && "\($0)".contains("16×16×3"), "\($0)")
        }
        let classes = ShapesDataset(count: 4, classCount: 3, resolution: 16, channels: 3, seed: 1)
        XCTAssertThrowsError(try DistillTrainer<Float>(config: config(), teacher: randomTeacher(seed: 1), dataset: classes, runDirectory: run)) {
            XCTAssertTrue("\($0)".contains("3 classes"), "\($0)")
        }
        XCTAssertThrowsError(try DistillTrainer<Float>(config: config(), teacher: randomTeacher(seed: 1), dataset: nil, runDirectory: run)) {
            XCTAssertTrue("\($0)".contains("need real images"), "\($0)")
        }
    }
}

func zip3<A: Sequence, B: Sequence, C: Sequence>(_ a: A, _ b: B, _ c: C) -> [(A.Element, B.Element, C.Element)] {
    zip(a, zip(b, c)).map { ($0, $1.0, $1.1) }
}
