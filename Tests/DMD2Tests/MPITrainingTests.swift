// Data-parallel training over MPI (issue 19, docs/MPI.md), through the `dmd2` executable and
// `mpirun -np 2` over loopback on this machine. Opt-in (they start a dozen short MPI jobs: 3.5
// minutes on 2 busy cores): DMD2_MPI_TESTS=1. Without it, or without Open MPI's mpirun, each test is
// skipped with the reason (XCTest prints "skipped" with the message).
//
//   1. one iteration (two, so G's and the critic's steps are both seen) on 2 ranks equals one
//      process computing the same 2 shards, bitwise — teacher and distillation, both reductions;
//   2. a rank killed mid-run stops the job within seconds, leaves only complete checkpoints, and
//      the run resumes on 2 ranks and on 1 process to exactly the uninterrupted run's weights;
//      3 ranks on a 2-shard run are refused by name.
import DMD2Data
import Foundation
import SafeTensors
import XCTest

final class MPITrainingTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["DMD2_MPI_TESTS"] == "1" else {
            throw XCTSkip("MPI tests are opt-in: set DMD2_MPI_TESTS=1 (they run mpirun -np 2 over loopback, 3–4 minutes on 2 busy cores; Open MPI from scripts/setup.sh --mpi)")
        }
        guard Self.mpirun != nil else {
            throw XCTSkip("MPI tests: mpirun not found (install Open MPI: scripts/setup.sh --mpi, or apt-get install openmpi-bin libopenmpi-dev)")
        }
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("in64"), withIntermediateDirectories: true)
        let images = (0..<16).map { n in
            Image8(width: 64, height: 64, channels: 3, pixels: (0..<(64 * 64 * 3)).map { UInt8((n * 37 + $0 * 7) % 256) })
        }
        try NPZWriter.writeImageNetStyle(images: images, labels: (0..<16).map { $0 % 4 },
                                         to: folder.appendingPathComponent("in64/Imagenet64_train_part1.npz"))
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    static let mpirun: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun", "/opt/openmpi/bin/mpirun"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The `dmd2` executable `swift test` built next to the test bundle.
    private func dmd2() throws -> String {
        let directory = Bundle.main.bundleURL.lastPathComponent.hasSuffix(".xctest")
            ? Bundle.main.bundleURL.deletingLastPathComponent() : Bundle.main.bundleURL
        for candidate in [directory, Bundle.main.executableURL?.deletingLastPathComponent()].compactMap({ $0 }) {
            let url = candidate.appendingPathComponent("dmd2")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url.path }
        }
        throw XCTSkip("no dmd2 executable next to the test bundle (\(directory.path)); run `swift build -c release` first")
    }

    /// `dmd2 arguments` on `ranks` MPI ranks (nil: a plain process), in the test folder.
    private func start(_ arguments: [String], ranks: Int?) throws -> (Process, Pipe) {
        let process = Process()
        if let ranks {
            process.executableURL = URL(fileURLWithPath: Self.mpirun!)
            process.arguments = ["--oversubscribe", "-np", "\(ranks)", try dmd2()] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: try dmd2())
            process.arguments = arguments
        }
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["DMD2_NUM_THREADS"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"                     // CI containers run as root
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment["OMPI_MCA_btl"] = "self,vader,tcp"                  // loopback only
        environment.removeValue(forKey: "DMD2_MPI")
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return (process, pipe)
    }

    @discardableResult
    private func run(_ arguments: [String], ranks: Int?, expectFailure: Bool = false) throws -> String {
        let (process, pipe) = try start(arguments, ranks: ranks)
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let what = "\(ranks.map { "mpirun -np \($0) " } ?? "")dmd2 \(arguments.joined(separator: " "))"
        if expectFailure {
            XCTAssertNotEqual(process.terminationStatus, 0, "\(what) should fail:\n\(output)")
        } else {
            XCTAssertEqual(process.terminationStatus, 0, "\(what):\n\(output)")
        }
        return output
    }

    private func bytes(_ path: String) throws -> Data { try Data(contentsOf: folder.appendingPathComponent(path)) }

    private func assertSameFiles(_ a: String, _ b: String, _ files: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        for name in files {
            XCTAssertEqual(try bytes("\(a)/\(name)"), try bytes("\(b)/\(name)"), "\(a)/\(name) and \(b)/\(name) differ", file: file, line: line)
        }
    }

    private let teacher = ["train-teacher", "--data", "in64", "--channels", "1", "--batch", "4", "--threads", "1"]

    func testTwoRanksEqualOneProcessComputingTheSameShards() throws {
        try run(teacher + ["--steps", "2", "--shards", "2", "--checkpoint-every", "0", "--out", "runs/t1"], ranks: nil)
        let two = try run(teacher + ["--steps", "2", "--checkpoint-every", "0", "--out", "runs/t2"], ranks: 2)
        XCTAssertTrue(two.contains("2 ranks; 2 shards of 2 images (1 per rank)"), two)
        try run(teacher + ["--steps", "2", "--checkpoint-every", "0", "--out", "runs/t2a", "--reduction", "allreduce"], ranks: 2)
        let step = "checkpoints/step-00000002"
        try assertSameFiles("runs/t1/\(step)", "runs/t2/\(step)", ["net.safetensors", "ema.safetensors", "optimizer.safetensors"])
        // Two ranks' MPI_Allreduce is one addition, a + b = b + a: bitwise too.
        try assertSameFiles("runs/t1/\(step)", "runs/t2a/\(step)", ["net.safetensors", "optimizer.safetensors"])
        let logs = try ["runs/t1", "runs/t2"].map { try String(decoding: bytes("\($0)/log.jsonl"), as: UTF8.self) }
        let losses = logs.map { $0.split(separator: "\n").map { line in line.split(separator: ",").filter { $0.contains("\"loss\"") || $0.contains("grad_norm") } } }
        XCTAssertEqual(losses[0], losses[1], "the logged global loss and gradient norm agree")

        let distill = ["distill", "--teacher", "runs/t1", "--data", "in64", "--iterations", "2", "--batch", "4", "--ttur-ratio", "1",
                       "--checkpoint-every", "0", "--threads", "1"]
        try run(distill + ["--shards", "2", "--run", "runs/d1"], ranks: nil)
        try run(distill + ["--run", "runs/d2"], ranks: 2)
        try assertSameFiles("runs/d1/\(step)", "runs/d2/\(step)", ["generator.safetensors", "fake.safetensors", "head.safetensors",
                                                                  "optimizer_generator.safetensors", "optimizer_critic.safetensors"])
    }

    func testKilledRankStopsTheJobAndTheRunResumesOnAnyDividingRankCount() throws {
        let args = teacher + ["--steps", "6", "--checkpoint-every", "2"]
        try run(args + ["--shards", "2", "--out", "runs/full"], ranks: nil)

        let (job, pipe) = try start(args + ["--out", "runs/killed"], ranks: 2)
        let log = folder.appendingPathComponent("runs/killed/log.jsonl")
        let deadline = Date().addingTimeInterval(120)
        while !((try? String(contentsOf: log, encoding: .utf8))?.contains("\"step\":3") ?? false) {
            guard Date() < deadline, job.isRunning else { return XCTFail("the 2-rank job never reached step 3") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let rank1 = try XCTUnwrap(Self.child(of: job.processIdentifier, rank: 1), "rank 1's process under mpirun")
        let killed = Date()
        kill(rank1, SIGKILL)
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        let stopped = Date().timeIntervalSince(killed)
        XCTAssertNotEqual(job.terminationStatus, 0)
        XCTAssertLessThan(stopped, 10, "rank 0 kept running \(stopped) s after rank 1 died")
        XCTAssertTrue(output.contains("rank 1") && output.contains("exited on signal 9"), output)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("runs/killed/checkpoints").path)
        XCTAssertTrue(checkpoints.filter { $0.hasPrefix("step-") }.allSatisfy {
            FileManager.default.fileExists(atPath: folder.appendingPathComponent("runs/killed/checkpoints/\($0)/state.json").path)
        }, "every visible checkpoint is complete: \(checkpoints)")

        try FileManager.default.copyItem(at: folder.appendingPathComponent("runs/killed"), to: folder.appendingPathComponent("runs/killed1"))
        let resumed = try run(["train-teacher", "--data", "in64", "--resume", "--out", "runs/killed", "--threads", "1"], ranks: 2)
        XCTAssertTrue(resumed.contains("resuming runs/killed at step 2 of 6"), resumed)
        try run(["train-teacher", "--data", "in64", "--resume", "--out", "runs/killed1", "--threads", "1"], ranks: nil)
        let step = "checkpoints/step-00000006"
        for run in ["runs/killed", "runs/killed1"] {
            try assertSameFiles("runs/full/\(step)", "\(run)/\(step)", ["net.safetensors", "ema.safetensors", "optimizer.safetensors"])
        }
        let refused = try run(["train-teacher", "--data", "in64", "--resume", "--out", "runs/killed1", "--steps", "8", "--threads", "1"],
                              ranks: 3, expectFailure: true)
        XCTAssertTrue(refused.contains("3 ranks need a shard count that is a multiple of 3 (the run has 2 shards"), refused)
    }

    /// The child of `parent` (mpirun) whose environment says it is MPI rank `rank`.
    static func child(of parent: Int32, rank: Int) -> Int32? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == parent,
                  let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            let variables = environment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }
}
