// `--data` with a downsampled-ImageNet npz through the command line (issue 16, part 1): the
// test writes a small ImageNet-64-style folder (two train parts and a val file, `data` uint8
// [N, 12288] channel-planar, `labels` 1-based) and runs `dmd2 train-teacher` and `dmd2 distill`
// on it at the smallest settings, as docs/DATA.md shows.
import DMD2Data
import Foundation
import SafeTensors
import XCTest

final class ImageNetCLITests: XCTestCase {
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

    @discardableResult
    private func run(_ arguments: [String], in folder: URL, expectFailure: Bool = false) throws -> String {
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
        if expectFailure {
            XCTAssertNotEqual(process.terminationStatus, 0, "dmd2 \(arguments.joined(separator: " ")) should fail:\n\(output)")
        } else {
            XCTAssertEqual(process.terminationStatus, 0, "dmd2 \(arguments.joined(separator: " ")):\n\(output)")
        }
        return output
    }

    /// Image n: pixel (y, x, c) = (n·37 + c·91 + y·5 + x·11) mod 256.
    private func image(_ n: Int) -> Image8 {
        var pixels = [UInt8](repeating: 0, count: 64 * 64 * 3)
        for y in 0..<64 { for x in 0..<64 { for c in 0..<3 { pixels[(y * 64 + x) * 3 + c] = UInt8((n * 37 + c * 91 + y * 5 + x * 11) % 256) } } }
        return Image8(width: 64, height: 64, channels: 3, pixels: pixels)
    }

    func testTrainTeacherAndDistillOnAnImageNet64StyleFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-in64-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("in64"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for (name, range) in [("Imagenet64_train_part1.npz", 0..<6), ("Imagenet64_train_part2.npz", 6..<12), ("Imagenet64_val.npz", 12..<16)] {
            try NPZWriter.writeImageNetStyle(images: range.map(image), labels: range.map { $0 % 4 },
                                             to: folder.appendingPathComponent("in64/\(name)"))
        }
        let threads = ["--threads", "2"]
        let teacher = try run(["train-teacher", "--data", "in64", "--channels", "3", "--steps", "2", "--batch", "2",
                               "--checkpoint-every", "0", "--out", "runs/teacher"] + threads, in: folder)
        XCTAssertTrue(teacher.contains("(+1 more), 12 images 64×64×3, 4 classes"), teacher)
        let net = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("runs/teacher/checkpoints/step-00000002/net.safetensors"))
        XCTAssertTrue(net.metadata["config"]?.contains("\"labelDim\":4") == true, "the label dimension follows the data: \(net.metadata)")

        let distill = try run(["distill", "--teacher", "runs/teacher", "--data", "in64", "--iterations", "1", "--batch", "2",
                               "--checkpoint-every", "0", "--run", "runs/distill"] + threads, in: folder)
        XCTAssertTrue(distill.contains("real images: ") && distill.contains("12 images"), distill)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("runs/distill/checkpoints/step-00000001").path))

        // A wrong --data-format is a clear error, not a crash.
        let wrong = try run(["train-teacher", "--data", "in64", "--data-format", "edm", "--steps", "1", "--out", "runs/x"] + threads,
                            in: folder, expectFailure: true)
        XCTAssertTrue(wrong.contains("no PNG images found"), wrong)
    }
}
