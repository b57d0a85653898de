// A progress display for training loops: iteration/total, rate, ETA and a free-form status
// (e.g. "loss 0.123 · 12.3 img/s").
//
// On a terminal the line is redrawn in place (carriage return + erase line), at most every
// `redrawInterval` seconds:
//   train  [#########---------------]  375/1000  37.5%  2.61 it/s  ETA 3m59s  loss 0.123 · 41.8 img/s
// Elsewhere (CI logs, files, pipes) a plain line is printed every `plainInterval` seconds and
// at the end, so logs stay readable:
//   train 375/1000 (37.5%) 2.61 it/s, elapsed 2m23s, ETA 3m59s | loss 0.123 · 41.8 img/s
// The rate is iterations done by this process over its elapsed time (a resumed run starts
// counting at its first iteration). Output goes through `print` and is flushed each time, so
// it interleaves correctly with other `print`ed lines; `message(_:)` prints a line above a
// live bar.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public final class ProgressBar {
    public let total: Int
    public let label: String
    /// Redraw in place (a terminal) or print plain lines.
    public let interactive: Bool
    /// Seconds between plain lines.
    public let plainInterval: Double
    /// Seconds between redraws on a terminal.
    public let redrawInterval: Double

    private let output: (String) -> Void
    private let clock: () -> Double
    private let startTime: Double
    private let startIteration: Int
    private var lastDraw: Double = -.infinity
    private var current: (iteration: Int, status: String)
    private var barShown = false

    /// - Parameters:
    ///   - startIteration: where this process starts (a resumed run's step), for the rate.
    ///   - interactive: nil: whether stdout is a terminal.
    ///   - output: where text goes (default: stdout, flushed).
    ///   - clock: seconds on a monotonic clock (tests pass a fake one).
    public init(total: Int, label: String = "", startIteration: Int = 0, interactive: Bool? = nil,
                plainInterval: Double = 10, redrawInterval: Double = 0.1,
                output: ((String) -> Void)? = nil, clock: (() -> Double)? = nil) {
        precondition(total >= 0 && startIteration >= 0, "ProgressBar: total \(total) and start \(startIteration) must be ≥ 0")
        self.total = total
        self.label = label
        self.interactive = interactive ?? (isatty(STDOUT_FILENO) != 0)
        self.plainInterval = plainInterval
        self.redrawInterval = redrawInterval
        self.output = output ?? { text in
            print(text, terminator: "")
            fflush(nil)
        }
        self.clock = clock ?? { ProcessInfo.processInfo.systemUptime }
        self.startTime = self.clock()
        self.startIteration = startIteration
        self.current = (startIteration, "")
    }

    /// Record progress; draws when the interval has passed (always at the last iteration).
    public func update(_ iteration: Int, status: String = "") {
        current = (iteration, status)
        let now = clock()
        let due = now - lastDraw >= (interactive ? redrawInterval : plainInterval)
        if due || iteration >= total { draw(now: now) }
    }

    /// A line of text above the bar (the bar is redrawn below it on a terminal).
    public func message(_ text: String) {
        if interactive && barShown {
            output("\r\u{1B}[2K" + text + "\n")
            draw(now: clock())
        } else {
            output(text + "\n")
        }
    }

    /// Draw the final state and end the line.
    public func finish(status: String? = nil) {
        if let status { current.status = status }
        draw(now: clock())
        if interactive { output("\n") }
        barShown = false
    }

    private func draw(now: Double) {
        lastDraw = now
        let text = Self.line(label: label, iteration: current.iteration, total: total, startIteration: startIteration,
                             elapsed: now - startTime, status: current.status, bar: interactive)
        if interactive {
            output("\r\u{1B}[2K" + text)
            barShown = true
        } else {
            output(text + "\n")
        }
    }

    // MARK: Formatting

    /// One progress line (with a bar for terminals).
    public static func line(label: String, iteration: Int, total: Int, startIteration: Int, elapsed: Double,
                            status: String, bar: Bool, barWidth: Int = 24) -> String {
        let done = iteration - startIteration
        let rate = elapsed > 0 && done > 0 ? Double(done) / elapsed : nil
        let fraction = total > 0 ? min(1, Double(iteration) / Double(total)) : 1
        let percent = String(format: "%.1f%%", 100 * fraction)
        let rateText = rate.map { String(format: $0 >= 10 ? "%.1f it/s" : "%.2f it/s", $0) } ?? "– it/s"
        let eta = rate.map { duration(Double(max(0, total - iteration)) / $0) } ?? "–"
        let name = label.isEmpty ? "" : label + (bar ? "  " : " ")
        if bar {
            let filled = Int((fraction * Double(barWidth)).rounded(.down))
            let gauge = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "]"
            return "\(name)\(gauge)  \(iteration)/\(total)  \(percent)  \(rateText)  ETA \(eta)" + (status.isEmpty ? "" : "  \(status)")
        }
        return "\(name)\(iteration)/\(total) (\(percent)) \(rateText), elapsed \(duration(elapsed)), ETA \(eta)"
            + (status.isEmpty ? "" : " | \(status)")
    }

    /// "42s", "3m59s", "1h02m".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "–" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }
}
