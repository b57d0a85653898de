// Double gradient checks of DMD2's four losses (Losses.swift) in the space of the parameters
// each one trains, by central differences along a random direction, on the debug state's tiny
// networks with random non-zero weights (batch 2, 16×16).
//
// The check: for parameters θ (a list of leaves) and a random direction d with ‖d‖ = 1, let
// φ(s) = L(θ + s·d). Backward gives φ'(0) = ⟨∇_θ L, d⟩; the central difference
//     D(h) = (φ(h) − φ(−h)) / 2h = φ'(0) + h²·φ'''(ξ)/6 + O(u_φ/h)
// where u_φ is the rounding error of one evaluation of the loss in Double (~1e-16·|φ| times
// the forward pass's error growth). At h = 1e-4 the truncation term is ~2e-9·|φ'''| and the
// rounding term ~1e-12·|φ|/|φ'| relative; measured relative errors are 2e-10 … 7e-9 (printed),
// so the tolerance 1e-6 leaves a margin of over 100 while any real mistake — a missing path,
// a wrong factor, a gradient reaching the wrong network — gives relative errors of order 1.
// The check passes at h and at h/2: a wrong gradient's error does not depend on h.
import DMD2
import DMD2Core
import DMD2Ops
import EDM
import Foundation
import XCTest

final class LossGradientTests: CheckedTestCase {
    override func setUp() { Threads.count = 1 }

    let inputs = DebugState.randomInputs(seed: 3)
    let h = 1e-4
    let tolerance = 1e-6

    var draws: IterationDraws<Double> { converted(inputs.draws, to: Double.self) }
    var labels: Tensor<Double> { oneHot(inputs.draws.labels, classes: inputs.config.labelDim) }

    /// A random direction over `params`, of unit norm overall.
    func direction(_ params: [Variable<Double>], seed: UInt64) -> [Tensor<Double>] {
        var rng = RandomGenerator(seed: seed)
        let d: [Tensor<Double>] = params.map { rng.normal($0.shape) }
        let n = norm(d)
        return d.map { $0 * (1 / n) }
    }

    /// (φ(h) − φ(−h))/2h for φ(s) = f(θ + s·d), θ restored afterwards; f runs without recording.
    func centralDifference(_ params: [Variable<Double>], _ d: [Tensor<Double>], h: Double, _ f: () -> Double) -> Double {
        let θ = params.map(\.value)
        func at(_ s: Double) -> Double {
            for (p, (t, u)) in zip(params, zip(θ, d)) { p.value = t + u * s }
            return NoGrad.run(f)
        }
        let result = (at(h) - at(-h)) / (2 * h)
        for (p, t) in zip(params, θ) { p.value = t }
        return result
    }

    /// ⟨gradients, d⟩ against the central difference of f along d (see the file header).
    func assertDirectionalDerivative(_ what: String, params: [Variable<Double>], gradients: [Tensor<Double>], seed: UInt64,
                                     _ f: () -> Double, line: UInt = #line) {
        let d = direction(params, seed: seed)
        let analytic = dot(gradients, d)
        let numeric = centralDifference(params, d, h: h, f)
        let half = centralDifference(params, d, h: h / 2, f)
        let error = abs(analytic - numeric), errorHalf = abs(analytic - half)
        let scale = max(abs(analytic), abs(numeric))
        print(String(format: "%@: ⟨∇L, d⟩ = %.12e, FD(h) = %.12e, rel. error %.2e, at h/2 %.2e", what, analytic, numeric,
                     error / scale, errorHalf / scale))
        XCTAssertGreaterThan(abs(analytic), 0, "\(what): zero directional derivative checks nothing", line: line)
        XCTAssertLessThanOrEqual(error, tolerance * scale, "\(what): backward \(analytic), central difference \(numeric) at h = \(h)", line: line)
        XCTAssertLessThanOrEqual(errorHalf, tolerance * scale, "\(what): backward \(analytic), central difference \(half) at h = \(h / 2)", line: line)
    }

    func gradients(_ params: [Variable<Double>]) -> [Tensor<Double>] { params.map { $0.grad ?? .zeros($0.shape) } }

