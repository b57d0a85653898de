// Double gradient checks of DMD2's four losses (DMD2/Losses.swift) in the space of the
// parameters each one trains, on the debug state's tiny networks (batch 2, 16×16) with random
// non-zero weights (`DebugState.randomInputs(seed: 3)`), plus which networks may and may not get
// a gradient from each loss. Shared by `dmd2 gradcheck` (family "loss") and DMD2Tests.
//
// The derivative check: for the parameters θ a loss trains and a direction d ~ N(0, I) over all
// of them, φ(s) = L(θ + s·d); backward gives φ'(0) = ⟨∇_θ L, d⟩, compared with the Richardson
// difference of φ within its bound, at resolution ≤ 1e-5 of ‖∇_θ L‖ (GradCheck.swift's header).
import DMD2
import DMD2Core
import DMD2Ops
import EDM
import Foundation

public enum LossChecks {
    public static var all: [Check] {
        [
            Check(family: "loss", op: "L_DM", name: "L_DM: ∂/∂x_g = g/n, and its surrogate ⟨sg(g), x_g(θ)⟩/n w.r.t. G") { try distributionMatching() },
            Check(family: "loss", op: "L_G", name: "L_G (generator GAN) w.r.t. G through frozen μ_fake encoder and head") { try generatorGAN() },
            Check(family: "loss", op: "L_fake", name: "L_fake (fake critic) w.r.t. μ_fake") { try fakeCritic() },
            Check(family: "loss", op: "L_D", name: "L_D (discriminator) w.r.t. μ_fake's encoder and the head; the head alone") { try discriminator() },
        ]
    }

    // MARK: Setting

    /// The debug state's random inputs the checks run on.
    nonisolated(unsafe) public static let inputs = DebugState.randomInputs(seed: 3)

    /// DMD2's four networks in Double from the inputs: G and μ_fake trainable, μ_real frozen.
    public static func networks() -> DMD2Networks<Double> {
        let c = inputs.config
        return DMD2Networks(generator: UNet(config: c, parameters: inputs.generator.converted(to: Double.self)),
                            real: UNet(config: c, parameters: inputs.real.converted(to: Double.self, requiresGrad: false)),
                            fake: UNet(config: c, parameters: inputs.fake.converted(to: Double.self)),
                            head: GANHead(channels: c.bottleneckChannels, parameters: inputs.head.converted(to: Double.self)))
    }

    public static var draws: IterationDraws<Double> {
        let d = inputs.draws
        func c(_ n: NoiseDraw<Float>) -> NoiseDraw<Double> { NoiseDraw(t: n.t, noise: n.noise.converted(to: Double.self)) }
        return IterationDraws(latents: d.latents.converted(to: Double.self), labels: d.labels, dm: c(d.dm), generatorGAN: c(d.generatorGAN),
                              fake: c(d.fake), discriminatorFake: c(d.discriminatorFake), discriminatorReal: c(d.discriminatorReal))
    }

    public static var labels: Tensor<Double> { oneHot(inputs.draws.labels, classes: inputs.config.labelDim) }

    /// Rounding growth through one of the debug networks (`UNetChecks.reduction`).
    static var growth: Double { GradCheck.roundingGrowth(reductionLength: UNetChecks.reduction(inputs.config)) }

    // MARK: Helpers

