// Double gradient checks of DMD2's four losses (Losses.swift): the checks themselves live in
// DMD2Checks (LossChecks.swift, shared with `dmd2 gradcheck --family loss`): the derivative in
// the space of the parameters each loss trains against Richardson-extrapolated central
// differences within their error bound (GradCheck.swift's header), the loss values from their
// definitions, and which networks may and may not get a gradient. Here: those checks, plus
// controls that the freezing they test is real and the objective's weighting of L_G.
import DMD2
import DMD2Checks
import DMD2Core
import DMD2Ops
import EDM
import Foundation
import DMD2TestSupport
import XCTest

final class LossGradientTests: CheckedTestCase {
    override func setUp() { Threads.count = 1 }

    func testDistributionMatchingGradient() throws { print(try LossChecks.distributionMatching()) }
    func testGeneratorGANGradient() throws { print(try LossChecks.generatorGAN()) }
    func testFakeCriticGradient() throws { print(try LossChecks.fakeCritic()) }
    func testDiscriminatorGradient() throws { print(try LossChecks.discriminator()) }

    /// Control: the generator's GAN logits through the trainable μ_fake and head (not frozen
    /// copies) would give them gradients — so "no gradient from L_G" tests the freezing.
    func testUnfrozenCriticWouldGetGradient() throws {
        let nets = LossChecks.networks(), draws = LossChecks.draws, labels = LossChecks.labels
        let xg = nets.generate(DMD2Networks<Double>.oneStepInput(latents: draws.latents), labels: labels)
        let unfrozen = discriminatorLogits(xg, labels: labels, sigma: draws.generatorGAN.sigmas(.dmd2), noise: draws.generatorGAN.noise,
                                           critic: nets.fake, head: nets.head)
        let leaked = DMD2Core.gradients(of: softplusLoss(-unfrozen), withRespectTo: nets.fake.parameters.variables + nets.head.parameters.variables)
        XCTAssertGreaterThan(leaked.map { $0.maxAbs() }.max()!, 0)
    }

    /// The objective's generator phase (GAN only) gives w_G times L_G's gradient, and nothing
    /// to μ_fake or the head.
    func testGeneratorPhaseWeightsGAN() throws {
        let nets = LossChecks.networks(), draws = LossChecks.draws, labels = LossChecks.labels
        let input = DMD2Networks<Double>.oneStepInput(latents: draws.latents)
        let r = generatorGANLoss(nets.generate(input, labels: labels), labels: labels, critic: nets.fake, head: nets.head, draw: draws.generatorGAN)
        r.loss.backward()
        let params = nets.generator.parameters.variables
        let grads = params.map { $0.grad ?? .zeros($0.shape) }
        nets.generator.parameters.zeroGrad()
        let objective = DMD2Objective(distributionMatching: false, gan: true, ganWeightGenerator: 3e-3)
        let phase = try objective.generatorGradients(networks: nets, xg: nets.generate(input, labels: labels), labels: labels,
                                                     draws: draws, regression: nil, step: 1)
        XCTAssertNil(phase.dm)
        XCTAssertEqual(phase.total, 3e-3 * r.loss.value.scalar, accuracy: 1e-15)
        XCTAssertTrue(nets.fake.parameters.variables.allSatisfy { $0.grad == nil }, "μ_fake gets no gradient from the generator phase")
        XCTAssertTrue(nets.head.parameters.variables.allSatisfy { $0.grad == nil }, "the head gets no gradient from the generator phase")
        let got = params.flatMap { ($0.grad ?? .zeros($0.shape)).scalars }, want = grads.flatMap { ($0 * 3e-3).scalars }
        let scale = want.map(abs).max() ?? 0
        XCTAssertLessThanOrEqual(zip(got, want).map { abs($0 - $1) }.max() ?? 0, 1e-12 * scale)
    }
}
