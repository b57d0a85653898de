// `dmd2 sample`: a class-conditional PNG grid from a teacher checkpoint with EDM's samplers.
import ArgumentParser
import DMD2Core
import DMD2Data
import EDM
import Foundation

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Sample a PNG grid from a teacher checkpoint: one row per class, EDM's Heun/Euler/stochastic sampler.",
        discussion: "Row r holds --per-class samples of the r-th class of --classes; each class's noise is seeded by (--seed, class), so a row does not change when other classes are added. A <out>.txt sidecar lists the rows' classes.")

    enum Weights: String, EnumerableFlag {
        case ema, raw
        static func help(for value: Weights) -> ArgumentHelp? {
            value == .ema ? "Use the EMA weights of a checkpoint folder (default)." : "Use the raw (non-EMA) weights."
        }
    }

    enum SamplerKind: String, ExpressibleByArgument, CaseIterable {
        case heun, euler, stochastic
    }

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "A run folder (its newest checkpoint), a checkpoint folder, or a network .safetensors file.")
    var checkpoint: String = "runs/teacher"
    @Flag var weights: Weights = .ema
    @Option(name: .long, help: "heun (deterministic, NFE 2n − 1), euler (NFE n) or stochastic (Heun with EDM's churn).")
    var sampler: SamplerKind = .heun
    @Option(name: .long, help: "Sampler steps n.")
    var steps: Int = 18
    @Option(name: .long, help: "Classes, one row each: 'all' or a comma list such as 0,3,7.")
    var classes: String = "all"
    @Option(name: .long, help: "Samples per class (the grid's columns).")
    var perClass: Int = 8
    @Option(name: .long, help: "Seed of the noise.")
    var seed: UInt64 = 0
    @Option(name: .long, help: "Classifier-free guidance scale w (1: conditional; needs a model trained with label dropout).")
    var guidance: Double?
    @Option(name: .long, help: "Stochastic sampler: S_churn, S_min, S_max, S_noise (EDM's ImageNet-64 values).")
    var churn: Double = 40
    @Option(name: .long) var sMin: Double = 0.05
    @Option(name: .long) var sMax: Double = 50
    @Option(name: .long) var sNoise: Double = 1.003
    @Option(name: .long, help: "Output PNG.")
    var out: String = "runs/samples.png"

    func validate() throws {
        guard steps >= 1, perClass >= 1 else { throw ValidationError("--steps and --per-class must be ≥ 1") }
    }

    func run() throws {
        common.apply()
        let file = try TeacherCheckpoint.networkFile(at: URL(fileURLWithPath: checkpoint), ema: weights == .ema)
        let loaded: LoadedCheckpoint<Float>
        do { loaded = try EDMCheckpoint.load(from: file) } catch {
            throw CLIError("cannot load the network from \(file.path): \(error)")
        }
        let net = loaded.net, config = net.config
        let classNames = loaded.metadata["class_names"].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
        let rows = try classList(labelDim: config.labelDim)
        if guidance != nil && config.labelDim == 0 { throw CLIError("--guidance needs a class-conditional network") }

        let edm = EDMSampler(method: sampler == .euler ? .euler : .heun, steps: steps,
                             stochastic: sampler == .stochastic ? StochasticSampling(churn: churn, sMin: sMin, sMax: sMax, sNoise: sNoise) : nil)
        let denoiser = Denoiser(net: net)
        print("network: \(file.path) (step \(loaded.step.map(String.init) ?? "?")), \(config.resolution)×\(config.resolution)×\(config.inChannels), \(config.labelDim) classes")
        print("sampler: \(sampler.rawValue), \(steps) steps, NFE \(edm.nfe) per image\(guidance.map { ", guidance \($0)" } ?? ""); \(rows.count) rows × \(perClass), threads \(Threads.count)")

        let started = ProcessInfo.processInfo.systemUptime
        let shape = [perClass, config.inChannels, config.resolution, config.resolution]
        var images: [Float] = []
        var labels: [Int] = []
        for (r, c) in rows.enumerated() {
            // Seeds one SplitMix step apart give the same stream shifted by one draw, so the
            // row's seed is a hashed (seed, class), landing at an unrelated point of the cycle.
            var hash = RandomGenerator(seed: seed &+ UInt64((c ?? -1) + 1) &* 0x9E37_79B9_7F4A_7C15)
            var rng = RandomGenerator(seed: hash.next() ^ seed)
            var y: Tensor<Float>?
            if let c {
                var onehot = Tensor<Float>.zeros([perClass, config.labelDim])
                for n in 0..<perClass { onehot[n, c] = 1 }
                y = onehot
            }
            let result = edm.sample(shape: shape, rng: &rng, denoise: denoiser.samplingFunction(classLabels: y, guidance: guidance))
            images += result.x.converted(to: Float.self).scalars
            labels += [Int](repeating: c ?? -1, count: perClass)
            let name = c.map { classNames?.indices.contains($0) == true ? "\($0) \(classNames![$0])" : "\($0)" } ?? "unconditional"
            print(String(format: "  row %d/%d (%@): %.1f s", r + 1, rows.count, name, ProcessInfo.processInfo.systemUptime - started))
        }
        let elapsed = ProcessInfo.processInfo.systemUptime - started
        let grid = Tensor<Float>(shape: [rows.count * perClass] + Array(shape.dropFirst()), scalars: images)
        let url = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeGrid(grid, columns: perClass, to: url, labels: config.labelDim > 0 ? labels : nil, classNames: classNames)
        print(String(format: "wrote %@ (%d images in %.1f s, %.2f img/s)", out, grid.shape[0], elapsed, Double(grid.shape[0]) / elapsed))
    }

    /// The rows' classes (nil: unconditional).
    func classList(labelDim: Int) throws -> [Int?] {
        guard labelDim > 0 else { return [nil] }
        if classes == "all" { return Array(0..<labelDim) }
        let parsed = classes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parsed.isEmpty, parsed.allSatisfy({ $0.map { (0..<labelDim).contains($0) } ?? false }) else {
            throw CLIError("--classes '\(classes)': expected 'all' or class indices in 0..<\(labelDim) separated by commas")
        }
        return parsed
    }
}
