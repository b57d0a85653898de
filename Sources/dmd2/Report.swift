// `dmd2 report`: Markdown tables from distill runs grouped into rows (e.g. one row per ablation
// setting, one run per seed): the mean ± standard deviation over each row's runs of the metrics
// `dmd2 eval` wrote into <run>/eval/metrics.json, plus what the run's log.jsonl says about
// training (wall time, generator updates, how much the batch brightness swings); and from plain
// eval folders (a teacher's sampler at several step counts): evaluations, metrics, time per image.
import ArgumentParser
import DMD2Metrics
import DMD2Train
import Foundation

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarise distill runs (grouped into rows, e.g. seeds of one setting) and eval folders as Markdown tables of mean ± sd.",
        discussion: """
            Each --row is LABEL=RUN[,RUN…]. A run is a distill folder holding log.jsonl and an eval \
            folder (--eval-folder, default eval/) with the metrics.json of `dmd2 eval`. Columns: FID, \
            KID×10³, precision, recall, class consistency, brightness sd (standard deviation of the mean \
            brightness of G's batch over the second half of the run: the TTUR oscillation), \
            high-frequency energy vs real, generator updates and training minutes. A second table lists \
            every run. With --training-only the eval is not needed (metric columns are left out). Each \
            --eval is LABEL=FOLDER[,FOLDER…] of `dmd2 eval --out` folders: network evaluations per image, \
            the metrics and sampling seconds per image. Missing files are named; nothing is skipped silently.
            """)

    @Option(name: .long, help: "LABEL=RUN[,RUN…] of distill runs (repeatable; one table row each).")
    var row: [String] = []
    @Option(name: .long, help: "LABEL=FOLDER[,FOLDER…] of `dmd2 eval` output folders (repeatable; one row each).")
    var eval: [String] = []
    @Flag(name: .long, help: "Distill runs: training columns only (no eval needed).")
    var trainingOnly = false
    @Option(name: .long, help: "Brightness statistics over the iterations from this one on (default: the second half of each run).")
    var fromIteration: Int?
    @Option(name: .long, help: "The eval folder inside each run.")
    var evalFolder: String = "eval"
    @Option(name: .long, help: "Write the tables to this Markdown file (default: print only).")
    var out: String?

    func validate() throws {
        guard !row.isEmpty || !eval.isEmpty else { throw ValidationError("give at least one --row LABEL=RUN[,RUN…] or --eval LABEL=FOLDER[,FOLDER…]") }
        for r in row + eval where !r.contains("=") { throw ValidationError("'\(r)' is not LABEL=PATH[,PATH…]") }
        if let fromIteration, fromIteration < 0 { throw ValidationError("--from-iteration must be ≥ 0") }
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
        var brightnessRange: ClosedRange<Double>
        var generatorUpdates: Int
        var iterations: Int
        var trainingMinutes: Double
    }

    static func summarise(run: String, evalFolder: String?, fromIteration: Int?) throws -> RunSummary {
        let folder = URL(fileURLWithPath: run)
        let logURL = folder.appendingPathComponent("log.jsonl")
        guard let text = try? String(contentsOf: logURL, encoding: .utf8) else { throw CLIError("\(run): no log.jsonl (is it a distill run folder?)") }
        let log: TrainingLogSummary
        do { log = try TrainingLogSummary(jsonLines: text, fromIteration: fromIteration, name: logURL.path) } catch { throw CLIError("\(error)") }
        let (low, high) = (log.brightnessRange!.lowerBound, log.brightnessRange!.upperBound)
        let (updates, iterations, seconds) = (log.generatorUpdates, log.iterations, log.seconds)
        let window = log.brightness
        guard let evalFolder else {
            return RunSummary(run: run, brightnessSD: SeedStatistics.standardDeviation(window), brightnessRange: low...high,
                              generatorUpdates: updates, iterations: iterations, trainingMinutes: seconds / 60)
        }
        let metricsURL = folder.appendingPathComponent(evalFolder).appendingPathComponent("metrics.json")
        // Several evaluation seeds: their means (the seed-to-seed spread of training is the table's ±).
        let m = MetricSpread(try readMetrics(metricsURL, hint: "run `dmd2 eval --generator \(run) --out \(metricsURL.deletingLastPathComponent().path)`"))
        return RunSummary(run: run, fid: m.fid?.mean, kid: m.kid.map { $0.mean * 1000 }, precision: m.precision?.mean,
                          recall: m.recall?.mean, classConsistency: m.classConsistency?.mean,
                          highFrequency: m.highFrequencyRatioVsReference?.mean, brightnessSD: SeedStatistics.standardDeviation(window),
                          brightnessRange: low...high,
                          generatorUpdates: updates, iterations: iterations, trainingMinutes: seconds / 60)
    }

    /// "m ± sd" over the runs that have the value (– when none has it).
    static func cell(_ values: [Double?], digits: Int) -> String {
        let xs = values.compactMap { $0 }
        guard !xs.isEmpty else { return "–" }
        let f = "%.\(digits)f"
        if xs.count == 1 { return String(format: f, xs[0]) }
        return String(format: "\(f) ± \(f)", SeedStatistics.mean(xs), SeedStatistics.standardDeviation(xs))
    }

    /// A metrics.json written by `dmd2 eval`: its report per evaluation seed (an `EvaluationSummary`),
    /// or the one report of an eval folder written before the seeds and floor existed.
    static func readMetrics(_ url: URL, hint: String) throws -> [EvaluationReport] {
        guard let data = try? Data(contentsOf: url) else { throw CLIError("cannot read \(url.path) (\(hint))") }
        if let summary = try? JSONDecoder().decode(EvaluationSummary.self, from: data) { return summary.runs }
        do { return [try JSONDecoder().decode(EvaluationReport.self, from: data)] } catch {
            throw CLIError("\(url.path) is not a metrics.json of `dmd2 eval`: \(error)")
        }
    }

    static func split(_ r: String) throws -> (label: String, paths: [String]) {
        let parts = r.split(separator: "=", maxSplits: 1).map(String.init)
        let paths = parts.count < 2 ? [] : parts[1].split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !paths.isEmpty else { throw CLIError("'\(r)' names no runs or folders") }
        return (parts[0], paths)
    }

    func distillTables() throws -> String {
        let metrics = !trainingOnly
        var header = ["setting", "runs"]
        if metrics { header += ["FID ↓", "KID×10³ ↓", "precision", "recall", "class consistency"] }
        header += ["brightness sd", "brightness range"]
        if metrics { header += ["HF vs real"] }
        header += ["G updates", "train min/run"]
        var lines = ["| " + header.joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: header.count)]
        var everyHeader = ["setting", "run"]
        if metrics { everyHeader += ["FID", "KID×10³", "class consistency"] }
        everyHeader += ["brightness sd", "train min"]
        var perRun = ["| " + everyHeader.joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: everyHeader.count)]
        for r in row {
            let (label, runs) = try Self.split(r)
            let s = try runs.map { try Self.summarise(run: $0, evalFolder: trainingOnly ? nil : evalFolder, fromIteration: fromIteration) }
            var cells = [label, "\(s.count)"]
            if metrics {
                cells += [Self.cell(s.map(\.fid), digits: 1), Self.cell(s.map(\.kid), digits: 0), Self.cell(s.map(\.precision), digits: 3),
                          Self.cell(s.map(\.recall), digits: 3), Self.cell(s.map(\.classConsistency), digits: 3)]
            }
            let low = s.map(\.brightnessRange.lowerBound).min()!, high = s.map(\.brightnessRange.upperBound).max()!
            cells += [Self.cell(s.map { $0.brightnessSD }, digits: 3), String(format: "%.2f … %.2f", low, high)]
            if metrics { cells += [Self.cell(s.map(\.highFrequency), digits: 2)] }
            cells += [Self.cell(s.map { Double($0.generatorUpdates) }, digits: 0), Self.cell(s.map { $0.trainingMinutes }, digits: 1)]
            lines.append("| " + cells.joined(separator: " | ") + " |")
            for x in s {
                func f(_ v: Double?, _ d: Int) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "–" }
                var c = [label, "`\(x.run)`"]
                if metrics { c += [f(x.fid, 1), f(x.kid, 0), f(x.classConsistency, 3)] }
                c += [String(format: "%.3f", x.brightnessSD), String(format: "%.1f", x.trainingMinutes)]
                perRun.append("| " + c.joined(separator: " | ") + " |")
            }
        }
        return lines.joined(separator: "\n") + "\n\nEvery run:\n\n" + perRun.joined(separator: "\n") + "\n"
    }

    /// One row per (label, eval folders): NFE, FID, KID, class consistency, HF ratio, seconds per image.
    static func evalTable(_ rows: [(label: String, folders: [String])]) throws -> String {
        var lines = ["| sampler | NFE | FID ↓ | KID×10³ ↓ | class consistency | HF vs real | s per image |", "|---|---|---|---|---|---|---|"]
        for (label, folders) in rows {
            // Every evaluation seed of every folder.
            let ms = try folders.flatMap { folder in
                try Self.readMetrics(URL(fileURLWithPath: folder).appendingPathComponent("metrics.json"), hint: "an output folder of `dmd2 eval`?")
            }
            let perImage = ms.map { m -> Double? in
                guard let s = m.seconds["sampling"], m.sampleCount > 0 else { return nil }
                return s / Double(m.sampleCount)
            }
            let nfe = Set(ms.compactMap { $0.source["nfe"].flatMap { Int($0) } }).sorted().map(String.init).joined(separator: "/")
            lines.append("| \(label) | \(nfe.isEmpty ? "–" : nfe) | \(Self.cell(ms.map(\.fid), digits: 1)) | "
                + "\(Self.cell(ms.map { $0.kid.map { $0.mean * 1000 } }, digits: 0)) | "
                + "\(Self.cell(ms.map { $0.classConsistency?.accuracy }, digits: 3)) | "
                + "\(Self.cell(ms.map(\.highFrequencyRatioVsReference), digits: 2)) | \(Self.cell(perImage, digits: 2)) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func run() throws {
        var parts: [String] = []
        if !eval.isEmpty { parts.append(try Self.evalTable(eval.map { r -> (label: String, folders: [String]) in let s = try Self.split(r); return (s.label, s.paths) })) }
        if !row.isEmpty { parts.append(try distillTables()) }
        let text = parts.joined(separator: "\n")
        print(text, terminator: "")
        if let out {
            let url = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
            print("wrote \(out)")
        }
    }
}
