// A distillation run folder belongs to one run: a second trainer is refused naming the PID; a
// resume that would change the settings or the teacher names each change; v1 manifests (the
// RNG stored as "generator", the name of G) still resume; nothing non-finite is saved; learning
// rates that overflow Float and runs of no iterations are refused.
import DMD2
import DMD2Core
import DMD2Data
import DMD2Train
import EDM
import Foundation
import XCTest

final class DistillRunFolderTests: XCTestCase {
    override func setUp() { Threads.count = 1 }

    func config(iterations: Int = 2, lr: Double = 1e-3) -> DistillConfig {
        DistillConfig(network: DebugState.network, batchSize: 2, iterations: iterations, learningRate: lr, warmUpSteps: 2,
                      tturRatio: 5, ema: .halfLife(images: 8, rampUp: 0.5), seed: 9, checkpointInterval: 2, keepCheckpoints: 0)
    }

    func trainer(_ config: DistillConfig, run: URL, teacherSeed: UInt64 = 21) throws -> DistillTrainer<Float> {
        try DistillTrainer<Float>(config: config, teacher: randomTeacher(seed: teacherSeed), dataset: shapes(), runDirectory: run)
    }

    func testASecondTrainerIntoALockedFolderIsRefused() throws {
        let run = temporaryFolder(self, "distill-lock")
        let first = try trainer(config(iterations: 4), run: run)
        try first.iterate()
        XCTAssertThrowsError(try trainer(config(), run: run)) { error in
            guard let e = error as? RunFolderError, e.kind == .locked else { return XCTFail("\(error)") }
            XCTAssertEqual(e.holder, getpid())
            XCTAssertTrue(e.description.contains("PID \(getpid())"), e.description)
        }
        try first.iterate()
        try first.saveCheckpoint()
        XCTAssertThrowsError(try DistillTrainer<Float>(resuming: run, dataset: shapes())) { error in
            XCTAssertEqual((error as? RunFolderError)?.kind, .locked, "\(error)")
        }
        try first.run()
        XCTAssertNoThrow(try DistillTrainer<Float>(resuming: run, dataset: shapes()))
    }

    /// Other settings (--lr, --batch, --no-gan) or another teacher on resume: each change named.
    func testResumeWithChangedSettingsOrTeacherNamesEachChange() throws {
        let run = temporaryFolder(self, "distill-changed")
        try trainer(config(), run: run).run()
        let same = config(iterations: 3)
        XCTAssertNoThrow(try DistillTrainer<Float>(resuming: run, dataset: shapes(), iterations: 3, expecting: same, teacher: randomTeacher(seed: 21)))
        var asked = config()
        asked.batchSize = 4
        asked.generatorOptimizer.learningRate = 0.5
        asked.gan = false
        XCTAssertThrowsError(try DistillTrainer<Float>(resuming: run, dataset: shapes(), expecting: asked, teacher: randomTeacher(seed: 22))) { error in
            guard case .changedSettings(let changes)? = error as? DistillError else { return XCTFail("\(error)") }
            XCTAssertEqual(changes.map(\.key), ["batchSize", "gan", "generatorOptimizer.learningRate", "teacher"])
        }
    }

    func testVersion1ManifestStillResumes() throws {
        let run = temporaryFolder(self, "distill-v1")
        let t = try trainer(config(), run: run)
        try t.run()
        let folder = try XCTUnwrap(DistillCheckpoint.latest(in: run))
        let state = folder.appendingPathComponent(DistillCheckpoint.manifestName)
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: state)) as? [String: Any])
        XCTAssertEqual(json["format_version"] as? Int, 2)
        XCTAssertNil(json["generator"], "the RNG is no longer called generator")
        json["generator"] = json.removeValue(forKey: "rng_state")
        json["format_version"] = 1
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted]).write(to: state)
        XCTAssertEqual(try DistillCheckpoint.manifest(at: folder).rngState, t.rng)
        let resumed = try DistillTrainer<Float>(resuming: run, dataset: shapes())
        XCTAssertEqual(resumed.rng, t.rng)
        XCTAssertEqual(resumed.step, 2)
    }

    func testNonFiniteStateIsNeverSaved() throws {
        let run = temporaryFolder(self, "distill-nonfinite")
        let t = try trainer(config(iterations: 4), run: run)
        try t.iterate()
        var bad = t.networks.head.parameters.variables[0].value
        bad.scalars[0] = .nan
        t.networks.head.parameters.variables[0].value = bad
        XCTAssertThrowsError(try t.saveCheckpoint()) { error in
            let e = error as? NonFiniteError
            XCTAssertEqual(e?.phase, .beforeSave, "\(error)")
            XCTAssertEqual(e?.tensor, "critic \(t.networks.head.parameters.names[0])")
        }
        XCTAssertEqual(DistillCheckpoint.all(in: run).map(\.step), [])
    }

    func testSettingsThatCannotRunAreRefused() throws {
        let run = temporaryFolder(self, "distill-refused")
        XCTAssertThrowsError(try trainer(config(lr: 1e39), run: run)) { error in
            guard case .badConfig(let message)? = error as? DistillError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("learning rate 1e+39") && message.contains("Float"), message)
        }
        XCTAssertThrowsError(try trainer(config(iterations: 0), run: run)) { error in
            XCTAssertTrue("\(error)".contains("iterations 0 must be ≥ 1"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.path), "nothing written")
    }
}
