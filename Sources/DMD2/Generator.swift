// A trained DMD2 generator for sampling and evaluation. One step (docs/METHOD.md §2):
// x = G(σ_max·z; σ_max, y), one network evaluation per image. k steps (docs/METHOD.md §3,
// FewStep.swift): x_0 = σ_0·z, x̂_i = G(x_i; σ_i, y), x_{i+1} = x̂_i + σ_{i+1}·ε_{i+1}, output
// x̂_{k−1} — k evaluations, through the same rollout code as training's backward simulation.
// The schedule comes from the checkpoint's metadata (`generator_sigma_indices`; absent: one step).
import DMD2Core
import DMD2Ops
import EDM
import Foundation

/// A distilled generator, ready to make images.
public struct DMD2Generator {
    /// G, in Float.
    public let denoiser: Denoiser<Float>
    /// The noise levels σ_0 > … > σ_{k−1} (one step at σ_max = 80 unless the run trained more).
    public let schedule: GeneratorSchedule
    /// Class names stored with the checkpoint, if any.
    public let classNames: [String]?
    /// The training step of the checkpoint, if recorded.
    public let step: Int?

    public var config: UNetConfig { denoiser.config }
    /// σ_0 (80).
    public var sigmaMax: Double { schedule.sigmas[0] }
    /// Network evaluations per image (k).
    public var nfe: Int { schedule.steps }

    public init(net: UNet<Float>, schedule: GeneratorSchedule = .oneStep, classNames: [String]? = nil, step: Int? = nil) {
        self.denoiser = Denoiser(net: net)
        self.schedule = schedule
        self.classNames = classNames
        self.step = step
    }

    /// The generator at `url`: a run folder (newest checkpoint), a checkpoint folder, or a
    /// generator `.safetensors` file. `ema`: true for the EMA of G, false for the raw weights,
    /// nil for the EMA when the run kept one. `steps` overrides the recorded schedule with
    /// `GeneratorSchedule.uniform(steps:)` (e.g. a 4-step generator sampled in 1 or 2 steps).
    public init(contentsOf url: URL, ema: Bool? = nil, steps: Int? = nil) throws {
        let file = try DistillCheckpoint.generatorFile(at: url, ema: ema)
        let loaded: LoadedCheckpoint<Float>
        do { loaded = try EDMCheckpoint.load(from: file) } catch {
            throw DistillError.badCheckpoint("\(file.path): \(error)")
        }
        let names = loaded.metadata["class_names"].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
        guard let recorded = GeneratorSchedule(metadata: loaded.metadata) else {
            throw DistillError.badCheckpoint("\(file.path): unreadable generator schedule '\(loaded.metadata["generator_sigma_indices"] ?? "")'")
        }
        if let steps, !(1...SigmaGrid.dmd2.count).contains(steps) {
            throw DistillError.badConfig("generator steps \(steps) must lie in 1…\(SigmaGrid.dmd2.count)")
        }
        self.init(net: loaded.net, schedule: steps.map { .uniform(steps: $0) } ?? recorded, classNames: names, step: loaded.step)
    }

    /// Images [N, C, R, R] for N class labels (−1: no label; ignored by an unconditional
    /// network), drawing from `rng` z ~ N(0, I) [N, C, R, R] and then ε_1 … ε_{k−1} of the same
    /// shape (row-major; one step draws z only). The output is the generator's raw x̂
    /// (nominally in [−1, 1], not clamped).
    public func generate(labels: [Int], rng: inout RandomGenerator) -> Tensor<Float> {
        let c = config
        let shape = [labels.count, c.inChannels, c.resolution, c.resolution]
        let z: Tensor<Float> = rng.normal(shape)
        let renoise: [Tensor<Float>] = (1..<schedule.steps).map { _ in rng.normal(shape) }
        return generate(latents: z, renoise: renoise, labels: labels)
    }

    /// The k-step rollout for given latents z [N, C, R, R], re-noising ε_1 … ε_{k−1} (empty for
    /// one step: G(σ_max·z; σ_max, y)) and N labels.
    public func generate(latents z: Tensor<Float>, renoise: [Tensor<Float>] = [], labels: [Int]) -> Tensor<Float> {
        let c = config
        precondition(z.rank == 4 && z.shape[0] == labels.count && Array(z.shape.dropFirst()) == [c.inChannels, c.resolution, c.resolution],
                     "DMD2Generator: latents \(z.shape) for \(labels.count) labels, expected [\(labels.count), \(c.inChannels), \(c.resolution), \(c.resolution)]")
        precondition(renoise.count == schedule.steps - 1 && renoise.allSatisfy { $0.shape == z.shape },
                     "DMD2Generator: \(schedule.steps) steps need \(schedule.steps - 1) re-noising tensors of \(z.shape), got \(renoise.map(\.shape))")
        let y: Tensor<Float>? = c.labelDim > 0 ? oneHot(labels, classes: c.labelDim) : nil
        return schedule.sample(latents: z, renoise: renoise) { input in
            denoiser(Variable(input.x), sigma: input.sigma, classLabels: y).value
        }
    }
}
