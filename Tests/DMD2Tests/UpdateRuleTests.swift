// DMD2's update rule (UpdateRule.swift): the two time-scale schedule, gradient clipping per
// optimiser, the loss switches, and a cheap check that the critic descends.
import DMD2
import DMD2Core
import DMD2Ops
import DMD2Train
import EDM
import Foundation
import DMD2TestSupport
import XCTest

final class UpdateRuleTests: CheckedTestCase {
    override func setUp() { Threads.count = 1 }

    let inputs = DebugState.randomInputs(seed: 5)

    func optimizers(_ nets: DMD2Networks<Float>, maxGradNorm: Double, learningRate: Double = 1e-3) -> DMD2Optimizers<Float> {
        let adam = AdamWConfig(learningRate: learningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, warmUpSteps: 0)
        return DMD2Optimizers(networks: nets, generator: adam, critic: adam, maxGradNorm: maxGradNorm)
    }

    /// One generator iteration of the debug inputs; returns the outcome and the gradients
    /// (G's, then the critic's) as they were before clipping.
    func iterate(_ nets: DMD2Networks<Float>, _ opt: DMD2Optimizers<Float>, objective: DMD2Objective = DMD2Objective(),
                 real: Bool = true) throws -> (IterationOutcome<Float>, generator: [Tensor<Float>], critic: [Tensor<Float>]) {
        var g: [Tensor<Float>] = [], c: [Tensor<Float>] = []
        let outcome = try objective.iterate(networks: nets, optimizers: opt, draws: inputs.draws, real: real ? realBatch(inputs) : nil,
                                            regression: nil, updateGenerator: true, step: 1) { _ in
            g = nets.generatorParameters.map { $0.variable.grad ?? .zeros($0.variable.shape) }
            c = nets.criticParameters.map { $0.variable.grad ?? .zeros($0.variable.shape) }
        }
        return (outcome, g, c)
    }

    // MARK: TTUR

    /// Ratio 5: G's parameters change at iterations 0, 5 and 10 only; μ_fake and the head at
    /// every iteration; the log marks the generator iterations and leaves their losses out
    /// elsewhere.
    func testTwoTimeScaleSchedule() throws {
        let config = DistillConfig(network: DebugState.network, batchSize: 2, iterations: 11, learningRate: 1e-3, tturRatio: 5,
                                   seed: 1, checkpointInterval: 0)
        XCTAssertEqual((0..<11).filter(config.updatesGenerator(atIteration:)), [0, 5, 10])
        let trainer = try DistillTrainer<Float>(config: config, teacher: randomTeacher(seed: 2), dataset: shapes(),
                                                runDirectory: temporaryFolder(self, "ttur"))
        var generatorChanged: [Int] = []
        for i in 0..<11 {
            let g = snapshot(trainer.networks.generator.parameters.variables)
            let f = snapshot(trainer.networks.fake.parameters.variables), h = snapshot(trainer.networks.head.parameters.variables)
            let real = snapshot(trainer.networks.real.parameters.variables)
            let record = try trainer.iterate()
            if changed(g, snapshot(trainer.networks.generator.parameters.variables)) { generatorChanged.append(i) }
            XCTAssertTrue(changed(f, snapshot(trainer.networks.fake.parameters.variables)), "μ_fake at iteration \(i)")
            XCTAssertTrue(changed(h, snapshot(trainer.networks.head.parameters.variables)), "the head at iteration \(i)")
            XCTAssertFalse(changed(real, snapshot(trainer.networks.real.parameters.variables)), "μ_real is frozen")
            XCTAssertEqual(record.step, i + 1)
            XCTAssertEqual(record.generatorStep, i % 5 == 0)
            XCTAssertEqual(record.lossDM != nil, i % 5 == 0, "L_DM at iteration \(i)")
            XCTAssertEqual(record.lossG != nil, i % 5 == 0, "L_G at iteration \(i)")
            XCTAssertEqual(record.gradNormGenerator != nil, i % 5 == 0)
            XCTAssertNotNil(record.lossD)
        }
        XCTAssertEqual(generatorChanged, [0, 5, 10])
        XCTAssertEqual(trainer.optimizers.generator.stepCount, 3)
        XCTAssertEqual(trainer.optimizers.critic.stepCount, 11)
    }

    // MARK: Clipping