    func assertNoGradient(_ params: ParameterStore<Double>, _ what: String, line: UInt = #line) {
        let with = zip(params.names, params.variables).filter { $0.1.grad != nil }.map(\.0)
        XCTAssertEqual(with, [], "\(what) must get no gradient", line: line)
    }

    // MARK: (a) distribution matching

    /// L_DM = ½·mean((x_g − sg(x_g − g))²): its value is ½·mean(g²), but g is computed without
    /// gradient, so its derivative is NOT the derivative of that value (which would include
    /// ∂g/∂x_g through μ_real, μ_fake and w). What backward must give is the surrogate's:
    ///     ∂L_DM/∂x_g = g/(N·C·H·W),
    /// checked here element by element, and through G
    ///     ∂L_DM/∂θ_G = (∂x_g/∂θ_G)ᵀ·g/(N·C·H·W) = ∇_θ S(θ),   S(θ) = ⟨sg(g), x_g(θ)⟩/(N·C·H·W),
    /// checked against central differences of S with g held at its value at θ.
    func testDistributionMatchingGradient() throws {
        let nets = networks(inputs, as: Double.self)
        let draws = self.draws, labels = self.labels
        let input = DMD2Networks<Double>.oneStepInput(latents: draws.latents)
        let xg = nets.generate(input, labels: labels)
        let x = xg.value, n = x.count
        XCTAssertEqual(input.sigma, [80, 80])
        XCTAssertEqual(input.x, draws.latents * 80)

        // g from its definition, computed independently of the loss.
        let σ = draws.dm.sigmas(.dmd2)
        XCTAssertTrue(draws.dm.t.allSatisfy { (20...980).contains($0) })
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
        XCTAssertEqual(r.sigma, σ)
        XCTAssertEqual(r.noisy, noisy)
        XCTAssertLessThan(relativeError(r.grad.scalars, g), 1e-13, "g = (b − a)/w")
        XCTAssertEqual(r.loss.value.scalar, 0.5 * g.map { $0 * $0 }.reduce(0, +) / Double(n), accuracy: 1e-13 * r.loss.value.scalar,
                       "the value is ½·mean(g²)")
        r.loss.backward()
        assertNoGradient(nets.real.parameters, "μ_real")
        assertNoGradient(nets.fake.parameters, "μ_fake")
        // ∂L_DM/∂x_g = g/n: the backward pass computes (x − fl(x − g))·(2/n)·½, which differs
        // from g/n only by the rounding of x − g and of the products: ≤ 4u·(|x| + |g|)/n.
        let grad = try XCTUnwrap(leaf.grad)
        for k in 0..<n {
            let bound = 4 * Double.ulpOfOne * (abs(x.scalars[k]) + abs(r.grad.scalars[k]))
            XCTAssertEqual(grad.scalars[k] * Double(n), r.grad.scalars[k], accuracy: bound, "∂L_DM/∂x_g at \(k)")
        }

        // Through G: the objective's generator phase (DM only) backpropagates that seed.
        let objective = DMD2Objective(distributionMatching: true, gan: false)
        let phase = try objective.generatorGradients(networks: nets, xg: xg, labels: labels, draws: draws, regression: nil, step: 1)
        XCTAssertEqual(phase.imageGradient, grad, "the seed of G's backward pass is ∂L_DM/∂x_g")
        XCTAssertNil(phase.gan)
        XCTAssertEqual(phase.total, r.loss.value.scalar)
        assertNoGradient(nets.fake.parameters, "μ_fake")
        assertNoGradient(nets.head.parameters, "the head")
        let params = nets.generator.parameters.variables
        XCTAssertTrue(params.allSatisfy { $0.grad != nil }, "every parameter of G gets a gradient")
        let sg = r.grad
        assertDirectionalDerivative("L_DM surrogate ⟨sg(g), x_g(θ)⟩/n w.r.t. G", params: params, gradients: gradients(params), seed: 11) {
            nets.generate(DMD2Networks<Double>.oneStepInput(latents: draws.latents), labels: labels).value.dot(sg) / Double(n)
        }
    }

