// `dmd2 plot-log`: curves from a run's log.jsonl (distill or train-teacher) as SVG and PNG — the
// losses, gradient norms or brightness against the iteration, smoothed by a running mean.
import ArgumentParser
import DMD2Plot
import Foundation

struct PlotLog: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot-log",
        abstract: "Plot fields of a log.jsonl (e.g. L_DM, L_fake, L_D, L_G, brightness) against the step, as SVG and PNG.",
        discussion: "The x axis is each line's `step` (or `iteration`). Each field becomes one series over the lines that have it (L_DM and L_G only on generator iterations). --smooth N plots the running mean over the last N values. Several logs (--log A --log B) give one series per log and field, named by the run folder.")

    @Option(name: .long, help: "A log.jsonl file or a run folder holding one (repeatable).")
    var log: [String] = []
    @Option(name: .long, help: "Comma-separated fields to plot.")
    var fields: String = "L_DM,L_fake,L_D,L_G"
    @Option(name: .long, help: "Running mean over this many values (1: raw).")
    var smooth: Int = 20
    @Flag(name: .long, help: "Logarithmic y axis.")
    var logY = false
    @Option(name: .long, help: "Title of the plot.")
    var title: String?
    @Option(name: .long, help: "Output file without extension: <out>.svg and <out>.png are written.")
    var out: String = "runs/log-plot"

    func validate() throws {
        guard !log.isEmpty else { throw ValidationError("give at least one --log") }
        guard smooth >= 1 else { throw ValidationError("--smooth must be ≥ 1") }
    }

    func run() throws {
        let keys = fields.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var series: [LineSeries] = []
        for path in log {
            var url = URL(fileURLWithPath: path)
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
                url = url.appendingPathComponent("log.jsonl")
            }
            guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw CLIError("cannot read \(url.path)") }
            var points: [String: [(Double, Double)]] = [:]
            for (n, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    throw CLIError("\(url.path): line \(n + 1) is not a JSON object")
                }
                guard let step = ((object["step"] ?? object["iteration"]) as? NSNumber)?.doubleValue else { continue }
                for key in keys {
                    if let v = (object[key] as? NSNumber)?.doubleValue, v.isFinite { points[key, default: []].append((step, v)) }
                }
            }
            let runName = log.count > 1 ? url.deletingLastPathComponent().lastPathComponent + " " : ""
            for key in keys {
                guard let p = points[key], !p.isEmpty else {
                    print("note: \(url.path) has no values of '\(key)'")
                    continue
                }
                var smoothed: [Double] = [], window: [Double] = [], sum = 0.0
                for (_, v) in p {
                    window.append(v)
                    sum += v
                    if window.count > smooth { sum -= window.removeFirst() }
                    smoothed.append(sum / Double(window.count))
                }
                series.append(LineSeries(runName + key, x: p.map(\.0), y: smoothed))
            }
        }
        guard !series.isEmpty else { throw CLIError("nothing to plot: none of \(keys) found") }
        let plot = LinePlot(title: title ?? (smooth > 1 ? "running mean over \(smooth)" : ""), xLabel: "step", yLabel: keys.joined(separator: ", "),
                            logY: logY, series: series)
        let base = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: base.deletingLastPathComponent(), withIntermediateDirectories: true)
        try plot.writeSVG(to: base.appendingPathExtension("svg"))
        try plot.writePNG(to: base.appendingPathExtension("png"))
        print("wrote \(out).svg, \(out).png (\(series.count) series)")
    }
}
