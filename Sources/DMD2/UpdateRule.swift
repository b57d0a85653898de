// DMD2's update rule: one iteration of the two time-scale update (docs/METHOD.md §2 "Totals and
// update rule"). The trainer (Trainer.swift) and the debug state (DebugState.swift) both run
// their iterations through `DMD2Objective.iterate`.
//
// Iteration i (0-based), with the draws of IterationDraws (z, y, t's and ε's):
//   x_g = G(σ_max·z; σ_max, y)                     recorded only when i % ratio == 0
//     (a k-step generator, FewStep.swift: x_g = G(x_j; σ_j, y) at the draw's step j, with x_j
//      from the rollout of the current G without gradient — backward simulation — or, with it
//      off, a noised real image x_real + σ_j·ε_j whose class G is then given)
//   generator phase (only when i % ratio == 0):
//     L_gen = L_DM(x_g) + w_G·L_G(x_g)             on a leaf copy of x_g, backward → ∂L_gen/∂x_g
//     backward through G with that seed            → ∂L_gen/∂θ_G
//     [+ w_reg·L_reg(G(σ_max·z_pair)) on stored teacher pairs, backward through G]
//   critic phase (every iteration), on sg(x_g) of the same batch:
//     L_crit = L_fake(sg(x_g)) + w_D·L_D(sg(x_g), real images)   → ∂/∂θ_fake, ∂/∂θ_head
//   every loss and every gradient is checked for NaN/±∞ (NonFiniteError names step and tensor)
//   before anything is updated; then, per optimiser, the gradient norm is clipped to 10 and
//   AdamW steps: G (generator iterations only), then μ_fake + head.
// Splitting G's backward at x_g is exactly the chain rule ∂L/∂θ = (∂x_g/∂θ)ᵀ·∂L/∂x_g; it keeps
// the image-space gradient visible (the debug state records it) and shows that L_DM reaches G
// only through x_g. Computing the critic's gradients before G's update is the same as updating
// G first: the critic's losses read sg(x_g) and μ_fake, neither of which G's step changes.
import DMD2Core
import DMD2Ops
import DMD2Train
import EDM

/// The losses' switches and weights.
public struct DMD2Objective: Sendable, Equatable {
    public var distributionMatching: Bool
    public var gan: Bool
    /// w_G (3e-3).
    public var ganWeightGenerator: Double
    /// w_D (1e-2).
    public var ganWeightCritic: Double
    /// w_reg (nil: no regression term).
    public var regressionWeight: Double?
    /// Guidance scale on the real score (nil: none).
    public var realGuidance: Double?
    public var grid: SigmaGrid
    /// The generator's noise levels (one step at σ_max = 80 by default; FewStep.swift).
    public var schedule: GeneratorSchedule
    /// A k-step generator's training input: the rollout of the current G (true) or a noised
    /// real image (false). Irrelevant for one step.
    public var backwardSimulation: Bool

    public init(distributionMatching: Bool = true, gan: Bool = true, ganWeightGenerator: Double = 3e-3, ganWeightCritic: Double = 1e-2,
                regressionWeight: Double? = nil, realGuidance: Double? = nil, grid: SigmaGrid = .dmd2,
                schedule: GeneratorSchedule = .oneStep, backwardSimulation: Bool = true) {
        self.distributionMatching = distributionMatching
        self.gan = gan
        self.ganWeightGenerator = ganWeightGenerator
        self.ganWeightCritic = ganWeightCritic
        self.regressionWeight = regressionWeight
        self.realGuidance = realGuidance
        self.grid = grid
        self.schedule = schedule
        self.backwardSimulation = backwardSimulation
    }

    /// Whether G's training inputs are noised real images (a few-step generator without
    /// backward simulation): the iteration then needs a real batch even without the GAN.
    public var generatorReadsRealImages: Bool { schedule.steps > 1 && !backwardSimulation }
}

