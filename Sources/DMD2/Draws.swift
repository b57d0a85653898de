// The random inputs of one DMD2 iteration, drawn by the caller (docs/STYLE.md: no hidden randomness
// in math code), so every loss is a deterministic function of its arguments and a step can be
// replayed exactly (debug state, gradient checks, bitwise resume).
//
// Per iteration, from the trainer's generator, always in this order and whatever the switches
// (so the stream does not depend on which losses are on):
//   latents z ~ N(0, I) [N, C, R, R]            the generator's noise
//   labels y ~ U{0..K−1} per image              the generator's classes (none when K = 0)
//   dm:                 t ~ U{20..980}, ε       distribution matching (docs/METHOD.md §2, step 1)
//   generatorGAN:       t ~ U{0..999},  ε       the generator's GAN loss (fresh σ')
//   fake:               t ~ U{0..999},  ε       the fake critic's denoising loss
//   discriminatorFake:  t ~ U{0..999},  ε       the discriminator's fake images
//   discriminatorReal:  t ~ U{0..999},  ε       the discriminator's real images
//   fewStep (only for a k-step generator, k > 1; nothing is drawn for k = 1, so the one-step
//   stream is unchanged):
//                       j ~ U{0..k−1}, then ε_1 … ε_{k−1}   the step trained this iteration and
//                                                           the rollout's re-noising (FewStep.swift)
// Each NoiseDraw holds N indices into the σ grid K (drawn first) and then ε of the images' shape.
import DMD2Core

/// Grid indices t (one per image) and a standard normal ε of the images' shape: the noise
/// x + K[t]·ε one loss adds.
public struct NoiseDraw<T: TensorScalar> {
    /// Indices into the σ grid, one per image.
    public var t: [Int]
    /// ε ~ N(0, I), [N, C, R, R].
    public var noise: Tensor<T>

    public init(t: [Int], noise: Tensor<T>) {
        precondition(noise.rank >= 1 && noise.shape[0] == t.count,
                     "NoiseDraw: \(t.count) indices for noise of shape \(noise.shape)")
        self.t = t
        self.noise = noise
    }

    /// σ = K[t] per image.
    public func sigmas(_ grid: SigmaGrid) -> [Double] { grid.sigmas(at: t) }

    /// N indices uniform in `steps`, then ε of `shape` ([N, …]).
    public static func draw(shape: [Int], steps: ClosedRange<Int>, rng: inout RandomGenerator) -> NoiseDraw {
        precondition(!shape.isEmpty, "NoiseDraw.draw: images need a batch axis, got shape \(shape)")
        let t = (0..<shape[0]).map { _ in rng.int(in: steps) }
        return NoiseDraw(t: t, noise: rng.normal(shape))
    }
}

/// The few-step generator's draws of one iteration: the step j trained (one per batch) and the
/// rollout's fresh noise ε_1 … ε_{k−1} (all k − 1 drawn whatever j, so the stream does not
/// depend on j; ε_0 is the iteration's latents z).
public struct FewStepDraw<T: TensorScalar> {
    /// j ∈ 0 … k−1.
    public var step: Int
    /// ε_1 … ε_{k−1}, each [N, C, R, R].
    public var renoise: [Tensor<T>]

    public init(step: Int, renoise: [Tensor<T>]) {
        precondition((0...renoise.count).contains(step), "FewStepDraw: step \(step) of a \(renoise.count + 1)-step generator")
        self.step = step
        self.renoise = renoise
    }

    /// k, the generator's steps.
    public var steps: Int { renoise.count + 1 }

    /// j ~ U{0 … k−1}, then k − 1 standard normal tensors of `shape`; nil (nothing drawn) for k = 1.
    public static func draw(shape: [Int], steps k: Int, rng: inout RandomGenerator) -> FewStepDraw? {
        precondition(k >= 1, "FewStepDraw.draw: \(k) generator steps")
        guard k > 1 else { return nil }
        let j = rng.int(in: 0...(k - 1))
        return FewStepDraw(step: j, renoise: (1..<k).map { _ in rng.normal(shape) })
    }
}

/// Everything random in one DMD2 iteration (see the file header for the order).
public struct IterationDraws<T: TensorScalar> {
    public var latents: Tensor<T>
    /// Generator classes (all −1, drawing nothing, for an unconditional model).
    public var labels: [Int]
    public var dm: NoiseDraw<T>
    public var generatorGAN: NoiseDraw<T>
    public var fake: NoiseDraw<T>
    public var discriminatorFake: NoiseDraw<T>
    public var discriminatorReal: NoiseDraw<T>
    /// The few-step generator's step and re-noising (nil for the one-step generator).
    public var fewStep: FewStepDraw<T>?

    public init(latents: Tensor<T>, labels: [Int], dm: NoiseDraw<T>, generatorGAN: NoiseDraw<T>, fake: NoiseDraw<T>,
                discriminatorFake: NoiseDraw<T>, discriminatorReal: NoiseDraw<T>, fewStep: FewStepDraw<T>? = nil) {
        self.latents = latents
        self.labels = labels
        self.dm = dm
        self.generatorGAN = generatorGAN
        self.fake = fake
        self.discriminatorFake = discriminatorFake
        self.discriminatorReal = discriminatorReal
        self.fewStep = fewStep
    }

    /// One iteration's draws for images of `shape` [N, C, R, R] and `classes` classes (0:
    /// unconditional). `dmSteps` is the DM loss's index range (DMD2: 20…980); the other
    /// losses use the whole grid 0…`grid.maxIndex`. `generatorSteps` k > 1 appends the
    /// few-step draw (j, ε_1 … ε_{k−1}); k = 1 draws exactly the one-step stream.
    public static func draw(shape: [Int], classes: Int, grid: SigmaGrid = .dmd2, dmSteps: ClosedRange<Int> = 20...980,
                            generatorSteps: Int = 1, rng: inout RandomGenerator) -> IterationDraws {
        precondition(shape.count == 4, "IterationDraws.draw: shape \(shape), expected [N, C, R, R]")
        precondition(dmSteps.lowerBound >= 0 && dmSteps.upperBound <= grid.maxIndex,
                     "IterationDraws.draw: DM steps \(dmSteps) outside the grid 0…\(grid.maxIndex)")
        let N = shape[0], all = 0...grid.maxIndex
        let z: Tensor<T> = rng.normal(shape)
        let labels = (0..<N).map { _ in classes > 0 ? rng.int(in: 0...(classes - 1)) : -1 }
        let dm = NoiseDraw<T>.draw(shape: shape, steps: dmSteps, rng: &rng)
        let gan = NoiseDraw<T>.draw(shape: shape, steps: all, rng: &rng)
        let fake = NoiseDraw<T>.draw(shape: shape, steps: all, rng: &rng)
        let discFake = NoiseDraw<T>.draw(shape: shape, steps: all, rng: &rng)
        let discReal = NoiseDraw<T>.draw(shape: shape, steps: all, rng: &rng)
        let fewStep = FewStepDraw<T>.draw(shape: shape, steps: generatorSteps, rng: &rng)
        return IterationDraws(latents: z, labels: labels, dm: dm, generatorGAN: gan, fake: fake,
                              discriminatorFake: discFake, discriminatorReal: discReal, fewStep: fewStep)
    }
}
