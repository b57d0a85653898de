// `dmd2 report`: one Markdown table from several distill runs grouped into rows (e.g. one row per
// ablation setting, one run per seed): the mean ± standard deviation over each row's runs of the
// metrics `dmd2 eval` wrote into <run>/eval/metrics.json, plus what the run's log.jsonl says about
// training (wall time, generator updates, how much the batch brightness swings).
import ArgumentParser
import Foundation

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarise distill runs (grouped into rows, e.g. seeds of one setting) as a Markdown table of mean ± sd.",
        discussion: """
            Each --row is LABEL=RUN[,RUN…]. A run is a distill folder holding log.jsonl and an eval \
            folder (--eval-folder, default eval/) with the metrics.json of `dmd2 eval`. Columns: FID, \
            KID×10³, precision, recall, class consistency, brightness sd (standard deviation of the mean \
            brightness of G's batch over the second half of the run: the TTUR oscillation), \
            high-frequency energy vs real, generator updates and training minutes. A second table lists \
            every run. Missing files are named; nothing is skipped silently.
            """)

    @Option(name: .long, help: "LABEL=RUN[,RUN…] (repeatable; one table row each).")
    var row: [String] = []
    @Option(name: .long, help: "The eval folder inside each run.")
    var evalFolder: String = "eval"
    @Option(name: .long, help: "Write the tables to this Markdown file (default: print only).")
    var out: String?

    func validate() throws {
        guard !row.isEmpty else { throw ValidationError("give at least one --row LABEL=RUN[,RUN…]") }
        for r in row where !r.contains("=") { throw ValidationError("--row '\(r)' is not LABEL=RUN[,RUN…]") }
    }

    /// What one run contributes.
    struct RunSummary {
        var run: String
        var fid: Double?
        var kid: Double?
        var precision: Double?
        var recall: Double?
        var classConsistency: Double?
        var highFrequency: Double?
        var brightnessSD: Double
        var generatorUpdates: Int
        var iterations: Int
        var trainingMinutes: Double
    }

    static func summarise(run: String, evalFolder: String) throws -> RunSummary {
        let folder = URL(fileURLWithPath: run)
        let logURL = folder.appendingPathComponent("log.jsonl")
        guard let text = try? String(contentsOf: logURL, encoding: .utf8) else { throw CLIError("\(run): no log.jsonl (is it a distill run folder?)") }
        var brightness: [Double] = [], seconds = 0.0, updates = 0, iterations = 0
        for (n, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw CLIError("\(logURL.path): line \(n + 1) is not a JSON object")
            }
            iterations += 1
            if let b = (object["brightness"] as? NSNumber)?.doubleValue { brightness.append(b) }
            if let s = (object["seconds"] as? NSNumber)?.doubleValue { seconds += s }
            if (object["generator_step"] as? Bool) == true { updates += 1 }
        }
        guard iterations > 0 else { throw CLIError("\(logURL.path) is empty") }
        let half = Array(brightness.suffix(brightness.count / 2))
        let metricsURL = folder.appendingPathComponent(evalFolder).appendingPathComponent("metrics.json")
        guard let data = try? Data(contentsOf: metricsURL),
              let m = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CLIError("\(run): no readable \(evalFolder)/metrics.json (run `dmd2 eval --generator \(run) --out \(metricsURL.deletingLastPathComponent().path)`)")
        }
        func number(_ path: String...) -> Double? {
            var value: Any? = m
            for key in path { value = (value as? [String: Any])?[key] }
            return (value as? NSNumber)?.doubleValue
        }
        return RunSummary(run: run, fid: number("fid"), kid: number("kid", "mean").map { $0 * 1000 }, precision: number("precision"),
                          recall: number("recall"), classConsistency: number("classConsistency", "accuracy"),
                          highFrequency: number("highFrequencyRatioVsReference"), brightnessSD: standardDeviation(half),
                          generatorUpdates: updates, iterations: iterations, trainingMinutes: seconds / 60)
    }

    static func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
    /// Sample standard deviation (n − 1); 0 for a single value.
    static func standardDeviation(_ xs: [Double]) -> Double {
        guard xs.count > 1 else { return 0 }
        let m = mean(xs)
        return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)).squareRoot()
    }

    /// "m ± sd" over the runs that have the value (– when none has it).
    static func cell(_ values: [Double?], digits: Int) -> String {
        let xs = values.compactMap { $0 }
        guard !xs.isEmpty else { return "–" }
        let f = "%.\(digits)f"
        if xs.count == 1 { return String(format: f, xs[0]) }
        return String(format: "\(f) ± \(f)", mean(xs), standardDeviation(xs))
    }

    func run() throws {
        var lines = ["| setting | runs | FID ↓ | KID×10³ ↓ | precision | recall | class consistency | brightness sd | HF vs real | G updates | train min/run |",
                     "|---|---|---|---|---|---|---|---|---|---|---|"]
        var perRun = ["| setting | run | FID | KID×10³ | class consistency | brightness sd | train min |", "|---|---|---|---|---|---|---|"]
        for r in row {
            let parts = r.split(separator: "=", maxSplits: 1).map(String.init)
            let label = parts[0]
            let runs = parts[1].split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !runs.isEmpty else { throw CLIError("--row '\(label)' names no runs") }
            let s = try runs.map { try Self.summarise(run: $0, evalFolder: evalFolder) }
            lines.append("| \(label) | \(s.count) | \(Self.cell(s.map(\.fid), digits: 1)) | \(Self.cell(s.map(\.kid), digits: 0)) | "
                + "\(Self.cell(s.map(\.precision), digits: 3)) | \(Self.cell(s.map(\.recall), digits: 3)) | "
                + "\(Self.cell(s.map(\.classConsistency), digits: 3)) | \(Self.cell(s.map { $0.brightnessSD }, digits: 3)) | "
                + "\(Self.cell(s.map(\.highFrequency), digits: 2)) | \(Self.cell(s.map { Double($0.generatorUpdates) }, digits: 0)) | "
                + "\(Self.cell(s.map { $0.trainingMinutes }, digits: 1)) |")
            for x in s {
                func f(_ v: Double?, _ d: Int) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "–" }
                perRun.append("| \(label) | `\(x.run)` | \(f(x.fid, 1)) | \(f(x.kid, 0)) | \(f(x.classConsistency, 3)) | "
                    + "\(String(format: "%.3f", x.brightnessSD)) | \(String(format: "%.1f", x.trainingMinutes)) |")
            }
        }
        let text = lines.joined(separator: "\n") + "\n\nEvery run:\n\n" + perRun.joined(separator: "\n") + "\n"
        print(text, terminator: "")
        if let out {
            let url = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
            print("wrote \(out)")
        }
    }
}