/// A batch of real images with their labels (the discriminator's "real" side).
public struct RealBatch<T: TensorScalar> {
    /// [N, C, R, R] in [−1, 1].
    public var images: Tensor<T>
    /// One-hot [N, K] (nil for an unconditional model).
    public var labels: Tensor<T>?

    public init(images: Tensor<T>, labels: Tensor<T>?) {
        self.images = images
        self.labels = labels
    }
}

/// Regression pairs for one generator step: G's input, labels and the teacher's samples.
public struct RegressionBatch<T: TensorScalar> {
    public var input: GeneratorInput<T>
    public var labels: Tensor<T>?
    public var targets: Tensor<T>

    public init(input: GeneratorInput<T>, labels: Tensor<T>?, targets: Tensor<T>) {
        self.input = input
        self.labels = labels
        self.targets = targets
    }
}

/// What the generator phase computed.
public struct GeneratorPhase<T: TensorScalar> {
    public var dm: DistributionMatchingResult<T>?
    public var gan: GeneratorGANResult<T>?
    /// L_reg's value (nil without regression).
    public var regression: T?
    /// L_DM + w_G·L_G + w_reg·L_reg.
    public var total: T
    /// ∂(L_DM + w_G·L_G)/∂x_g (the seed of G's backward pass), [N, C, R, R].
    public var imageGradient: Tensor<T>
}

/// What the critic phase computed.
public struct CriticPhase<T: TensorScalar> {
    public var fake: FakeCriticResult<T>
    public var discriminator: DiscriminatorResult<T>?
    /// L_fake + w_D·L_D.
    public var total: T
}

/// One iteration's results.
public struct IterationOutcome<T: TensorScalar> {
    /// Whether G was updated.
    public var updatedGenerator: Bool
    /// G's input this iteration (x_j at σ_j) with the rollout's outputs x̂_0 … x̂_{j−1}.
    public var rollout: GeneratorRollout<T>
    /// x_g, [N, C, R, R].
    public var images: Tensor<T>
    public var generator: GeneratorPhase<T>?
    public var critic: CriticPhase<T>
    /// Global gradient norms before clipping (G's only on generator iterations).
    public var generatorGradNorm: Double?
    public var criticGradNorm: Double
    /// Learning rates of the steps taken.
    public var generatorLearningRate: Double?
    public var criticLearningRate: Double

    /// The norms and learning rates `DMD2Optimizers.apply` returned.
    public mutating func record(_ applied: (generatorGradNorm: Double?, generatorLearningRate: Double?,
                                            criticGradNorm: Double, criticLearningRate: Double)) {
        generatorGradNorm = applied.generatorGradNorm
        generatorLearningRate = applied.generatorLearningRate
        criticGradNorm = applied.criticGradNorm
        criticLearningRate = applied.criticLearningRate
    }
}

/// The two AdamW optimisers and the clipping norm.
public final class DMD2Optimizers<T: TensorScalar> {
    public let generator: AdamW<T>
    public let critic: AdamW<T>
    public let maxGradNorm: Double

    public init(networks: DMD2Networks<T>, generator: AdamWConfig, critic: AdamWConfig, maxGradNorm: Double) {
        self.generator = AdamW(parameters: networks.generatorParameters, config: generator)
        self.critic = AdamW(parameters: networks.criticParameters, config: critic)
        self.maxGradNorm = maxGradNorm
    }

    /// Clip each optimiser's gradients to `maxGradNorm` and step: G's (when `updateGenerator`),
    /// then the critic's; gradients are cleared afterwards. Returns the norms before clipping and
    /// the learning rates used.
    public func apply(updateGenerator: Bool) -> (generatorGradNorm: Double?, generatorLearningRate: Double?,
                                                  criticGradNorm: Double, criticLearningRate: Double) {
        var gNorm: Double?, gLR: Double?
        if updateGenerator {
            gNorm = clipGradNorm(generator.parameters, maxNorm: maxGradNorm)
            gLR = generator.step()
            generator.zeroGrad()
        }
        let cNorm = clipGradNorm(critic.parameters, maxNorm: maxGradNorm)
        let cLR = critic.step()
        critic.zeroGrad()
        return (gNorm, gLR, cNorm, cLR)
    }
}

