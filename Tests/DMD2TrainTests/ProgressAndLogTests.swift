// ProgressBar formatting and pacing, JSON-lines logs, non-finite detection.
import DMD2Core
import DMD2Train
import Foundation
import DMD2TestSupport
import XCTest

final class ProgressBarTests: CheckedTestCase {
    func testLineFormats() {
        let bar = ProgressBar.line(label: "train", iteration: 375, total: 1000, startIteration: 0, elapsed: 143.7,
                                   status: "loss 0.123 · 41.8 img/s", bar: true, barWidth: 8)
        XCTAssertEqual(bar, "train  [###-----]  375/1000  37.5%  2.61 it/s  ETA 4m00s  loss 0.123 · 41.8 img/s")
        let plain = ProgressBar.line(label: "train", iteration: 375, total: 1000, startIteration: 0, elapsed: 143.7,
                                     status: "loss 0.123", bar: false)
        XCTAssertEqual(plain, "train 375/1000 (37.5%) 2.61 it/s, elapsed 2m24s, ETA 4m00s | loss 0.123")
        // A resumed run measures its rate from where it started; before any step there is none.
        XCTAssertEqual(ProgressBar.line(label: "", iteration: 600, total: 1000, startIteration: 500, elapsed: 10,
                                        status: "", bar: false),
                       "600/1000 (60.0%) 10.0 it/s, elapsed 10s, ETA 40s")
        XCTAssertEqual(ProgressBar.line(label: "", iteration: 500, total: 1000, startIteration: 500, elapsed: 0,
                                        status: "", bar: false),
                       "500/1000 (50.0%) – it/s, elapsed 0s, ETA –")
        XCTAssertEqual(ProgressBar.duration(42), "42s")
        XCTAssertEqual(ProgressBar.duration(3720), "1h02m")
    }

    /// Plain mode prints a line every `plainInterval` seconds and always the last iteration;
    /// terminal mode redraws in place with a carriage return.
    func testPacing() {
        var time = 0.0
        var plain: [String] = []
        let bar = ProgressBar(total: 10, label: "t", interactive: false, plainInterval: 5,
                              output: { plain.append($0) }, clock: { time })
        for i in 1...10 {
            time = Double(i) * 2                          // 2 s per iteration
            bar.update(i, status: "i=\(i)")
        }
        // Drawn at t = 2 (first), 8, 14, 20 (and the last, i = 10 at t = 20).
        XCTAssertEqual(plain.count, 4, "\(plain)")
        XCTAssertTrue(plain.allSatisfy { $0.hasSuffix("\n") && !$0.contains("\r") })
        XCTAssertTrue(plain.last!.hasPrefix("t 10/10 (100.0%)"), plain.last!)

        var tty: [String] = []
        let live = ProgressBar(total: 3, interactive: true, redrawInterval: 0, output: { tty.append($0) }, clock: { time })
        live.update(1)
        live.message("checkpoint written")
        live.finish(status: "done")
        XCTAssertTrue(tty[0].hasPrefix("\r\u{1B}[2K["))
        XCTAssertEqual(tty[1], "\r\u{1B}[2Kcheckpoint written\n")
        XCTAssertTrue(tty.last == "\n" && tty[tty.count - 2].hasSuffix("done"))
    }
}

final class JSONLinesLogTests: CheckedTestCase {
    struct Line: Codable, Equatable {
        var step: Int
        var loss: Double
    }

    func testWriteAndTruncate() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            let log = try JSONLinesLog(url: url)
            for step in 1...4 { try log.write(Line(step: step, loss: 1 / Double(step))) }
            try log.write(Line(step: 5, loss: .nan))
        }
        var text = try String(contentsOf: url, encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 5)
        XCTAssertEqual(lines[1], #"{"loss":0.5,"step":2}"#)
        XCTAssertEqual(lines[4], #"{"loss":"nan","step":5}"#)
        XCTAssertEqual(try JSONDecoder().decode(Line.self, from: Data(lines[0].utf8)), Line(step: 1, loss: 1))

        try JSONLinesLog.truncate(url) { ($0["step"] as? Int ?? .max) <= 2 }
        do {
            let log = try JSONLinesLog(url: url)                          // appends
            try log.write(Line(step: 3, loss: 0.25))
        }
        text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertEqual(text, #"{"loss":1,"step":1}"# + "\n" + #"{"loss":0.5,"step":2}"# + "\n" + #"{"loss":0.25,"step":3}"# + "\n")
    }
}

final class NonFiniteTests: CheckedTestCase {
    func testNamesStepAndTensor() {
        let a = Variable(Tensor<Float>(shape: [3], scalars: [1, 2, 3]), requiresGrad: true)
        let b = Variable(Tensor<Float>(shape: [3], scalars: [1, 2, 3]), requiresGrad: true)
        a.grad = Tensor(shape: [3], scalars: [0, 1, 2])
        b.grad = Tensor(shape: [3], scalars: [.nan, .infinity, -.infinity])
        XCTAssertNoThrow(try NonFinite.checkGradients(names: ["a"], parameters: [a], step: 1))
        XCTAssertThrowsError(try NonFinite.checkGradients(names: ["a", "b"], parameters: [a, b], step: 12)) { error in
            XCTAssertEqual(error as? NonFiniteError, NonFiniteError(step: 12, tensor: "grad of b", nanCount: 1, infinityCount: 2))
            XCTAssertTrue("\(error)".contains("step 12 in grad of b"), "\(error)")
        }
        XCTAssertThrowsError(try NonFinite.check(Tensor<Double>(scalar: .nan), name: "loss", step: 3)) { error in
            XCTAssertEqual((error as? NonFiniteError)?.tensor, "loss")
        }
    }
}