    /// Each optimiser clips its own gradients to maxGradNorm (not one global norm): with the
    /// limit between the two norms only the larger is clipped; below both, each is clipped to
    /// the limit. After a first AdamW step exp_avg = (1 − β1)·(clipped gradient), which shows
    /// exactly what the optimiser received.
    func testGradientsAreClippedPerOptimiser() throws {
        // Reference norms with no clipping.
        let nets0 = networks(inputs, as: Float.self)
        let (outcome0, g0, c0) = try iterate(nets0, optimizers(nets0, maxGradNorm: 1e30))
        let nG = norm(g0), nC = norm(c0)
        XCTAssertEqual(outcome0.generatorGradNorm!, nG, accuracy: 1e-12 * nG)
        XCTAssertEqual(outcome0.criticGradNorm, nC, accuracy: 1e-12 * nC)
        XCTAssertGreaterThan(abs(nG - nC), 0.1 * min(nG, nC), "the test needs two different norms")
        print(String(format: "gradient norms before clipping: G %.4f, critic %.4f", nG, nC))

        for limit in [(nG * nC).squareRoot(), 0.5 * min(nG, nC)] {
            let nets = networks(inputs, as: Float.self)
            let opt = optimizers(nets, maxGradNorm: limit)
            let (outcome, g, c) = try iterate(nets, opt)
            XCTAssertEqual(outcome.generatorGradNorm, outcome0.generatorGradNorm, "norms are reported before clipping")
            XCTAssertEqual(outcome.criticGradNorm, outcome0.criticGradNorm)
            for (which, grads, n, adam) in [("G", g, nG, opt.generator), ("critic", c, nC, opt.critic)] {
                let coef = n > limit ? limit / (n + 1e-6) : 1
                let received = adam.expAvg.map { $0 * Float(1 / (1 - 0.9)) }
                XCTAssertEqual(norm(received), n * coef, accuracy: 1e-5 * n * coef, "\(which)'s gradient norm after clipping at \(limit)")
                // Element by element: the gradient scaled by the one coefficient (Float rounding).
                let expected = grads.map { $0 * Float(coef) }
                let scale = expected.map { Double($0.maxAbs()) }.max()!
                let worst = zip(received, expected).map { Double(($0 - $1).maxAbs()) }.max()!
                XCTAssertLessThan(worst, 1e-6 * scale, "\(which): clipped by a single coefficient")
            }
        }
    }

    // MARK: Switches

    /// GAN off: no real images, no head gradient (the head stays as it was), no L_G or L_D;
    /// the critic loss is L_fake alone and G's image gradient is L_DM's.
    func testGANOffNeedsNoRealImagesOrHead() throws {
        let nets = networks(inputs, as: Float.self)
        let head = snapshot(nets.head.parameters.variables), fake = snapshot(nets.fake.parameters.variables)
        let (outcome, _, c) = try iterate(nets, optimizers(nets, maxGradNorm: 10), objective: DMD2Objective(gan: false), real: false)
        XCTAssertNil(outcome.critic.discriminator)
        XCTAssertNil(outcome.generator?.gan)
        XCTAssertEqual(outcome.critic.total, outcome.critic.fake.loss.value.scalar)
        XCTAssertEqual(outcome.generator?.total, outcome.generator?.dm?.loss.value.scalar)
        let headGradients = c.suffix(nets.head.parameters.count)
        XCTAssertTrue(headGradients.allSatisfy { $0.maxAbs() == 0 }, "no head gradient without the GAN")
        XCTAssertEqual(snapshot(nets.head.parameters.variables), head, "the head is not updated")
        XCTAssertTrue(changed(fake, snapshot(nets.fake.parameters.variables)))
        let dm = try XCTUnwrap(outcome.generator?.dm)
        let n = Float(dm.grad.count)
        XCTAssertLessThan(Double((outcome.generator!.imageGradient * n - dm.grad).maxAbs()), 1e-6 * Double(dm.grad.maxAbs()))

        // The trainer runs without a dataset, and its log has no GAN values.
        let config = DistillConfig(network: DebugState.network, batchSize: 2, iterations: 2, gan: false, seed: 3, checkpointInterval: 0)
        let run = temporaryFolder(self, "no-gan")
        let trainer = try DistillTrainer<Float>(config: config, teacher: randomTeacher(seed: 4), dataset: nil, runDirectory: run)
        XCTAssertNil(trainer.loader)
        var records: [DistillRecord] = []
        try trainer.run(onIteration: { records.append($0) })
        XCTAssertEqual(records.count, 2)
        XCTAssertTrue(records.allSatisfy { $0.lossD == nil && $0.lossG == nil && $0.logitFake == nil && $0.logitReal == nil })
        XCTAssertNotNil(records[0].lossDM)
        let resumed = try DistillTrainer<Float>(resuming: run, dataset: nil)
        XCTAssertEqual(resumed.step, 2)
    }