extension DMD2Objective {
    /// One iteration (see the file header). `step` (1-based) names the iteration in
    /// `NonFiniteError`s; `beforeUpdate` sees the networks with every gradient in place, before
    /// clipping and the optimiser steps (the debug state records them there).
    public func iterate<T>(
        networks: DMD2Networks<T>, optimizers: DMD2Optimizers<T>, draws: IterationDraws<T>, real: RealBatch<T>?,
        regression: RegressionBatch<T>?, updateGenerator: Bool, step: Int,
        beforeUpdate: (IterationOutcome<T>) -> Void = { _ in }
    ) throws -> IterationOutcome<T> {
        var outcome = try gradients(networks: networks, optimizers: optimizers, draws: draws, real: real, regression: regression,
                                    updateGenerator: updateGenerator, step: step)
        beforeUpdate(outcome)
        outcome.record(optimizers.apply(updateGenerator: updateGenerator))
        return outcome
    }

    /// The iteration up to its update: both phases, every gradient left in the networks'
    /// `.grad`s (cleared first), no parameter changed. A data-parallel trainer runs this per
    /// shard, averages the gradients and then applies `DMD2Optimizers.apply` once.
    public func gradients<T>(
        networks: DMD2Networks<T>, optimizers: DMD2Optimizers<T>, draws: IterationDraws<T>, real: RealBatch<T>?,
        regression: RegressionBatch<T>?, updateGenerator: Bool, step: Int
    ) throws -> IterationOutcome<T> {
        let config = networks.config
        precondition((draws.fewStep?.steps ?? 1) == schedule.steps,
                     "DMD2Objective: draws for a \(draws.fewStep?.steps ?? 1)-step generator, schedule of \(schedule.steps) steps")
        var labels: Tensor<T>? = config.labelDim > 0 ? oneHot(draws.labels, classes: config.labelDim) : nil
        if generatorReadsRealImages {
            guard let real else { preconditionFailure("DMD2Objective: a few-step generator without backward simulation needs real images") }
            labels = real.labels                                    // G denoises the real images of their own classes
        }
        let rollout = NoGrad.run {
            schedule.trainingInput(latents: draws.latents, draw: draws.fewStep, backwardSimulation: backwardSimulation,
                                   realImages: real?.images) { networks.generate($0, labels: labels).value }
        }
        let input = rollout.input
        optimizers.generator.zeroGrad()
        optimizers.critic.zeroGrad()

        var generatorPhase: GeneratorPhase<T>?
        let images: Tensor<T>
        if updateGenerator {
            let xg = networks.generate(input, labels: labels)
            images = xg.value
            generatorPhase = try generatorGradients(networks: networks, xg: xg, labels: labels, draws: draws,
                                                    regression: regression, step: step)
        } else {
            images = NoGrad.run { networks.generate(input, labels: labels) }.value
        }
        let criticPhase = try criticGradients(networks: networks, images: images, labels: labels, draws: draws, real: real, step: step)

        return IterationOutcome(updatedGenerator: updateGenerator, rollout: rollout, images: images, generator: generatorPhase, critic: criticPhase,
                                generatorGradNorm: nil, criticGradNorm: 0, generatorLearningRate: nil, criticLearningRate: 0)
    }

