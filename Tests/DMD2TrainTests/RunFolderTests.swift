// RunFolderLock, RunFolder.checkWritable, SettingChange, NonFinite.checkState and the precision
// check of AdamW's settings.
import DMD2Core
import DMD2Train
import Foundation
import XCTest

final class RunFolderTests: XCTestCase {
    func temporary() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("run-folder-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// flock is per open file description: a second lock from this process conflicts, names
    /// this PID, and succeeds once the first is released.
    func testSecondLockIsRefusedNamingThePID() throws {
        let folder = temporary()
        var first: RunFolderLock? = try RunFolderLock(folder)
        XCTAssertEqual(RunFolderLock.holder(of: folder), getpid())
        XCTAssertThrowsError(try RunFolderLock.checkUnlocked(folder)) { XCTAssertEqual(($0 as? RunFolderError)?.holder, getpid()) }
        XCTAssertThrowsError(try RunFolderLock(folder)) { error in
            let e = error as? RunFolderError
            XCTAssertEqual(e?.kind, .locked)
            XCTAssertEqual(e?.holder, getpid())
            XCTAssertTrue("\(error)".contains("PID \(getpid())"), "\(error)")
        }
        withExtendedLifetime(first) {}
        first = nil
        XCTAssertNil(RunFolderLock.holder(of: folder))
        XCTAssertNoThrow(try RunFolderLock.checkUnlocked(folder))
        XCTAssertNoThrow(try RunFolderLock(folder))
    }

    /// Another process (flock(1)) holding the lock: refused at once naming its PID.
    func testLockHeldByAnotherProcess() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/flock") else { throw XCTSkip("no /usr/bin/flock") }
        let folder = temporary()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let lockFile = folder.appendingPathComponent(RunFolderLock.fileName).path
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "echo $$ > '\(lockFile)'; exec /usr/bin/flock -n '\(lockFile)' sleep 3"]
        try holder.run()
        defer { holder.waitUntilExit() }                                 // flock(1) waits for its sleep
        let deadline = Date().addingTimeInterval(10)
        while RunFolderLock.holder(of: folder) == nil && Date() < deadline { usleep(20_000) }
        let started = Date()
        XCTAssertThrowsError(try RunFolderLock(folder)) { error in
            XCTAssertEqual((error as? RunFolderError)?.holder, holder.processIdentifier, "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "refused at once, not after waiting")
    }

    func testWritableCheck() throws {
        let root = temporary()
        XCTAssertNoThrow(try RunFolder.checkWritable(root.appendingPathComponent("a/b"), what: "output folder"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("a/b").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("a/b").path), [], "no probe left")
        let file = root.appendingPathComponent("file")
        try Data([1]).write(to: file)
        XCTAssertThrowsError(try RunFolder.checkWritable(file, what: "output folder")) { XCTAssertTrue("\($0)".contains("is a file"), "\($0)") }
        XCTAssertThrowsError(try RunFolder.checkWritable(file.appendingPathComponent("below"), what: "run folder")) {
            XCTAssertEqual(($0 as? RunFolderError)?.kind, .notWritable)
            XCTAssertTrue("\($0)".contains("run folder"), "\($0)")
        }
    }

    func testSettingChangesNameEachLeaf() {
        let a = AdamWConfig(learningRate: 1e-3, warmUpSteps: 2)
        var b = a
        XCTAssertEqual(SettingChange.between(a, b), [])
        b.learningRate = 2e-3
        b.warmUpSteps = 0
        XCTAssertEqual(SettingChange.between(a, b), [SettingChange(key: "learningRate", run: "0.001", requested: "0.002"),
                                                     SettingChange(key: "warmUpSteps", run: "2", requested: "0")])
        XCTAssertEqual(SettingChange.between(a, b, ignoring: ["warmUpSteps"]).map(\.key), ["learningRate"])
        XCTAssertEqual(SettingChange.between(EMASchedule.decay(0.9), EMASchedule.halfLife(images: 10, rampUp: nil)).map(\.key),
                       ["decay._0", "halfLife.images"])
    }

    /// The state guard names the first bad tensor: a parameter, a moment or the EMA.
    func testStateCheckNamesTheTensor() throws {
        let w = Variable(Tensor<Float>(shape: [2], scalars: [1, 2]), requiresGrad: true, name: "w")
        let optimizer = AdamW(parameters: [("w", w)], config: AdamWConfig(learningRate: 0.1))
        XCTAssertNoThrow(try NonFinite.checkState(optimizer, ema: [w.value], step: 0, phase: .afterUpdate))
        XCTAssertThrowsError(try NonFinite.checkState(optimizer, ema: [Tensor(shape: [2], scalars: [0, .nan])], prefix: "G ", step: 3, phase: .beforeSave)) {
            XCTAssertEqual($0 as? NonFiniteError, NonFiniteError(step: 3, tensor: "EMA of G w", nanCount: 1, infinityCount: 0, phase: .beforeSave))
        }
        // An infinite gradient (past the gradient check) makes the update write ±∞/NaN.
        w.grad = Tensor(shape: [2], scalars: [.infinity, 1])
        optimizer.step()
        XCTAssertThrowsError(try NonFinite.checkState(optimizer, step: 1, phase: .afterUpdate)) { error in
            XCTAssertEqual((error as? NonFiniteError)?.tensor, "w")
            XCTAssertTrue("\(error)".contains("written by the update"), "\(error)")
        }
    }

    func testLearningRatesAreCheckedInTheNetworksPrecision() {
        XCTAssertNil(AdamWConfig(learningRate: 1e-3).precisionProblem(in: Float.self))
        XCTAssertNotNil(AdamWConfig(learningRate: 1e39).precisionProblem(in: Float.self))
        XCTAssertNil(AdamWConfig(learningRate: 1e39).precisionProblem(in: Double.self))
        // lr/(1 − β₁) = 1e39 overflows Float although lr does not.
        XCTAssertTrue(AdamWConfig(learningRate: 1e38).precisionProblem(in: Float.self)?.contains("first step size") ?? false)
        XCTAssertTrue(AdamWConfig(learningRate: 1e-3, eps: 1e-50).precisionProblem(in: Float.self)?.contains("eps") ?? false)
    }
}
