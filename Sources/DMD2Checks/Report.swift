// A readable gradient-check report over a list of op cases (used by `dmd2 gradcheck`).
import DMD2Core
import Foundation

public struct GradCheckReportLine: Sendable {
    public var label: String
    public var passed: Bool
    public var message: String
    public var seconds: Double
}

public enum GradCheckReport {
    /// Run every check on every case, calling `progress` after each; returns one line per case.
    public static func run(_ cases: [OpCase], progress: (GradCheckReportLine, Int, Int) -> Void = { _, _, _ in }) -> [GradCheckReportLine] {
        var lines: [GradCheckReportLine] = []
        for (i, c) in cases.enumerated() {
            let start = Date()
            var line = GradCheckReportLine(label: c.label, passed: true, message: "ok", seconds: 0)
            do { try GradCheck.all(c) } catch {
                line.passed = false
                line.message = "\(error)"
            }
            line.seconds = Date().timeIntervalSince(start)
            lines.append(line)
            progress(line, i + 1, cases.count)
        }
        return lines
    }
}
