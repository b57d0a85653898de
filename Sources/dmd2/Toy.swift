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
            and scores-end.svg (real score, fake score and their difference), log.jsonl and summary.json. \
            --kl-gradient instead checks the objective: for an affine generator, whose output density is known, the \
            reverse KL's gradient (finite differences of the KL by quadrature) against the DMD gradient \
            E[(s_fake − s_real)ᵀ·∂x/∂θ] (by quadrature, and by Monte-Carlo with its standard error); it prints tables and \
            writes nothing.
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
    @Flag(name: .long, help: "Check that the DMD gradient is the reverse KL's gradient, exactly, on an affine generator; print tables and exit.") var klGradient = false
    @Option(name: .long, help: "Monte-Carlo samples of the --kl-gradient check.") var klSamples = 100_000

    func validate() throws {
        guard iterations >= 1, ratio >= 1, batch >= 1, warmStart >= 0 else {
            throw ValidationError("--iterations, --ratio and --batch must be ≥ 1, --warm-start ≥ 0")
        }
        guard regressionWeight >= 0, generatorLr > 0, criticLr > 0, sigma > 0 else {
            throw ValidationError("--regression-weight must be ≥ 0; learning rates and --sigma positive")
        }
        guard klSamples >= 2 else { throw ValidationError("--kl-samples must be ≥ 2, got \(klSamples)") }
    }

    func run() throws {
        common.apply()
        if klGradient { return checkKLGradient() }
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

    /// `--kl-gradient`: the objective's gradient against the DMD gradient (docs/guide/02-the-objective.md).
    func checkKLGradient() {
        let check = KLGradientCheck()
        let g = KLGradientCheck.collapsedBlob
        // A critic that lags: the exact fake score of G as it was when A and b were 0.8× today's.
        let earlier = AffineGenerator2D(parameters: g.parameters.map { 0.8 * $0 })
        func f(_ x: Double) -> String { String(format: "%+.6f", x) }
        func norm(_ v: [Double]) -> Double { v.map { $0 * $0 }.reduce(0, +).squareRoot() }
        print("generator x = A·z + b, A = \(g.a) (row-major), b = \(g.b); data: the 8-component ring (std 0.08)")
        print("quadrature: trapezoid rule, \(check.gridPoints)² nodes on [−\(Int(check.gridExtent)), \(Int(check.gridExtent))]²; Monte-Carlo: \(klSamples) samples, seed \(seed)")
        var rng = RandomGenerator(seed: seed)
        for sigma in [0.1, 0.5, 2.0] {
            let kl = check.kl(g, sigma: sigma)
            let fd = check.klGradientByFiniteDifferences(g, sigma: sigma)
            let quad = check.dmdGradientByQuadrature(g, sigma: sigma)
            let mc = check.dmdGradientMonteCarlo(g, sigma: sigma, samples: klSamples, rng: &rng)
            let realOnly = check.dmdGradientMonteCarlo(g, sigma: sigma, samples: klSamples, rng: &rng, fake: .none)
            let stale = check.dmdGradientMonteCarlo(g, sigma: sigma, samples: klSamples, rng: &rng, fake: .stale(earlier))
            print("")
            print(String(format: "σ = %g: KL(p_fake,σ ‖ p_real,σ) = %.6f", sigma, kl))
            print("parameter   ∂KL/∂θ (finite diff.)   DMD gradient (quadrature)   DMD gradient (Monte-Carlo ± SE)   (MC − exact)/SE   s_real only (MC)   lagging critic (MC)")
            for p in 0..<6 {
                print(AffineGenerator2D.parameterNames[p].padding(toLength: 10, withPad: " ", startingAt: 0)
                      + "  " + f(fd[p]).leftPad(21) + "  " + f(quad[p]).leftPad(26)
                      + "  " + "\(f(mc.mean[p])) ± \(String(format: "%.6f", mc.standardError[p]))".leftPad(32)
                      + "  " + String(format: "%+.2f", (mc.mean[p] - fd[p]) / mc.standardError[p]).leftPad(16)
                      + "  " + f(realOnly.mean[p]).leftPad(17) + "  " + f(stale.mean[p]).leftPad(19))
            }
            let gap = zip(fd, quad).map { Swift.abs($0 - $1) }.max()!
            let autogradGap = zip(mc.mean, mc.autograd).map { Swift.abs($0 - $1) }.max()!
            print(String(format: "max |finite diff. − quadrature| = %.1e (‖∂KL/∂θ‖ = %.4f); autograd through ½·mean((x − sg(x − g))²) = the per-sample mean to %.1e",
                         gap, norm(fd), autogradGap))
            print(String(format: "relative error of the gradient: s_real only %.2f, lagging critic %.2f, Monte-Carlo with the exact critic %.3f",
                         norm(zip(realOnly.mean, fd).map { $0 - $1 }) / norm(fd), norm(zip(stale.mean, fd).map { $0 - $1 }) / norm(fd),
                         norm(zip(mc.mean, fd).map { $0 - $1 }) / norm(fd)))
        }
        // Reverse KL is mode-seeking: at small σ a Gaussian on one component beats one that covers the ring.
        let one = AffineGenerator2D(a: [0.08, 0, 0, 0.08], b: [1, 0])
        let cover = AffineGenerator2D(a: [0.7, 0, 0, 0.7], b: [0, 0])
        print("")
        print("reverse KL of two Gaussian generators (quadrature)")
        print("     σ   on one component N((1, 0), 0.08²·I)   covering the ring N(0, 0.7²·I)")
        for sigma in [0.1, 0.5, 1.0, 2.0] {
            print(String(format: "%6g   %36.4f   %30.4f", sigma, check.kl(one, sigma: sigma), check.kl(cover, sigma: sigma)))
        }
    }
}

private extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