    /// DM off: G's image gradient is w_G·∂L_G/∂x_g alone; with both on it is the sum.
    func testDistributionMatchingSwitch() throws {
        let objectiveGAN = DMD2Objective(distributionMatching: false, gan: true)
        let nets = networks(inputs, as: Float.self)
        let (outcome, _, _) = try iterate(nets, optimizers(nets, maxGradNorm: 10), objective: objectiveGAN)
        XCTAssertNil(outcome.generator?.dm)
        let gan = try XCTUnwrap(outcome.generator?.gan)
        XCTAssertEqual(outcome.generator!.total, gan.loss.value.scalar * Float(3e-3))

        // ∂(w_G·L_G)/∂x_g and ∂L_DM/∂x_g on the same x_g, from the loss functions directly.
        let fresh = networks(inputs, as: Float.self)
        let labels: Tensor<Float> = oneHot(inputs.draws.labels, classes: 4)
        let x = NoGrad.run { fresh.generate(DMD2Networks<Float>.oneStepInput(latents: inputs.draws.latents), labels: labels) }.value
        let leafG = Variable(x, requiresGrad: true)
        (generatorGANLoss(leafG, labels: labels, critic: fresh.fake, head: fresh.head, draw: inputs.draws.generatorGAN).loss * Float(3e-3)).backward()
        let leafDM = Variable(x, requiresGrad: true)
        distributionMatchingLoss(leafDM, labels: labels, real: fresh.real, fake: fresh.fake, draw: inputs.draws.dm).loss.backward()
        XCTAssertEqual(outcome.images, x)
        XCTAssertEqual(outcome.generator!.imageGradient, leafG.grad!)

        let both = networks(inputs, as: Float.self)
        let (outcomeBoth, _, _) = try iterate(both, optimizers(both, maxGradNorm: 10))
        let sum = leafDM.grad! + leafG.grad!
        XCTAssertLessThan(Double((outcomeBoth.generator!.imageGradient - sum).maxAbs()), 1e-6 * Double(sum.maxAbs()))
        XCTAssertGreaterThan(Double(leafG.grad!.maxAbs()), 0)
        XCTAssertGreaterThan(Double(leafDM.grad!.maxAbs()), 0)
    }

    // MARK: It learns

    /// A cheap sanity check that the critic descends: on one fixed batch with fixed draws, 15
    /// critic steps at lr 1e-3 lower L_fake + w_D·L_D at every step and by over a quarter in
    /// all (measured: 0.796 → 0.509; AdamW moves every weight by ~lr per step).
    func testCriticLossFallsOnAFixedBatch() throws {
        let nets = networks(inputs, as: Float.self)
        let opt = optimizers(nets, maxGradNorm: 10, learningRate: 1e-3)
        let objective = DMD2Objective()
        let labels: Tensor<Float> = oneHot(inputs.draws.labels, classes: 4)
        let x = NoGrad.run { nets.generate(DMD2Networks<Float>.oneStepInput(latents: inputs.draws.latents), labels: labels) }.value
        var losses: [Float] = []
        for step in 1...16 {
            opt.critic.zeroGrad()
            let phase = try objective.criticGradients(networks: nets, images: x, labels: labels, draws: inputs.draws, real: realBatch(inputs), step: step)
            losses.append(phase.total)
            _ = opt.apply(updateGenerator: false)
        }
        print("critic loss on a fixed batch: \(losses.map { String(format: "%.4g", $0) }.joined(separator: " "))")
        XCTAssertTrue(zip(losses, losses.dropFirst()).allSatisfy { $1 < $0 }, "the critic's loss falls at every step on a fixed batch")
        XCTAssertLessThan(losses.last!, 0.75 * losses.first!, "the critic's loss should fall on a fixed batch")
    }
}
