// Issue 16's "Sizes" findings, as a new user met them, checked on the `dmd2` executable itself:
// each bad setting now ends with an exit status and a message naming the option (before: a trap
// in the allocator, a segfault in libgomp, "Missing value", a path printed twice, a sample that
// found out only afterwards that it could not write). All of them stop before any real work.
import DMD2Data
import Foundation
import XCTest

final class CLIBoundsTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-cli-bounds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let made = folder!
        addTeardownBlock { try? FileManager.default.removeItem(at: made) }
    }

    /// The `dmd2` executable `swift test` built next to the test bundle.
    private func dmd2() throws -> URL {
        let directory = Bundle.main.bundleURL.lastPathComponent.hasSuffix(".xctest")
            ? Bundle.main.bundleURL.deletingLastPathComponent() : Bundle.main.bundleURL
        for candidate in [directory, Bundle.main.executableURL?.deletingLastPathComponent()].compactMap({ $0 }) {
            let url = candidate.appendingPathComponent("dmd2")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("no dmd2 executable next to the test bundle (\(directory.path)); run `swift build -c release` first")
    }

    /// Runs dmd2, which must exit (not die of a signal) with a non-zero status; returns its output.
    private func refused(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let process = Process()
        process.executableURL = try dmd2()
        process.arguments = arguments
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["DMD2_NUM_THREADS"] = "2"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let command = "dmd2 \(arguments.joined(separator: " "))"
        XCTAssertEqual(process.terminationReason, .exit, "\(command) died of a signal:\n\(output)", file: file, line: line)
        XCTAssertNotEqual(process.terminationStatus, 0, "\(command) should fail:\n\(output)", file: file, line: line)
        return output
    }

    func testSizesAndCountsAreRefusedNamingTheOption() throws {
        var out = try refused(["train-teacher", "--batch", "-4", "--out", "r"])
        XCTAssertTrue(out.contains("--batch must be ≥ 1, got -4") && !out.contains("Missing value"), out)
        out = try refused(["train-teacher", "--threads", "100000", "--out", "r"])
        XCTAssertTrue(out.contains("--threads must lie in 1…256"), out)
        out = try refused(["train-teacher", "--steps", "0", "--out", "r"])
        XCTAssertTrue(out.contains("--steps must be ≥ 1, got 0"), out)
        out = try refused(["distill", "--iterations", "0", "--run", "d"])
        XCTAssertTrue(out.contains("--iterations must be ≥ 1, got 0"), out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("r").path), "nothing written")
    }

    /// --batch 100000000000 used to trap in the allocator (exit 134): the memory estimate refuses it.
    func testABatchThatCannotFitIsRefusedBeforeAllocating() throws {
        let data = folder.appendingPathComponent("in64")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let images = (0..<4).map { n in Image8(width: 64, height: 64, channels: 3, pixels: (0..<12288).map { UInt8(($0 * 7 + n * 31) % 256) }) }
        try NPZWriter.writeImageNetStyle(images: images, labels: [0, 1, 0, 1], to: data.appendingPathComponent("Imagenet64_train_part1.npz"))
        let out = try refused(["train-teacher", "--data", "in64", "--channels", "3", "--batch", "100000000000", "--out", "r"])
        XCTAssertTrue(out.contains("a training step of 100000000000 images needs at least") && out.contains("lower --batch"), out)
        // Refused before the run folder is created or locked: nothing is left behind.
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("r").path), "run folder left behind")
    }

    /// A checkpoint that does not load is named once ("…from X: X: …" before); an output folder
    /// that cannot be written is refused before sampling.
    func testSampleNamesTheFileOnceAndChecksItsOutputFirst() throws {
        let bad = folder.appendingPathComponent("bad.safetensors")
        try Data("garbage".utf8).write(to: bad)
        let out = try refused(["sample", "--checkpoint", bad.path, "--out", "s.png"])
        XCTAssertEqual(out.components(separatedBy: bad.path).count - 1, 1, "the path once: \(out)")
        XCTAssertTrue(out.contains("shorter than the 8-byte header-size prefix"), out)
        let blocker = folder.appendingPathComponent("blocker")
        try Data([1]).write(to: blocker)
        let teacher = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("models/teacher-cpu64Tiny-fashion64.safetensors")
        guard FileManager.default.fileExists(atPath: teacher.path) else { throw XCTSkip("no shipped teacher at \(teacher.path)") }
        let started = Date()
        let denied = try refused(["sample", "--checkpoint", teacher.path, "--out", "blocker/s.png"])
        XCTAssertTrue(denied.contains("--out") && denied.contains("blocker"), denied)
        XCTAssertLessThan(Date().timeIntervalSince(started), 20, "refused before sampling")
        XCTAssertFalse(denied.contains("step"), "no sampling happened: \(denied)")
    }
}