    /// The generator phase: L_DM + w_G·L_G on a leaf copy of x_g, its gradient pushed through G
    /// (`xg` must have been recorded through G), then the regression term; leaves the gradients
    /// in G's `.grad`s. Throws at the first non-finite loss or gradient.
    public func generatorGradients<T>(
        networks: DMD2Networks<T>, xg: Variable<T>, labels: Tensor<T>?, draws: IterationDraws<T>,
        regression: RegressionBatch<T>?, step: Int
    ) throws -> GeneratorPhase<T> {
        let leaf = Variable(xg.value, requiresGrad: true, name: "x_g")
        var total: Variable<T>?
        var dmResult: DistributionMatchingResult<T>?, ganResult: GeneratorGANResult<T>?
        if distributionMatching {
            let r = distributionMatchingLoss(leaf, labels: labels, real: networks.real, fake: networks.fake, draw: draws.dm,
                                             grid: grid, realGuidance: realGuidance)
            try NonFinite.check(r.loss.value, name: "L_DM", step: step)
            dmResult = r
            total = r.loss
        }
        if gan {
            let r = generatorGANLoss(leaf, labels: labels, critic: networks.fake, head: networks.head, draw: draws.generatorGAN, grid: grid)
            try NonFinite.check(r.loss.value, name: "L_G", step: step)
            ganResult = r
            let weighted = r.loss * T(ganWeightGenerator)
            total = total.map { $0 + weighted } ?? weighted
        }
        var imageGradient = Tensor<T>.zeros(xg.shape)
        if let total {
            total.backward()                                        // only the leaf x_g requires grad
            imageGradient = leaf.grad ?? imageGradient
            xg.backward(seed: imageGradient, to: networks.generator.parameters.variables)
        }
        var value = total?.value.scalar ?? 0
        var regressionValue: T?
        if let regression, let w = regressionWeight {
            let generated = networks.generate(regression.input, labels: regression.labels)
            let loss = regressionLoss(generated, targets: regression.targets)
            try NonFinite.check(loss.value, name: "L_reg", step: step)
            (loss * T(w)).backward(to: networks.generator.parameters.variables)
            regressionValue = loss.value.scalar
            value += T(w) * loss.value.scalar
        }
        let g = networks.generator.parameters
        try NonFinite.checkGradients(names: g.names.map { "generator.\($0)" }, parameters: g.variables, step: step)
        return GeneratorPhase(dm: dmResult, gan: ganResult, regression: regressionValue, total: value, imageGradient: imageGradient)
    }

    /// The critic phase on sg(x_g): L_fake + w_D·L_D; leaves the gradients in μ_fake's and the
    /// head's `.grad`s. Throws at the first non-finite loss or gradient.
    public func criticGradients<T>(
        networks: DMD2Networks<T>, images: Tensor<T>, labels: Tensor<T>?, draws: IterationDraws<T>, real: RealBatch<T>?, step: Int
    ) throws -> CriticPhase<T> {
        let fake = fakeCriticLoss(images, labels: labels, fake: networks.fake, draw: draws.fake, grid: grid)
        try NonFinite.check(fake.loss.value, name: "L_fake", step: step)
        var total = fake.loss
        var discriminator: DiscriminatorResult<T>?
        if gan {
            guard let real else { preconditionFailure("DMD2Objective: the GAN terms need a batch of real images") }
            let r = discriminatorLoss(fake: images, fakeLabels: labels, real: real.images, realLabels: real.labels,
                                      critic: networks.fake, head: networks.head,
                                      fakeDraw: draws.discriminatorFake, realDraw: draws.discriminatorReal, grid: grid)
            try NonFinite.check(r.loss.value, name: "L_D", step: step)
            discriminator = r
            total = total + r.loss * T(ganWeightCritic)
        }
        let critic = networks.criticParameters
        total.backward(to: critic.map(\.variable))
        try NonFinite.checkGradients(names: networks.fake.parameters.names.map { "fake.\($0)" } + networks.head.parameters.names.map { "head.\($0)" },
                                     parameters: critic.map(\.variable), step: step)
        return CriticPhase(fake: fake, discriminator: discriminator, total: total.value.scalar)
    }
}
