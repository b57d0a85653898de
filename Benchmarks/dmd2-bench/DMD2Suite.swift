// `dmd2`: seconds per DMD2 iteration on the small presets, split by phase, with peak memory;
// the Swift side of reference/bench_dmd2.py.
//
// Cases NAME = <preset>-<batch>: cpu64Tiny-8, cpu64Tiny-16, cpu64Small-8 (the default list), and
// imagenet64-2: the full ImageNet-64 network (G, μ_real, μ_fake at 295.9 M parameters each, the
// GAN head, AdamW moments for G, μ_fake and the head) at batch 2 — run it on request only, with
// `--warmup 0 --repeats 1` (one generator and one critic-only iteration, minutes). Networks G, μ_real,
// μ_fake are copies of one randomly initialised teacher with non-zero output layers (so every
// phase does its real work); the GAN head is fresh. Real images are uniform in [−1, 1].
//
// A generator iteration (i % 5 == 0), phase by phase, as DMD2Objective.iterate runs it:
//   g_forward      x_g = G(80·z; 80, y), recorded for backward
//   dm_forwards    L_DM: μ_real and μ_fake on x_g + σ·ε (no grad), normaliser, g
//   gan_generator  L_G forward through the frozen encoder + head, backward to x_g
//   g_backward     x_g's gradient pushed through G into its parameters
//   critic         L_fake + 0.01·L_D, forward and backward into μ_fake and the head
//   optimizer      clipping and AdamW for G and for the critic
// A critic-only iteration: G forward without recording, critic, critic optimiser.
// One TTUR-5 iteration on average = (generator + 4 × critic-only) / 5.
// Every case runs in its own process (`dmd2 --child --case NAME`) so VmHWM is that case's.
import DMD2
import DMD2Core
import DMD2Ops
import DMD2Train
import EDM
import Foundation

let dmd2Cases = ["cpu64Tiny-8", "cpu64Tiny-16", "cpu64Small-8", "imagenet64-2"]
/// What `dmd2` runs without `--case`.
let dmd2DefaultCases = ["cpu64Tiny-8", "cpu64Tiny-16", "cpu64Small-8"]
let dmd2Phases = ["g_forward", "dm_forwards", "gan_generator", "g_backward", "critic", "optimizer"]

/// One case's figures (both implementations print one such JSON object).
struct DMD2CaseResult: Codable {
    var `case`: String
    var batch: Int
    var threads: Int
    /// Median seconds per phase of a generator iteration.
    var phases: [String: Double]
    /// Median seconds of a whole generator iteration and of a critic-only one.
    var generator_iteration_s: Double
    var critic_iteration_s: Double
    /// (generator + 4 · critic-only) / 5.
    var ttur5_iteration_s: Double
    var peak_rss_mb: Double
}

