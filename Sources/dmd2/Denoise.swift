// `dmd2 denoise`: the teacher as EDM's denoiser, one noise level at a time (guide chapter
// "The EDM denoiser and score"). For one test image x per class and each σ:
//   x_σ = x + σ·ε                                  (the noised image, ε ~ N(0, I), one ε for all σ)
//   D = D_θ(x_σ; σ, y) = c_skip·x_σ + c_out·F_θ(c_in·x_σ; c_noise, y)      (Precond.swift)
//   s = (D − x_σ)/σ²                                (the score ∇ log p_σ(x_σ) that DMD differences)
// and prints the preconditioning, the denoising error against two trivial estimates (x_σ itself
// and c_skip·x_σ, the best multiple of x_σ were the data zero-mean with standard deviation σ_d;
// real pixels are not: Fashion-MNIST in [−1, 1] has mean ≈ −0.56, E[x²] ≈ 0.72), EDM's loss
// weight λ(σ) and the score's size.
import ArgumentParser
import DMD2
import DMD2Core
import DMD2Data
import DMD2Ops
import EDM
import Foundation

struct Denoise: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "denoise",
        abstract: "Noise one test image per class at several σ and denoise it with the teacher: EDM's preconditioning, denoising error, loss weight and score size per σ.",
        discussion: "The PNG's rows, top to bottom: the clean images; then for each σ in --sigmas order a row of noisy images x + σ·ε (clipped to [−1, 1] for display) followed by a row of denoised images D(x + σ·ε; σ, y). Columns are classes 0, 1, … (the first test image of each).")

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "The teacher: a network .safetensors file, or a train-teacher run or checkpoint folder (its EMA weights unless --raw-teacher).")
    var teacher: String = "models/teacher-cpu64Tiny-fashion64.safetensors"
    @Flag(name: .long, help: "Use the raw (non-EMA) weights of a train-teacher folder.")
    var rawTeacher = false
    @Option(name: .long, help: "An EDM dataset (zip or folder); a folder with a test/ split uses it.")
    var data: String = "data/fashion-mnist-64"
    @Option(name: .long, help: "Noise levels σ > 0, comma-separated.")
    var sigmas: String = "0.05,0.2,0.5,1,2,5,20,80"
    @Option(name: .long, help: "Seed of the noise ε.")
    var seed: UInt64 = 0
    @Option(name: .long, help: "Output PNG grid.")
    var out: String = "runs/denoise.png"

    func validate() throws { _ = try sigmaList() }

    func sigmaList() throws -> [Double] {
        let items = sigmas.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = items.compactMap(Double.init)
        guard !items.isEmpty, values.count == items.count else {
            throw ValidationError("--sigmas '\(sigmas)': expected numbers separated by commas")
        }
        if let bad = values.first(where: { !($0 > 0 && $0.isFinite) }) {
            throw ValidationError("--sigmas: every σ must be positive and finite, got \(bad)")
        }
        return values
    }

    func run() throws {
        common.apply()
        let σs = try sigmaList()
        let loaded = try loadTeacherNetwork(teacher, raw: rawTeacher)
        let denoiser = Denoiser(net: loaded.net), c = loaded.net.config
        let σd = denoiser.sigmaData
        print("teacher: \(teacher), \(c.resolution)×\(c.resolution)×\(c.inChannels), \(c.labelDim) classes, σ_d = \(σd), threads \(Threads.count)")

        // The images: the first test image of each class (the first 10 if the teacher is unconditional).
        let dataset = try EDMDataset(url: testSplit(of: data), channels: c.inChannels)
        guard dataset.resolution == c.resolution else {
            throw CLIError("\(dataset.name) holds \(dataset.resolution)×\(dataset.resolution) images, the teacher \(c.resolution)×\(c.resolution)")
        }
        var picked: [(index: Int, label: Int)] = []
        if c.labelDim > 0 {
            for k in 0..<c.labelDim {
                guard let i = (0..<dataset.count).first(where: { dataset.label($0) == k }) else {
                    throw CLIError("\(dataset.name) has no image of class \(k) (the teacher has \(c.labelDim) classes)")
                }
                picked.append((i, k))
            }
        } else {
            picked = (0..<min(10, dataset.count)).map { ($0, -1) }
        }
        let x = Image8.batch(try picked.map { try dataset.item($0.index).image })  // [N, C, R, R] in [−1, 1]
        let N = picked.count, perImage = x.count / N
        let y: Tensor<Float>? = c.labelDim > 0 ? oneHot(picked.map(\.label), classes: c.labelDim) : nil
        var rng = RandomGenerator(seed: seed)
        let ε: Tensor<Float> = rng.normal(x.shape)
        print("images: \(N) from \(dataset.name) (items \(picked.map { String($0.index) }.joined(separator: ","))), seed \(seed)")

        /// Mean over all N·C·H·W elements of (a − b)².
        func mse(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Double {
            zip(a.scalars, b.scalars).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(a.count)
        }
        print("     σ    c_skip    c_out     c_in  c_noise   MSE(D)  MSE(x_σ)  MSE(c_skip·x_σ)      λ(σ)  λ·MSE(D)    mean ‖s‖")
        let started = ProcessInfo.processInfo.systemUptime
        var rows = [x]
        for σ in σs {
            let t = ProcessInfo.processInfo.systemUptime
            let p = Preconditioning(sigma: σ, sigmaData: σd)          // EDM Table 1, "Ours"
            let noisy = x + ε * Float(σ)                               // x_σ = x + n, n ~ N(0, σ²I)
            let D = NoGrad.run { denoiser(Variable(noisy), sigma: σ, classLabels: y).value }
            // The score s(x_σ; σ) = (D − x_σ)/σ² (as Denoiser.score, without a second forward).
            let s = (D - noisy) * Float(1 / (σ * σ))
            let scoreNorm = (0..<N).map { n in
                s.scalars[(n * perImage)..<((n + 1) * perImage)].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            }.reduce(0, +) / Double(N)
            let λ = EDMLoss.weight(sigma: σ, sigmaData: σd)            // = 1/c_out²: EDM's loss weight
            let mseD = mse(D, x)
            print(String(format: "%6.3g %9.4g %8.4g %8.4g %8.4f %8.5f %9.5f %16.5f %9.4g %9.4f %11.4g   (%.1f s)",
                         σ, p.cSkip, p.cOut, p.cIn, p.cNoise, mseD, mse(noisy, x), mse(noisy * Float(p.cSkip), x),
                         λ, λ * mseD, scoreNorm, ProcessInfo.processInfo.systemUptime - t))
            fflush(nil)
            rows += [noisy, D]
        }
        let elapsed = ProcessInfo.processInfo.systemUptime - started
        print(String(format: "%d σ × %d images: %d teacher evaluations in %.1f s", σs.count, N, σs.count * N, elapsed))

        let grid = Tensor<Float>(shape: [rows.count * N] + Array(x.shape.dropFirst()), scalars: rows.flatMap(\.scalars))
        let url = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeGrid(grid, columns: N, to: url)
        print("wrote \(out): rows: clean; " + σs.map { String(format: "noisy σ=%g, denoised σ=%g", $0, $0) }.joined(separator: "; "))
    }
}
