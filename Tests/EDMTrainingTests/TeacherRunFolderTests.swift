// A teacher run folder belongs to one run: a second trainer into it is refused naming the
// holder's PID; a resume that would change the run's settings names each change; manifests of
// format v1 (RNG stored as "generator") still resume; nothing non-finite is ever saved or
// resumed; settings that cannot run in Float and runs of no steps are refused.
import DMD2Core
import DMD2Data
import DMD2Train
import EDM
import EDMTraining
import Foundation
import SafeTensors
import XCTest

final class TeacherRunFolderTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    let network = UNetConfig(
        resolution: 8, inChannels: 1, outChannels: 1, labelDim: 4, modelChannels: 8,
        channelMult: [1, 2], channelMultEmb: 2, numBlocks: 1, attnResolutions: [4],
        dropout: 0.1, labelDropout: 0.25)

    func dataset() -> ShapesDataset { ShapesDataset(count: 24, classCount: 4, resolution: 8, channels: 1, seed: 11) }

    func config(steps: Int = 2, lr: Double = 1e-3) -> TeacherTrainingConfig {
        TeacherTrainingConfig(network: network, batchSize: 5, optimizer: AdamWConfig(learningRate: lr, weightDecay: 0.01, warmUpSteps: 2),
                              ema: .halfLife(images: 40, rampUp: 0.5), steps: steps, checkpointInterval: 2, keepCheckpoints: 0, seed: 42)
    }

    func temporaryRun() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("teacher-run-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func assertLocked<R>(_ body: @autoclosure () throws -> R, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            guard let e = error as? RunFolderError, e.kind == .locked else { return XCTFail("not a lock error: \(error)", line: line) }
            XCTAssertEqual(e.holder, getpid(), line: line)
            XCTAssertTrue(e.description.contains("PID \(getpid())"), e.description, line: line)
        }
    }

    /// Two trainers into one folder: the second (a second open file description, as a second
    /// process would have) is refused at once naming the PID, fresh or resuming, and nothing of
    /// the first run is touched; once the first run ends the folder resumes.
    func testASecondTrainerIntoALockedFolderIsRefused() throws {
        let run = temporaryRun()
        let first = try TeacherTrainer<Float>(config: config(steps: 4), dataset: dataset(), runDirectory: run)
        try first.trainStep()
        try first.trainStep()
        try first.saveCheckpoint()
        let log = try Data(contentsOf: run.appendingPathComponent("log.jsonl"))
        assertLocked(try TeacherTrainer<Float>(resuming: run, dataset: dataset()))
        XCTAssertThrowsError(try TeacherTrainer<Float>(config: config(), dataset: dataset(), runDirectory: run)) { error in
            XCTAssertTrue("\(error)".contains("already holds checkpoints") && "\(error)".contains("PID \(getpid())"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: run.appendingPathComponent("log.jsonl")), log, "the first run's log is untouched")

        // A fresh run into a folder with no checkpoint yet is refused by the lock too.
        let empty = temporaryRun()
        let holder = try TeacherTrainer<Float>(config: config(), dataset: dataset(), runDirectory: empty)
        assertLocked(try TeacherTrainer<Float>(config: config(), dataset: dataset(), runDirectory: empty))
        withExtendedLifetime(holder) {}

        try first.run()                                                 // releases the folder when it ends
        XCTAssertNoThrow(try TeacherTrainer<Float>(resuming: run, dataset: dataset(), steps: 5))
    }

    /// Resuming with settings other than the run's fails naming each; the same settings with a
    /// new step count resume.
    func testResumeWithChangedSettingsNamesEachChange() throws {
        let run = temporaryRun()
        try TeacherTrainer<Float>(config: config(), dataset: dataset(), runDirectory: run).run()
        var asked = config(steps: 6)
        XCTAssertNoThrow(try TeacherTrainer<Float>(resuming: run, dataset: dataset(), steps: 6, expecting: asked))
        asked.optimizer.learningRate = 1e-2
        asked.batchSize = 7
        asked.network.labelDropout = 0
        asked.ema = nil
        XCTAssertThrowsError(try TeacherTrainer<Float>(resuming: run, dataset: dataset(), expecting: asked)) { error in
            guard case .changedSettings(let changes)? = error as? TeacherTrainingError else { return XCTFail("\(error)") }
            XCTAssertEqual(changes.map(\.key), ["batchSize", "ema.halfLife.images", "ema.halfLife.rampUp", "network.labelDropout", "optimizer.learningRate"])
            XCTAssertEqual(changes.first { $0.key == "optimizer.learningRate" }, SettingChange(key: "optimizer.learningRate", run: "0.001", requested: "0.01"))
            XCTAssertTrue("\(error)".contains("batchSize: the run has 5, requested 7"), "\(error)")
        }
    }

    /// A checkpoint written before the RNG field was renamed (format v1, "generator") resumes
    /// with the same generator state and continues bitwise as the v2 one does.
    func testVersion1ManifestStillResumes() throws {
        let run = temporaryRun()
        try TeacherTrainer<Float>(config: config(steps: 2), dataset: dataset(), runDirectory: run).run()
        let state = try XCTUnwrap(TeacherCheckpoint.latest(in: run)).appendingPathComponent("state.json")
        let v2 = try TeacherCheckpoint.manifest(at: state.deletingLastPathComponent())
        XCTAssertEqual(v2.formatVersion, 2)
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: state)) as? [String: Any])
        XCTAssertNotNil(json["rng_state"])
        json["generator"] = json.removeValue(forKey: "rng_state")
        json["format_version"] = 1
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted]).write(to: state)

        let v1 = try TeacherCheckpoint.manifest(at: state.deletingLastPathComponent())
        XCTAssertEqual(v1.formatVersion, 1)
        XCTAssertEqual(v1.rngState, v2.rngState)
        let resumed = try TeacherTrainer<Float>(resuming: run, dataset: dataset(), steps: 3)
        XCTAssertEqual(resumed.generator, v2.rngState)
        try resumed.run()
        XCTAssertEqual(try TeacherCheckpoint.manifest(at: XCTUnwrap(TeacherCheckpoint.latest(in: run))).formatVersion, 2)
    }

    /// A NaN weight is never saved: the checkpoint is refused naming the tensor and nothing is
    /// written; a network file holding one does not load, naming it.
    func testNonFiniteWeightsAreNeverSaved() throws {
        let run = temporaryRun()
        let trainer = try TeacherTrainer<Float>(config: config(steps: 4), dataset: dataset(), runDirectory: run)
        try trainer.trainStep()
        var poisoned = trainer.parameters["model.out_conv.bias"].value
        poisoned.scalars[0] = .infinity
        trainer.parameters.assign("model.out_conv.bias", poisoned)
        XCTAssertThrowsError(try trainer.saveCheckpoint()) { error in
            let e = error as? NonFiniteError
            XCTAssertEqual(e?.tensor, "model.out_conv.bias", "\(error)")
            XCTAssertEqual(e?.phase, .beforeSave)
            XCTAssertEqual(e?.infinityCount, 1)
        }
        XCTAssertEqual(TeacherCheckpoint.all(in: run).map(\.step), [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path), [])
    }

    /// An optimizer.safetensors whose last 100 bytes are 0xFF (same size, so the manifest's sizes
    /// pass) is refused on resume, naming the file and the tensor.
    func testGarbageOptimizerStateIsRefusedByName() throws {
        let run = temporaryRun()
        try TeacherTrainer<Float>(config: config(), dataset: dataset(), runDirectory: run).run()
        let url = try XCTUnwrap(TeacherCheckpoint.latest(in: run)).appendingPathComponent(TeacherCheckpoint.optimizerName)
        var data = try Data(contentsOf: url)
        data.replaceSubrange((data.count - 100)..<data.count, with: Data(repeating: 0xFF, count: 100))
        try data.write(to: url)
        XCTAssertThrowsError(try TeacherTrainer<Float>(resuming: run, dataset: dataset())) { error in
            guard case .badCheckpoint(let message)? = error as? TeacherTrainingError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains(url.path), message)
            XCTAssertTrue(message.contains("key 'model.") && message.contains("NaN"), message)
        }
    }

    /// lr 1e39 is a finite Double but +∞ as a Float: refused before the folder is touched, as
    /// are runs of no steps and resumes that would end before the checkpoint.
    func testSettingsThatCannotRunAreRefused() throws {
        let run = temporaryRun()
        XCTAssertThrowsError(try TeacherTrainer<Float>(config: config(lr: 1e39), dataset: dataset(), runDirectory: run)) { error in
            guard case .badConfig(let message)? = error as? TeacherTrainingError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("learning rate 1e+39") && message.contains("Float"), message)
        }
        XCTAssertNoThrow(try config(lr: 1e39).validate(in: Double.self), "finite in Double")
        XCTAssertThrowsError(try TeacherTrainer<Float>(config: config(steps: 0), dataset: dataset(), runDirectory: run)) { error in
            XCTAssertTrue("\(error)".contains("steps 0 must be ≥ 1"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.path), "nothing written")

        try TeacherTrainer<Float>(config: config(steps: 2), dataset: dataset(), runDirectory: run).run()
        XCTAssertThrowsError(try TeacherTrainer<Float>(resuming: run, dataset: dataset(), steps: 1)) { error in
            XCTAssertTrue("\(error)".contains("the run is at step 2"), "\(error)")
        }
    }
}