/// Run one case in this process and print its JSON line.
func runDMD2Case(_ name: String, repeats: Int, warmup: Int) {
    let parts = name.split(separator: "-").map(String.init)
    guard dmd2Cases.contains(name), parts.count == 2, let preset = UNetConfig.presets[parts[0]], let batch = Int(parts[1]) else {
        fail("unknown dmd2 case '\(name)' (cases: \(dmd2Cases.joined(separator: ", ")))")
    }
    var rng = RandomGenerator(seed: 0)
    let config = DMD2Networks<Float>.studentConfig(teacher: preset)
    // Training initialises the output layers at zero; random ones make every phase do its work.
    let teacher = UNet<Float>(config: config, parameters: DebugState.randomWeights(config, rng: &rng))
    let networks = DMD2Networks(teacher: teacher, headRNG: &rng)
    let optimizerConfig = AdamWConfig(learningRate: 1e-6, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, warmUpSteps: 0)
    let optimizers = DMD2Optimizers(networks: networks, generator: optimizerConfig, critic: optimizerConfig, maxGradNorm: 10)
    let objective = DMD2Objective()
    let shape = [batch, config.inChannels, config.resolution, config.resolution]
    let draws = IterationDraws<Float>.draw(shape: shape, classes: config.labelDim, rng: &rng)
    let labels: Tensor<Float>? = config.labelDim > 0 ? oneHot(draws.labels, classes: config.labelDim) : nil
    let realLabels = (0..<batch).map { _ in config.labelDim > 0 ? rng.int(in: 0...(config.labelDim - 1)) : -1 }
    let real = RealBatch<Float>(images: rng.uniform(shape, low: -1, high: 1),
                                labels: config.labelDim > 0 ? oneHot(realLabels, classes: config.labelDim) : nil)
    let input = DMD2Networks<Float>.oneStepInput(latents: draws.latents)

    func clock(_ body: () throws -> Void) -> Double { secondsToRun { try! body() } }

    /// A generator iteration, phase by phase (the same calls as DMD2Objective.iterate).
    func generatorIteration() -> [String: Double] {
        var t: [String: Double] = [:]
        optimizers.generator.zeroGrad()
        optimizers.critic.zeroGrad()
        var xg: Variable<Float>!
        t["g_forward"] = clock { xg = networks.generate(input, labels: labels) }
        let leaf = Variable(xg.value, requiresGrad: true, name: "x_g")
        var dm: DistributionMatchingResult<Float>!
        t["dm_forwards"] = clock {
            dm = distributionMatchingLoss(leaf, labels: labels, real: networks.real, fake: networks.fake, draw: draws.dm)
        }
        t["gan_generator"] = clock {
            let gan = generatorGANLoss(leaf, labels: labels, critic: networks.fake, head: networks.head, draw: draws.generatorGAN)
            (dm.loss + gan.loss * Float(objective.ganWeightGenerator)).backward()
        }
        t["g_backward"] = clock { xg.backward(seed: leaf.grad!, to: networks.generator.parameters.variables) }
        let images = xg.value
        t["critic"] = clock {
            _ = try objective.criticGradients(networks: networks, images: images, labels: labels, draws: draws, real: real, step: 1)
        }
        t["optimizer"] = clock { _ = optimizers.apply(updateGenerator: true) }
        return t
    }
    func criticIteration() {
        optimizers.critic.zeroGrad()
        let images = NoGrad.run { networks.generate(input, labels: labels) }.value
        _ = try! objective.criticGradients(networks: networks, images: images, labels: labels, draws: draws, real: real, step: 1)
        _ = optimizers.apply(updateGenerator: false)
    }

    for _ in 0..<warmup {                                     // warm-up
        _ = generatorIteration()
        criticIteration()
    }
    var phaseRuns: [String: [Double]] = [:], generatorRuns: [Double] = [], criticRuns: [Double] = []
    for _ in 0..<repeats {
        let t = generatorIteration()
        for (k, v) in t { phaseRuns[k, default: []].append(v) }
        generatorRuns.append(t.values.reduce(0, +))
        criticRuns.append(secondsToRun(criticIteration))
    }
    let g = Timing(samples: generatorRuns).median, c = Timing(samples: criticRuns).median
    let result = DMD2CaseResult(
        case: name, batch: batch, threads: Threads.count, phases: phaseRuns.mapValues { Timing(samples: $0).median },
        generator_iteration_s: g, critic_iteration_s: c, ttur5_iteration_s: (g + 4 * c) / 5, peak_rss_mb: procStatusMiB("VmHWM"))
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try! encoder.encode(result), as: UTF8.self))
}

/// Every case (or `only`), Swift then PyTorch, one process each; a side-by-side table.
func runDMD2Suite(_ settings: RunSettings, threads: Int, python: String?, only: [String]?) {
    let cases = only ?? dmd2DefaultCases
    let me = CommandLine.arguments[0]
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../reference/bench_dmd2.py").standardizedFileURL.path
    let torch = python.flatMap { p in FileManager.default.fileExists(atPath: script) ? p : nil }
    print("""
        == dmd2: one DMD2 iteration, phase by phase, one process per case (median of \(settings.repeats) after \(settings.warmup) warm-up)
           Swift: this executable `dmd2 --child --case NAME`; PyTorch: \(torch.map { "\($0) reference/bench_dmd2.py --case NAME --json" } ?? "skipped")
           ms; generator iteration = sum of its phases; TTUR-5 = (generator + 4 critic-only)/5; peak MiB = VmHWM / ru_maxrss
        """)
    var table = Table(["case", "side"] + dmd2Phases + ["gen iter", "critic iter", "TTUR-5 iter", "img/s", "peak MiB"])
    var ratios: [(String, Double)] = []
    for name in cases {
        let swift = runChild(me, ["dmd2", "--child", "--case", name, "--threads", "\(threads)", "--repeats", "\(settings.repeats)",
                                     "--warmup", "\(settings.warmup)"],
                             as: DMD2CaseResult.self)
        let py = torch.flatMap { p in
            runChild("/usr/bin/env", [p, script, "--case", name, "--threads", "\(threads)", "--repeats", "\(settings.repeats)",
                                                 "--warmup", "\(settings.warmup)", "--json"],
                     as: DMD2CaseResult.self)
        }
        for (side, r) in [("swift", swift), ("torch", py)] {
            guard let r else { table.add([name, side] + Array(repeating: "–", count: dmd2Phases.count + 5)); continue }
            table.add([name, side] + dmd2Phases.map { r.phases[$0].map { fmt($0 * 1e3, 0) } ?? "–" }
                      + [fmt(r.generator_iteration_s * 1e3, 0), fmt(r.critic_iteration_s * 1e3, 0), fmt(r.ttur5_iteration_s * 1e3, 0),
                         fmt(Double(r.batch) / r.ttur5_iteration_s, 2), fmt(r.peak_rss_mb, 0)])
        }
        if let swift, let py { ratios.append((name, swift.ttur5_iteration_s / py.ttur5_iteration_s)) }
    }
    print(table.render())
    for (name, r) in ratios { print("  \(name): Swift / PyTorch time per TTUR-5 iteration \(fmt(r, 2))") }
}