    // MARK: (b) the generator's GAN loss

    /// L_G = mean softplus(−D(x_g + σ'ε')) flows through μ_fake's encoder and the head into x_g
    /// and G; μ_fake and the head get no gradient from it, even from a plain `backward()`.
    func testGeneratorGANGradient() throws {
        let nets = networks(inputs, as: Double.self)
        let draws = self.draws, labels = self.labels
        let input = DMD2Networks<Double>.oneStepInput(latents: draws.latents)
        let xg = nets.generate(input, labels: labels)
        let r = generatorGANLoss(xg, labels: labels, critic: nets.fake, head: nets.head, draw: draws.generatorGAN)
        r.loss.backward()                                              // every leaf that requires grad
        assertNoGradient(nets.fake.parameters, "μ_fake (from L_G)")
        assertNoGradient(nets.head.parameters, "the head (from L_G)")
        assertNoGradient(nets.real.parameters, "μ_real")
        let params = nets.generator.parameters.variables
        XCTAssertTrue(params.allSatisfy { $0.grad != nil }, "every parameter of G gets a gradient")
        let grads = gradients(params)

        // The logit is D of the noised images; the loss its softplus mean.
        let logits = NoGrad.run {
            discriminatorLogits(Variable(xg.value), labels: labels, sigma: draws.generatorGAN.sigmas(.dmd2), noise: draws.generatorGAN.noise,
                                critic: nets.fake, head: nets.head).value
        }
        XCTAssertEqual(r.logits, logits)
        XCTAssertEqual(r.loss.value.scalar, logits.scalars.map { Foundation.log(1 + Foundation.exp(-$0)) }.reduce(0, +) / 2,
                       accuracy: 1e-14)

        assertDirectionalDerivative("L_G w.r.t. G", params: params, gradients: grads, seed: 12) {
            generatorGANLoss(nets.generate(input, labels: labels), labels: labels, critic: nets.fake, head: nets.head,
                             draw: draws.generatorGAN).loss.value.scalar
        }

        // Control: the same logits through the trainable μ_fake and head (not frozen copies)
        // would give them gradients — so the assertions above test the freezing.
        let unfrozen = discriminatorLogits(xg, labels: labels, sigma: draws.generatorGAN.sigmas(.dmd2), noise: draws.generatorGAN.noise,
                                           critic: nets.fake, head: nets.head)
        let leaked = DMD2Core.gradients(of: softplusLoss(-unfrozen), withRespectTo: nets.fake.parameters.variables + nets.head.parameters.variables)
        XCTAssertGreaterThan(leaked.map { $0.maxAbs() }.max()!, 0)

        // The objective's generator phase (GAN only) gives w_G times the same gradient.
        nets.generator.parameters.zeroGrad()
        let objective = DMD2Objective(distributionMatching: false, gan: true, ganWeightGenerator: 3e-3)
        let phase = try objective.generatorGradients(networks: nets, xg: nets.generate(input, labels: labels), labels: labels,
                                                     draws: draws, regression: nil, step: 1)
        XCTAssertNil(phase.dm)
        XCTAssertEqual(phase.total, 3e-3 * r.loss.value.scalar, accuracy: 1e-15)
        assertNoGradient(nets.fake.parameters, "μ_fake (generator phase)")
        assertNoGradient(nets.head.parameters, "the head (generator phase)")
        XCTAssertLessThan(relativeError(gradients(params).flatMap(\.scalars), grads.flatMap { ($0 * 3e-3).scalars }), 1e-12)
    }

    // MARK: (c) the fake critic

