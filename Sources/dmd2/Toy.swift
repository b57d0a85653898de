// `dmd2 toy`: DMD2 in the plane (DMD2Toy), with pictures, in seconds.
import ArgumentParser
import DMD2Core
import DMD2Toy
import DMD2Train
import Foundation

struct Toy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Distribution matching on a 2-D Gaussian mixture whose score is known exactly; writes SVG figures.",
        discussion: """
            The real score is the mixture's closed form; the fake critic and the one-step generator \
            are small MLPs. Writes samples.svg (G's samples at several iterations), scores-start.svg \
            and scores-end.svg (real score, fake score and their difference), log.jsonl and summary.json.
            """)
    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "Generator-or-critic iterations.") var iterations = 3000
    @Option(name: .long, help: "Critic updates per generator update (TTUR).") var ratio = 5
    @Option(name: .long, help: "Samples per iteration.") var batch = 256
    @Option(name: .long, help: "Weight of the original DMD regression loss (0: off).") var regressionWeight = 0.0
    @Option(name: .long, help: "Learning rate of G (Adam).") var generatorLr = 1e-3
    @Option(name: .long, help: "Learning rate of the fake critic (Adam).") var criticLr = 1e-3
    @Option(name: .long, help: "Critic-only steps before the first generator step.") var warmStart = 500
    @Option(name: .long, help: "Noise level of the score-field figures.") var sigma = 0.3
    @Option(name: .long, help: "Seed of the networks and every draw.") var seed: UInt64 = 0
    @Option(name: .long, help: "Output folder.") var out = "runs/toy"

    func validate() throws {
        guard iterations >= 1, ratio >= 1, batch >= 1, warmStart >= 0 else {
            throw ValidationError("--iterations, --ratio and --batch must be ≥ 1, --warm-start ≥ 0")
        }
        guard regressionWeight >= 0, generatorLr > 0, criticLr > 0, sigma > 0 else {
            throw ValidationError("--regression-weight must be ≥ 0; learning rates and --sigma positive")
        }
    }

    func run() throws {
        common.apply()
        var config = ToyDMDConfig()
        config.iterations = iterations
        config.ratio = ratio
        config.batch = batch
        config.regressionWeight = regressionWeight
        config.generatorLR = generatorLr
        config.criticLR = criticLr
        config.criticWarmStart = warmStart
        config.seed = seed
        config.snapshots = [0] + [0.03, 0.1, 0.3, 1].map { max(1, Int((Double(iterations) * $0).rounded())) }
        let folder = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)

        let toy = ToyDMD(config: config)
        print("toy: 8-component ring, σ_d = \(String(format: "%.3f", toy.mixture.dataStd)); G and μ_fake are MLPs (2→128→128→2, 3→128→128→128→2)")
        print("warm start: \(warmStart) critic steps on G's initial samples")
        toy.warmStartCritic()
        try ToyFigures.scoresSVG(toy, sigma: sigma).write(to: folder.appendingPathComponent("scores-start.svg"), atomically: true, encoding: .utf8)

        let log = try JSONLinesLog(url: folder.appendingPathComponent("log.jsonl"))
        let bar = ProgressBar(total: iterations, label: "toy")
        toy.run { record in
            try? log.write(record)
            if record.iteration % 50 == 0 || record.iteration == iterations {
                bar.update(record.iteration, status: String(format: "L_fake %.4f · mean (%.3f, %.3f)", record.lossFake, record.meanX, record.meanY)
                    + (record.lossDM.map { String(format: " · L_DM %.4f", $0) } ?? ""))
            }
        }
        bar.finish()
        try ToyFigures.scoresSVG(toy, sigma: sigma).write(to: folder.appendingPathComponent("scores-end.svg"), atomically: true, encoding: .utf8)
        try ToyFigures.samplesSVG(toy).write(to: folder.appendingPathComponent("samples.svg"), atomically: true, encoding: .utf8)

        struct Summary: Codable { var config: ToyDMDConfig; var quality: [String: ToySampleQuality] }
        var quality: [String: ToySampleQuality] = [:]
        for snap in toy.snapshots { quality["\(snap.iteration)"] = ToyDMD.quality(of: snap.samples, toy.mixture) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(Summary(config: config, quality: quality)).write(to: folder.appendingPathComponent("summary.json"))
        print("iteration  precision  coverage")
        for snap in toy.snapshots {
            let q = quality["\(snap.iteration)"]!
            print(String(format: "%9d  %9.3f  %8.3f", snap.iteration, q.precision, q.coverage))
        }
        print("wrote \(folder.path)/{samples.svg, scores-start.svg, scores-end.svg, log.jsonl, summary.json}")
    }
}
