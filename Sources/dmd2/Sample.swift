// `dmd2 sample`: a class-conditional PNG grid from a teacher checkpoint with EDM's samplers,
// or from a DMD2 generator in the steps it was trained for (one, or k with fresh noise between).
import ArgumentParser
import DMD2
import DMD2Core
import DMD2Data
import DMD2Ops
import DMD2Train
import EDM
import EDMTraining
import Foundation

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Sample a PNG grid from a teacher checkpoint (EDM's Heun/Euler/stochastic sampler) or a DMD2 generator (its trained steps): one row per class.",
        discussion: "Row r holds --per-class samples of the r-th class of --classes; each class's noise is seeded by (--seed, class), so a row does not change when other classes are added. A <out>.txt sidecar lists the rows' classes.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var sampling: SamplerOptions
    @Option(name: .long, help: "A run folder (its newest checkpoint), a checkpoint folder, or a network .safetensors file.")
    var checkpoint: String = "runs/teacher"
    @Option(name: .long, help: "A DMD2 generator instead of a teacher: a distill run folder, checkpoint folder or generator .safetensors; one forward pass per generator step (the run's steps; --raw skips a kept EMA).")
    var generator: String?
    @Option(name: .long, help: "With --generator: sample in k steps on K[999 − i·⌊1000/k⌋] instead of the run's own schedule.")
    var stepsOverride: Int?
    @Option(name: .long, help: "Classes, one row each: 'all' or a comma list such as 0,3,7.")
    var classes: String = "all"
    @Option(name: .long, parsing: .unconditional, help: "Samples per class (the grid's columns).")
    var perClass: Int = 8
    @Option(name: .long, help: "Seed of the noise.")
    var seed: UInt64 = 0
    @Option(name: .long, help: "Output PNG.")
    var out: String = "runs/samples.png"
    @Flag(name: .long, help: "With --generator: draw the k-step rollout instead, one row per image (grouped by class), columns x_0, x̂_0, x_1, x̂_1, …, x̂_{k−1}: each step's input (what backward simulation trains G on at that step) and G's output; the last column is the sample.")
    var rollout = false
    @Flag(name: .long, help: "With --rollout: under each rollout row, the inputs training without backward simulation would use, x_real + σ_j·ε_j with the same noise (x_real: test images of the row's class from --data), beside x_real.")
    var noisedReal = false
    @Option(name: .long, help: "Real images for --noised-real: a prepare-data folder (its test/ split) or an EDM dataset.")
    var data: String = "data/fashion-mnist-64"

    func validate() throws {
        guard perClass >= 1 else { throw ValidationError("--per-class must be ≥ 1, got \(perClass)") }
        if let stepsOverride {
            guard generator != nil else { throw ValidationError("--steps-override applies to --generator") }
            guard (1...SigmaGrid.dmd2.count).contains(stepsOverride) else {
                throw ValidationError("--steps-override must lie in 1…\(SigmaGrid.dmd2.count), got \(stepsOverride)")
            }
        }
        if rollout && generator == nil { throw ValidationError("--rollout applies to --generator") }
        if noisedReal && !rollout { throw ValidationError("--noised-real applies to --rollout") }
    }

    func run() throws {
        common.apply()
        // Before any sampling: the grid's folder must take files.
        try RunFolder.checkWritable(URL(fileURLWithPath: out).deletingLastPathComponent(), what: "output folder of --out")
        if let generator { return try sampleGenerator(at: URL(fileURLWithPath: generator)) }
        let file = try TeacherCheckpoint.networkFile(at: URL(fileURLWithPath: checkpoint), ema: sampling.weights == .ema)
        let loaded: LoadedCheckpoint<Float>
        do { loaded = try EDMCheckpoint.load(from: file) } catch {
            throw CLIError("cannot load the network from", path: file.path, error)
        }
        let net = loaded.net, config = net.config
        let classNames = loaded.metadata["class_names"].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
        let rows = try classList(labelDim: config.labelDim)
        if sampling.guidance != nil && config.labelDim == 0 { throw CLIError("--guidance needs a class-conditional network") }

        let edm = sampling.edmSampler
        let denoiser = Denoiser(net: net)
        print("network: \(file.path) (step \(loaded.step.map(String.init) ?? "?")), \(config.resolution)×\(config.resolution)×\(config.inChannels), \(config.labelDim) classes")
        print("sampler: \(sampling.sampler.rawValue), \(sampling.steps) steps, NFE \(edm.nfe) per image\(sampling.guidance.map { ", guidance \($0)" } ?? ""); \(rows.count) rows × \(perClass), threads \(Threads.count)")

        let started = ProcessInfo.processInfo.systemUptime
        let shape = [perClass, config.inChannels, config.resolution, config.resolution]
        var images: [Float] = []
        var labels: [Int] = []
        for (r, c) in rows.enumerated() {
            var rng = rowGenerator(c)
            var y: Tensor<Float>?
            if let c {
                var onehot = Tensor<Float>.zeros([perClass, config.labelDim])
                for n in 0..<perClass { onehot[n, c] = 1 }
                y = onehot
            }
            let result = edm.sample(shape: shape, rng: &rng, denoise: denoiser.samplingFunction(classLabels: y, guidance: sampling.guidance))
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

    /// A DMD2 generator's grid: G(80·z; 80, y) in one step (the same z per row as the teacher's
    /// grid), or the k-step rollout (z, then ε_1 … ε_{k−1} from the row's generator).
    func sampleGenerator(at url: URL) throws {
        let g = try DMD2Generator(contentsOf: url, ema: sampling.weights == .raw ? false : nil, steps: stepsOverride)
        let config = g.config
        let rows = try classList(labelDim: config.labelDim)
        let schedule = g.nfe == 1 ? "one step (NFE 1)"
            : "\(g.nfe) steps at σ = \(g.schedule.sigmas.map { String(format: "%.4g", $0) }.joined(separator: ", ")) (NFE \(g.nfe))\(stepsOverride != nil ? ", overridden" : "")"
        print("generator: \(url.path) (step \(g.step.map(String.init) ?? "?")), \(config.resolution)×\(config.resolution)×\(config.inChannels), \(config.labelDim) classes; \(schedule); \(rows.count) rows × \(perClass), threads \(Threads.count)")
        let started = ProcessInfo.processInfo.systemUptime
        // Each row draws its z and ε_1 … ε_{k−1} from its own generator (the same noise as the
        // teacher's grid and as a row-by-row run); the whole grid is then one batch: k forward
        // passes in all.
        let rowShape = [perClass, config.inChannels, config.resolution, config.resolution]
        var latents: [Float] = [], renoise = [[Float]](repeating: [], count: g.nfe - 1), labels: [Int] = []
        for c in rows {
            var rng = rowGenerator(c)
            latents += (rng.normal(rowShape) as Tensor<Float>).scalars
            for i in renoise.indices { renoise[i] += (rng.normal(rowShape) as Tensor<Float>).scalars }
            labels += [Int](repeating: c ?? -1, count: perClass)
        }
        let shape = [rows.count * perClass] + rowShape.dropFirst()
        if rollout {
            return try writeRollout(g, latents: Tensor(shape: shape, scalars: latents),
                                    renoise: renoise.map { Tensor(shape: shape, scalars: $0) }, labels: labels)
        }
        let grid = g.generate(latents: Tensor(shape: shape, scalars: latents),
                              renoise: renoise.map { Tensor(shape: shape, scalars: $0) }, labels: labels)
        let elapsed = ProcessInfo.processInfo.systemUptime - started
        let outURL = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeGrid(grid, columns: perClass, to: outURL, labels: config.labelDim > 0 ? labels : nil, classNames: g.classNames)
        print(String(format: "wrote %@ (%d images in %.1f s, %.2f img/s)", out, grid.shape[0], elapsed, Double(grid.shape[0]) / elapsed))
    }

    /// `--rollout`: each step's input x_i and output x̂_i through the schedule's own rollout (the
    /// code inference and backward simulation share), one row per image; with `--noised-real`, a
    /// row of x_real + σ_i·ε_i (same ε) beside x_real under each.
    func writeRollout(_ g: DMD2Generator, latents z: Tensor<Float>, renoise: [Tensor<Float>], labels: [Int]) throws {
        let c = g.config, k = g.nfe, N = labels.count, per = z.count / N
        let y: Tensor<Float>? = c.labelDim > 0 ? oneHot(labels, classes: c.labelDim) : nil
        let denoise: (GeneratorInput<Float>) -> Tensor<Float> = { input in
            g.denoiser(Variable(input.x), sigma: input.sigma, classLabels: y).value
        }
        let r = g.schedule.rollout(to: k - 1, latents: z, renoise: renoise, denoise: denoise)
        let outputs = r.outputs + [NoGrad.run { denoise(r.input) }]
        let inputs = (0..<k).map { i in
            g.schedule.input(step: i, previous: i == 0 ? nil : outputs[i - 1], noise: i == 0 ? z : renoise[i - 1]).x
        }
        var real: Tensor<Float>?
        if noisedReal {
            let dataset = try EDMDataset(url: testSplit(of: data), channels: c.inChannels)
            guard dataset.resolution == c.resolution else {
                throw CLIError("\(dataset.name) holds \(dataset.resolution)×\(dataset.resolution) images, the generator \(c.resolution)×\(c.resolution)")
            }
            var used = [Int: Int](), picked: [Int] = []
            for label in labels {
                let skip = used[label, default: 0]
                let matches = (0..<dataset.count).lazy.filter { label < 0 || dataset.label($0) == label }
                guard let i = matches.dropFirst(skip).first else {
                    throw CLIError("\(dataset.name) has fewer than \(skip + 1) images of class \(label)")
                }
                picked.append(i)
                used[label] = skip + 1
            }
            real = Image8.batch(try picked.map { try dataset.item($0).image })
        }
        var tiles: [Float] = []
        func tile(_ t: Tensor<Float>, _ n: Int) { tiles += t.scalars[(n * per)..<((n + 1) * per)] }
        for n in 0..<N {
            for i in 0..<k { tile(inputs[i], n); tile(outputs[i], n) }
            if let real {
                for i in 0..<k {
                    tile(g.schedule.input(step: i, previous: real, noise: i == 0 ? z : renoise[i - 1]).x, n)
                    tile(real, n)
                }
            }
        }
        let rowsPerImage = real == nil ? 1 : 2
        let grid = Tensor(shape: [N * rowsPerImage * 2 * k] + Array(z.shape.dropFirst()), scalars: tiles)
        let url = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeGrid(grid, columns: 2 * k, to: url)
        let σ = g.schedule.sigmas.map { String(format: "%.4g", $0) }
        print("columns: " + (0..<k).map { "x_\($0) (σ = \(σ[$0])), x̂_\($0)" }.joined(separator: ", ")
              + "; inputs clipped to [−1, 1] for display")
        print("rows: one per image, classes \(labels.map(String.init).joined(separator: ","))"
              + (real == nil ? "" : "; under each, x_real + σ_j·ε_j (the inputs without backward simulation) and x_real"))
        print("wrote \(out) (\(N) images, \(k) steps)")
    }

    /// The noise generator of a row. Seeds one SplitMix step apart give the same stream shifted
    /// by one draw, so the row's seed is a hashed (seed, class), landing at an unrelated point
    /// of the cycle.
    func rowGenerator(_ c: Int?) -> RandomGenerator {
        var hash = RandomGenerator(seed: seed &+ UInt64((c ?? -1) + 1) &* 0x9E37_79B9_7F4A_7C15)
        return RandomGenerator(seed: hash.next() ^ seed)
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