    /// L_fake = mean((1/σ² + 1/σ_d²)·(μ_fake(x + σε) − x)²) on x = sg(x_g): a gradient for every
    /// parameter of μ_fake, none for G (the images are detached) or the head.
    func testFakeCriticGradient() throws {
        let nets = networks(inputs, as: Double.self)
        let draws = self.draws, labels = self.labels
        let x = NoGrad.run { nets.generate(DMD2Networks<Double>.oneStepInput(latents: draws.latents), labels: labels) }.value
        let r = fakeCriticLoss(x, labels: labels, fake: nets.fake, draw: draws.fake)
        r.loss.backward()
        assertNoGradient(nets.generator.parameters, "G (from L_fake)")
        assertNoGradient(nets.head.parameters, "the head (from L_fake)")
        assertNoGradient(nets.real.parameters, "μ_real")
        let params = nets.fake.parameters.variables
        XCTAssertTrue(params.allSatisfy { $0.grad != nil }, "every parameter of μ_fake gets a gradient")

        // The value, from the prediction: weights 1/σ² + 1/σ_d² = λ_EDM(σ) per image.
        let σ = draws.fake.sigmas(.dmd2), n = x.count
        var sum = 0.0
        for k in 0..<n {
            let s = σ[k / (n / 2)], e = r.prediction.scalars[k] - x.scalars[k]
            sum += (1 / (s * s) + 4) * e * e
        }
        XCTAssertEqual(r.loss.value.scalar, sum / Double(n), accuracy: 1e-13 * r.loss.value.scalar)

        assertDirectionalDerivative("L_fake w.r.t. μ_fake", params: params, gradients: gradients(params), seed: 13) {
            fakeCriticLoss(x, labels: labels, fake: nets.fake, draw: draws.fake).loss.value.scalar
        }
    }

    // MARK: (d) the discriminator

    /// L_D = mean softplus(D(x_fake)) + mean softplus(−D(x_real)): gradients for μ_fake's
    /// encoder (and the embedding it uses) and the head; none for μ_fake's decoder or G.
    func testDiscriminatorGradient() throws {
        let nets = networks(inputs, as: Double.self)
        let draws = self.draws, labels = self.labels
        let x = NoGrad.run { nets.generate(DMD2Networks<Double>.oneStepInput(latents: draws.latents), labels: labels) }.value
        let real = realBatch(inputs, as: Double.self)
        func loss() -> DiscriminatorResult<Double> {
            discriminatorLoss(fake: x, fakeLabels: labels, real: real.images, realLabels: real.labels, critic: nets.fake, head: nets.head,
                              fakeDraw: draws.discriminatorFake, realDraw: draws.discriminatorReal)
        }
        let r = loss()
        r.loss.backward()
        assertNoGradient(nets.generator.parameters, "G (from L_D)")
        assertNoGradient(nets.real.parameters, "μ_real")
        let fake = nets.fake.parameters
        let isDecoder = { (name: String) in name.hasPrefix("model.dec.") || name.hasPrefix("model.out_") }
        let decoder = zip(fake.names, fake.variables).filter { isDecoder($0.0) }
        let encoder = zip(fake.names, fake.variables).filter { !isDecoder($0.0) }
        XCTAssertFalse(decoder.isEmpty)
        XCTAssertEqual(decoder.filter { $0.1.grad != nil }.map(\.0), [], "μ_fake's decoder gets no gradient from L_D")
        XCTAssertEqual(encoder.filter { $0.1.grad == nil }.map(\.0), [], "μ_fake's encoder and embedding get a gradient")
        XCTAssertTrue(nets.head.parameters.variables.allSatisfy { $0.grad != nil }, "the head gets a gradient")
        let value = r.logitsFake.scalars.map { Foundation.log(1 + Foundation.exp($0)) }.reduce(0, +) / 2
            + r.logitsReal.scalars.map { Foundation.log(1 + Foundation.exp(-$0)) }.reduce(0, +) / 2
        XCTAssertEqual(r.loss.value.scalar, value, accuracy: 1e-14)

        // The direction spans all of μ_fake (decoder components change nothing) and the head.
        let params = fake.variables + nets.head.parameters.variables
        assertDirectionalDerivative("L_D w.r.t. μ_fake's encoder and the head", params: params, gradients: gradients(params), seed: 14) {
            loss().loss.value.scalar
        }
        let headOnly = nets.head.parameters.variables
        assertDirectionalDerivative("L_D w.r.t. the head", params: headOnly, gradients: gradients(headOnly), seed: 15) {
            loss().loss.value.scalar
        }
    }

    func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        let scale = max(b.map(abs).max() ?? 0, 1e-300)
        return zip(a, b).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }
}