    static func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw GradCheckFailure(description: message()) }
    }

    static func requireNoGradient(_ params: ParameterStore<Double>, _ what: String) throws {
        let with = zip(params.names, params.variables).filter { $0.1.grad != nil }.map(\.0)
        try require(with.isEmpty, "\(what) must get no gradient, but \(with.prefix(3)) do")
    }

    /// ⟨∇_θ L, d⟩ from the accumulated gradients against the Richardson difference of `loss`
    /// along d ~ N(0, I) (θ restored afterwards; `loss` runs without recording). `magnitude` is
    /// the size of the terms the loss sums (its rounding scale).
    @discardableResult
    public static func directional(_ what: String, params: [Variable<Double>], seed: UInt64, magnitude: Double,
                                   _ loss: () -> Double) throws -> CheckStats {
        let grads = params.map { $0.grad ?? .zeros($0.shape) }
        var rng = RandomGenerator(seed: seed)
        let d: [Tensor<Double>] = params.map { rng.normal($0.shape) }
        let θ = params.map(\.value)
        var analytic = 0.0, norm2 = 0.0, gθ = 0.0
        for (g, (u, t)) in zip(grads, zip(d, θ)) {
            for k in 0..<g.count {
                analytic += g.scalars[k] * u.scalars[k]; norm2 += g.scalars[k] * g.scalars[k]
                gθ += abs(g.scalars[k] * t.scalars[k])
            }
        }
        try require(norm2 > 0, "\(what): the gradient is zero, which checks nothing")
        let noise = growth * Double.unitRoundoff * magnitude + Double.unitRoundoff * gθ
        defer { for (p, t) in zip(params, θ) { p.value = t } }
        var stats = try GradCheck.directional(what, analytic: analytic, scale: norm2.squareRoot(), noise: noise) { s in
            for (p, (t, u)) in zip(params, zip(θ, d)) {
                p.value = Tensor(shape: t.shape, scalars: zip(t.scalars, u.scalars).map { $0 + s * $1 })
            }
            return NoGrad.run(loss)
        }
        stats.checks = ["⟨∇L, d⟩"]
        return stats
    }

    // MARK: (a) distribution matching

    /// L_DM = ½·mean((x_g − sg(x_g − g))²): its value is ½·mean(g²), but g is computed without
    /// gradient, so its derivative is NOT the derivative of that value. Backward must give the
    /// surrogate's: ∂L_DM/∂x_g = g/n (checked element by element, with g recomputed here from
    /// its definition), and through G ∂L_DM/∂θ_G = ∇_θ S(θ), S(θ) = ⟨sg(g), x_g(θ)⟩/n, checked
    /// against finite differences of S with g held fixed.
    @discardableResult
    public static func distributionMatching() throws -> CheckStats {
        let nets = networks()
        let draws = self.draws, labels = self.labels
        let input = DMD2Networks<Double>.oneStepInput(latents: draws.latents)
        let xg = nets.generate(input, labels: labels)
        let x = xg.value, n = x.count

        // g from its definition, independently of the loss.
        let σ = draws.dm.sigmas(.dmd2)
        let noisy = Tensor(shape: x.shape, scalars: (0..<n).map { x.scalars[$0] + σ[$0 / (n / 2)] * draws.dm.noise.scalars[$0] })
        let a = NoGrad.run { nets.real(Variable(noisy), sigma: σ, classLabels: labels).value }
        let b = NoGrad.run { nets.fake(Variable(noisy), sigma: σ, classLabels: labels).value }
        var g = [Double](repeating: 0, count: n)
        for i in 0..<2 {
            let items = (i * n / 2)..<((i + 1) * n / 2)
            let w = items.map { abs(x.scalars[$0] - a.scalars[$0]) }.reduce(0, +) / Double(n / 2)
            for k in items { g[k] = (b.scalars[k] - a.scalars[k]) / w }
        }

        let leaf = Variable(x, requiresGrad: true)
        let r = distributionMatchingLoss(leaf, labels: labels, real: nets.real, fake: nets.fake, draw: draws.dm)
        let gScale = g.map(abs).max() ?? 0
        let gError = zip(r.grad.scalars, g).map { abs($0 - $1) }.max() ?? 0
        try require(gError <= 1e-13 * gScale, "L_DM: g differs from (b − a)/w by \(gError) (scale \(gScale))")
        let value = 0.5 * g.map { $0 * $0 }.reduce(0, +) / Double(n)
        try require(abs(r.loss.value.scalar - value) <= 1e-13 * value, "L_DM: value \(r.loss.value.scalar) is not ½·mean(g²) = \(value)")
        r.loss.backward()
        try requireNoGradient(nets.real.parameters, "μ_real (from L_DM)")
        try requireNoGradient(nets.fake.parameters, "μ_fake (from L_DM)")
        // ∂L_DM/∂x_g = g/n: backward computes (x − fl(x − g))·(2/n)·½, which differs from g/n
        // only by the rounding of x − g and of the products: ≤ 4u·(|x| + |g|)/n.
        guard let grad = leaf.grad else { throw GradCheckFailure(description: "L_DM: x_g got no gradient") }
        for k in 0..<n {
            let bound = 4 * Double.ulpOfOne * (abs(x.scalars[k]) + abs(r.grad.scalars[k]))
            try require(abs(grad.scalars[k] * Double(n) - r.grad.scalars[k]) <= bound,
                        "L_DM: ∂L/∂x_g at \(k) is \(grad.scalars[k]), not g/n = \(r.grad.scalars[k] / Double(n))")
        }

        // Through G: the objective's generator phase (DM only) backpropagates that seed.
        let objective = DMD2Objective(distributionMatching: true, gan: false)
        let phase = try objective.generatorGradients(networks: nets, xg: xg, labels: labels, draws: draws, regression: nil, step: 1)
        try require(phase.imageGradient == grad, "L_DM: the seed of G's backward pass is not ∂L_DM/∂x_g")
        try require(phase.gan == nil && phase.total == r.loss.value.scalar, "L_DM: the DM-only generator phase has a GAN term or another total")
        try requireNoGradient(nets.fake.parameters, "μ_fake (generator phase)")
        try requireNoGradient(nets.head.parameters, "the head (generator phase)")
        let params = nets.generator.parameters.variables
        try require(params.allSatisfy { $0.grad != nil }, "L_DM: some parameter of G gets no gradient")
        let sg = r.grad
        let magnitude = zip(sg.scalars, x.scalars).map { abs($0 * $1) }.reduce(0, +) / Double(n)
        return try directional("L_DM surrogate ⟨sg(g), x_g(θ)⟩/n w.r.t. G", params: params, seed: 11, magnitude: magnitude) {
            nets.generate(DMD2Networks<Double>.oneStepInput(latents: draws.latents), labels: labels).value.dot(sg) / Double(n)
        }
    }

    // MARK: (b) the generator's GAN loss

    /// L_G = mean softplus(−D(x_g + σ'ε')) flows through μ_fake's encoder and the head into x_g
    /// and G; μ_fake and the head get no gradient from it, even from a plain `backward()`.
    @discardableResult
    public static func generatorGAN() throws -> CheckStats {
        let nets = networks()
        let draws = self.draws, labels = self.labels
        let input = DMD2Networks<Double>.oneStepInput(latents: draws.latents)
        let xg = nets.generate(input, labels: labels)
        let r = generatorGANLoss(xg, labels: labels, critic: nets.fake, head: nets.head, draw: draws.generatorGAN)
        r.loss.backward()
        try requireNoGradient(nets.fake.parameters, "μ_fake (from L_G)")
        try requireNoGradient(nets.head.parameters, "the head (from L_G)")
        try requireNoGradient(nets.real.parameters, "μ_real (from L_G)")
        let params = nets.generator.parameters.variables
        try require(params.allSatisfy { $0.grad != nil }, "L_G: some parameter of G gets no gradient")
        let value = r.logits.scalars.map { Foundation.log(1 + Foundation.exp(-$0)) }.reduce(0, +) / 2
        try require(abs(r.loss.value.scalar - value) <= 1e-14, "L_G: value \(r.loss.value.scalar) is not mean softplus(−D) = \(value)")
        return try directional("L_G w.r.t. G", params: params, seed: 12, magnitude: value + r.logits.scalars.map(abs).reduce(0, +) / Double(r.logits.count)) {
            generatorGANLoss(nets.generate(input, labels: labels), labels: labels, critic: nets.fake, head: nets.head,
                             draw: draws.generatorGAN).loss.value.scalar
        }
    }

    // MARK: (c) the fake critic

    /// L_fake = mean((1/σ² + 1/σ_d²)·(μ_fake(x + σε) − x)²) on x = sg(x_g): a gradient for every
    /// parameter of μ_fake, none for G (the images are detached) or the head.
    @discardableResult
    public static func fakeCritic() throws -> CheckStats {
        let nets = networks()
        let draws = self.draws, labels = self.labels
        let x = NoGrad.run { nets.generate(DMD2Networks<Double>.oneStepInput(latents: draws.latents), labels: labels) }.value
        let r = fakeCriticLoss(x, labels: labels, fake: nets.fake, draw: draws.fake)
        r.loss.backward()
        try requireNoGradient(nets.generator.parameters, "G (from L_fake)")
        try requireNoGradient(nets.head.parameters, "the head (from L_fake)")
        try requireNoGradient(nets.real.parameters, "μ_real (from L_fake)")
        let params = nets.fake.parameters.variables
        try require(params.allSatisfy { $0.grad != nil }, "L_fake: some parameter of μ_fake gets no gradient")
        // The value from the prediction: weights 1/σ² + 1/σ_d² = λ_EDM(σ) per image.
        let σ = draws.fake.sigmas(.dmd2), n = x.count
        var sum = 0.0
        for k in 0..<n {
            let s = σ[k / (n / 2)], e = r.prediction.scalars[k] - x.scalars[k]
            sum += (1 / (s * s) + 4) * e * e
        }
        try require(abs(r.loss.value.scalar - sum / Double(n)) <= 1e-13 * r.loss.value.scalar,
                    "L_fake: value \(r.loss.value.scalar) is not the λ-weighted mean \(sum / Double(n))")
        return try directional("L_fake w.r.t. μ_fake", params: params, seed: 13, magnitude: r.loss.value.scalar) {
            fakeCriticLoss(x, labels: labels, fake: nets.fake, draw: draws.fake).loss.value.scalar
        }
    }

    // MARK: (d) the discriminator

    /// L_D = mean softplus(D(x_fake)) + mean softplus(−D(x_real)): gradients for μ_fake's
    /// encoder (and the embedding it uses) and the head; none for μ_fake's decoder or G.
    @discardableResult
    public static func discriminator() throws -> CheckStats {
        let nets = networks()
        let draws = self.draws, labels = self.labels
        let x = NoGrad.run { nets.generate(DMD2Networks<Double>.oneStepInput(latents: draws.latents), labels: labels) }.value
        let realImages = inputs.realImages.converted(to: Double.self)
        let realLabels: Tensor<Double> = oneHot(inputs.realLabels, classes: inputs.config.labelDim)
        func loss() -> DiscriminatorResult<Double> {
            discriminatorLoss(fake: x, fakeLabels: labels, real: realImages, realLabels: realLabels, critic: nets.fake, head: nets.head,
                              fakeDraw: draws.discriminatorFake, realDraw: draws.discriminatorReal)
        }
        let r = loss()
        r.loss.backward()
        try requireNoGradient(nets.generator.parameters, "G (from L_D)")
        try requireNoGradient(nets.real.parameters, "μ_real (from L_D)")
        let fake = nets.fake.parameters
        let isDecoder = { (name: String) in name.hasPrefix("model.dec.") || name.hasPrefix("model.out_") }
        let decoder = zip(fake.names, fake.variables).filter { isDecoder($0.0) }
        let encoder = zip(fake.names, fake.variables).filter { !isDecoder($0.0) }
        try require(!decoder.isEmpty, "L_D: μ_fake has no decoder parameters to check")
        let leaked = decoder.filter { $0.1.grad != nil }.map(\.0)
        try require(leaked.isEmpty, "L_D: μ_fake's decoder gets a gradient: \(leaked.prefix(3))")
        let missing = encoder.filter { $0.1.grad == nil }.map(\.0)
        try require(missing.isEmpty, "L_D: μ_fake's encoder and embedding get no gradient: \(missing.prefix(3))")
        try require(nets.head.parameters.variables.allSatisfy { $0.grad != nil }, "L_D: some parameter of the head gets no gradient")
        let value = r.logitsFake.scalars.map { Foundation.log(1 + Foundation.exp($0)) }.reduce(0, +) / 2
            + r.logitsReal.scalars.map { Foundation.log(1 + Foundation.exp(-$0)) }.reduce(0, +) / 2
        try require(abs(r.loss.value.scalar - value) <= 1e-14, "L_D: value \(r.loss.value.scalar) is not \(value)")
        // The direction spans all of μ_fake (decoder components change nothing) and the head.
        let params = fake.variables + nets.head.parameters.variables
        var stats = try directional("L_D w.r.t. μ_fake's encoder and the head", params: params, seed: 14, magnitude: value + (r.logitsFake.scalars + r.logitsReal.scalars).map(abs).reduce(0, +) / 4) {
            loss().loss.value.scalar
        }
        stats.merge(try directional("L_D w.r.t. the head", params: nets.head.parameters.variables, seed: 15, magnitude: value + (r.logitsFake.scalars + r.logitsReal.scalars).map(abs).reduce(0, +) / 4) {
            loss().loss.value.scalar
        })
        return stats
    }
}
