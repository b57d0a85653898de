// The few-step generator and backward simulation (docs/METHOD.md §3, Sources/DMD2/FewStep.swift):
// the schedule, the claim that training's step-j inputs come from the very code of inference
// (same noise → bitwise the same tensors, through the update rule too), the few-step generator
// loss's gradient against finite differences in Double, the few-step debug state, the one-step
// stream left untouched, classifier-free guidance on the real score, and a tiny 4-step run from
// the trainer to the sampler.
import DMD2
import DMD2Core
import DMD2Data
import DMD2Ops
import DMD2Train
import EDM
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest
import DMD2Checks

final class FewStepTests: CheckedTestCase {
    // MARK: The schedule

    func testScheduleIsDMD2sTimestepsOnTheGrid() {
        let four = GeneratorSchedule.uniform(steps: 4)
        XCTAssertEqual(four.indices, [999, 749, 499, 249])
        XCTAssertEqual(four.sigmas[0], DMD2Networks<Float>.sigmaMax, "K[999] must be exactly 80 so step 0 is the one-step input")
        for (σ, expected) in zip(four.sigmas, [80, 17.4981061, 2.5039744, 0.1680835]) {
            XCTAssertEqual(σ, expected, accuracy: 1e-6 * expected)
        }
        XCTAssertEqual(GeneratorSchedule.uniform(steps: 1), .oneStep)
        XCTAssertEqual(GeneratorSchedule.oneStep.indices, [999])
        XCTAssertEqual(GeneratorSchedule.uniform(steps: 2).indices, [999, 499])
        XCTAssertEqual(GeneratorSchedule.uniform(steps: 3).indices, [999, 666, 333])
        // Checkpoint metadata round trip; one-step checkpoints carry no schedule keys.
        XCTAssertEqual(GeneratorSchedule(metadata: four.metadata), four)
        XCTAssertEqual(GeneratorSchedule(metadata: ["sigma_max": "80.0"]), .oneStep)
        XCTAssertNil(GeneratorSchedule(metadata: ["generator_sigma_indices": "[249,499]"]), "increasing indices must be rejected")
        XCTAssertNil(GeneratorSchedule(metadata: ["generator_sigma_indices": "[999,x]"]))
        XCTAssertNil(GeneratorSchedule(metadata: ["generator_sigma_indices": "[999,499]", "generator_steps": "3"]))
    }

    func testConfigDecodesManifestsFromBeforeTheFewStepSettings() throws {
        var config = DistillConfig(network: DebugState.network, batchSize: 2, iterations: 3, generatorSteps: 4, backwardSimulation: false)
        XCTAssertEqual(config.objective.schedule, .uniform(steps: 4))
        XCTAssertFalse(config.objective.backwardSimulation)
        XCTAssertTrue(config.readsRealImages)
        let data = try JSONEncoder().encode(config)
        XCTAssertEqual(try JSONDecoder().decode(DistillConfig.self, from: data), config)
        // An older manifest: the two keys absent.
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertNotNil(object.removeValue(forKey: "generatorSteps"))
        XCTAssertNotNil(object.removeValue(forKey: "backwardSimulation"))
        let old = try JSONDecoder().decode(DistillConfig.self, from: JSONSerialization.data(withJSONObject: object))
        config.generatorSteps = 1
        config.backwardSimulation = true
        XCTAssertEqual(old, config)
        XCTAssertEqual(old.objective.schedule, .oneStep)
        XCTAssertFalse(DistillConfig(network: DebugState.network, batchSize: 2, iterations: 3, gan: false, generatorSteps: 1,
                                     backwardSimulation: false).readsRealImages, "one step has no backward simulation to switch off")
        XCTAssertThrowsError(try DistillConfig(network: DebugState.network, batchSize: 2, iterations: 3, generatorSteps: 0).validate())
    }

    // MARK: The draws

    func testOneStepStreamIsUnchangedAndFewStepDrawsAreAppended() throws {
        let shape = [2, 3, 16, 16]
        var a = RandomGenerator(seed: 5), b = RandomGenerator(seed: 5), c = RandomGenerator(seed: 5)
        let plain = IterationDraws<Float>.draw(shape: shape, classes: 4, rng: &a)
        let one = IterationDraws<Float>.draw(shape: shape, classes: 4, generatorSteps: 1, rng: &b)
        let four = IterationDraws<Float>.draw(shape: shape, classes: 4, generatorSteps: 4, rng: &c)
        XCTAssertNil(one.fewStep)
        XCTAssertEqual(a, b, "k = 1 must draw nothing more")
        for d in [one, four] {
            XCTAssertEqual(d.latents, plain.latents)
            XCTAssertEqual(d.labels, plain.labels)
            for (x, y) in [(d.dm, plain.dm), (d.generatorGAN, plain.generatorGAN), (d.fake, plain.fake),
                           (d.discriminatorFake, plain.discriminatorFake), (d.discriminatorReal, plain.discriminatorReal)] {
                XCTAssertEqual(x.t, y.t)
                XCTAssertEqual(x.noise, y.noise)
            }
        }
        // k = 4: j, then ε_1 … ε_3, after everything else.
        let f = try XCTUnwrap(four.fewStep)
        XCTAssertEqual(f.renoise.count, 3)
        XCTAssertTrue(f.renoise.allSatisfy { $0.shape == shape })
        var replay = a
        let j = replay.int(in: 0...3)
        XCTAssertEqual(j, f.step)
        let ε1: Tensor<Float> = replay.normal(shape)
        XCTAssertEqual(ε1, f.renoise[0])
    }

    func testStepIndexIsUniform() {
        // 8000 draws of j ~ U{0 … 3}: each count within 5σ of 2000 (σ = √(8000·¼·¾) ≈ 38.7).
        var rng = RandomGenerator(seed: 11)
        var counts = [0, 0, 0, 0]
        for _ in 0..<8000 { counts[FewStepDraw<Float>.draw(shape: [1, 1, 1, 1], steps: 4, rng: &rng)!.step] += 1 }
        for n in counts { XCTAssertLessThan(abs(n - 2000), 194, "\(counts)") }
    }

    // MARK: Training inputs come from inference's code

    /// Inference's input at each step (recorded by the denoise closure) and backward simulation's
    /// training input at every j are the same tensors, bitwise; so is G's output through the
    /// update rule (`DMD2Objective.iterate`) and the generator as loaded for sampling.
    func testTrainingInputsAtStepJAreInferenceInputs() throws {
        let inputs = DebugState.randomInputs(seed: 3, generatorSteps: 4)
        let schedule = inputs.schedule
        XCTAssertEqual(schedule.steps, 4)
        let c = inputs.config
        let f = try XCTUnwrap(inputs.draws.fewStep)
        let z = inputs.draws.latents, y = oneHot(inputs.draws.labels, classes: c.labelDim, as: Float.self)
        let generator = Denoiser(net: UNet(config: c, parameters: inputs.generator.copy(requiresGrad: false)))
        var inferenceInputs: [GeneratorInput<Float>] = [], inferenceOutputs: [Tensor<Float>] = []
        let sample = schedule.sample(latents: z, renoise: f.renoise) { input in
            inferenceInputs.append(input)
            let x̂ = generator(Variable(input.x), sigma: input.sigma, classLabels: y).value
            inferenceOutputs.append(x̂)
            return x̂
        }
        XCTAssertEqual(inferenceInputs.count, 4, "k steps cost k network evaluations")
        XCTAssertEqual(inferenceInputs.map { $0.sigma }, schedule.sigmas.map { [$0, $0] })
        fsAssertBitwiseEqual(inferenceInputs[0].x, DMD2Networks<Float>.oneStepInput(latents: z).x, "step 0 is the one-step input 80·z")
        fsAssertBitwiseEqual(sample, inferenceOutputs[3], "the sample is x̂_{k−1}")
        // The loaded generator samples through the same function.
        let loaded = DMD2Generator(net: generator.net, schedule: schedule)
        fsAssertBitwiseEqual(loaded.generate(latents: z, renoise: f.renoise, labels: inputs.draws.labels), sample, "DMD2Generator.generate")

        for j in 0..<4 {
            // The schedule's training input, as the trainer asks for it (outside NoGrad, with a
            // generator whose parameters require grad: the rollout must record nothing).
            let networks = fewStepNetworks(inputs, as: Float.self)
            let draw = FewStepDraw(step: j, renoise: f.renoise)
            let r = schedule.trainingInput(latents: z, draw: draw, backwardSimulation: true, realImages: nil) { input in
                networks.generate(input, labels: y).value
            }
            XCTAssertEqual(r.step, j)
            XCTAssertEqual(r.input.sigma, inferenceInputs[j].sigma)
            fsAssertBitwiseEqual(r.input.x, inferenceInputs[j].x, "training input at j = \(j)")
            XCTAssertEqual(r.outputs.count, j)
            for i in 0..<j { fsAssertBitwiseEqual(r.outputs[i], inferenceOutputs[i], "rollout x̂_\(i) at j = \(j)") }
            XCTAssertTrue(networks.generator.parameters.variables.allSatisfy { $0.grad == nil }, "the rollout must not reach G's gradients")

            // Through the update rule: G's phase at step j sees the inference input and, before
            // its update, produces inference's x̂_j.
            var draws = inputs.draws
            draws.fewStep = draw
            let optimizers = DMD2Optimizers(networks: networks, generator: inputs.settings.optimizerConfig, critic: inputs.settings.optimizerConfig,
                                            maxGradNorm: inputs.settings.maxGradNorm)
            var objective = DMD2Objective(schedule: schedule)
            objective.ganWeightGenerator = inputs.settings.ganWeightGenerator
            let outcome = try objective.iterate(networks: networks, optimizers: optimizers, draws: draws,
                                                real: RealBatch(images: inputs.realImages, labels: oneHot(inputs.realLabels, classes: c.labelDim)),
                                                regression: nil, updateGenerator: true, step: 1)
            fsAssertBitwiseEqual(outcome.rollout.input.x, inferenceInputs[j].x, "iterate's input at j = \(j)")
            fsAssertBitwiseEqual(outcome.images, inferenceOutputs[j], "iterate's x_g at j = \(j) (G with grad = G without)")
        }
    }

    /// Without backward simulation, G's input at step j is x_real + σ_j·ε_j (ε_0 = z) and G is
    /// given the real images' classes.
    func testWithoutBackwardSimulationInputsAreNoisedRealImages() throws {
        let inputs = DebugState.randomInputs(seed: 4, generatorSteps: 4, backwardSimulation: false)
        XCTAssertFalse(inputs.backwardSimulation)
        let c = inputs.config, schedule = inputs.schedule
        let f = try XCTUnwrap(inputs.draws.fewStep)
        let x = inputs.realImages, z = inputs.draws.latents
        for j in 0..<4 {
            let networks = fewStepNetworks(inputs, as: Float.self)
            var calls = 0
            let r = schedule.trainingInput(latents: z, draw: FewStepDraw(step: j, renoise: f.renoise), backwardSimulation: false,
                                           realImages: x) { _ in calls += 1; return x }
            XCTAssertEqual(calls, 0, "no rollout without backward simulation")
            let ε = j == 0 ? z : f.renoise[j - 1]
            fsAssertBitwiseEqual(r.input.x, x + ε * Float(schedule.sigmas[j]), "x_real + σ_j·ε_j at j = \(j)")
            XCTAssertEqual(r.input.sigma, [schedule.sigmas[j], schedule.sigmas[j]])

            var draws = inputs.draws
            draws.fewStep = FewStepDraw(step: j, renoise: f.renoise)
            let yReal = oneHot(inputs.realLabels, classes: c.labelDim, as: Float.self)
            let optimizers = DMD2Optimizers(networks: networks, generator: inputs.settings.optimizerConfig, critic: inputs.settings.optimizerConfig,
                                            maxGradNorm: inputs.settings.maxGradNorm)
            let expected = NoGrad.run { networks.generate(r.input, labels: yReal).value }
            let outcome = try DMD2Objective(schedule: schedule, backwardSimulation: false).iterate(
                networks: networks, optimizers: optimizers, draws: draws, real: RealBatch(images: x, labels: yReal), regression: nil,
                updateGenerator: true, step: 1)
            fsAssertBitwiseEqual(outcome.images, expected, "G(x_real + σ_j·ε_j; σ_j, y_real) at j = \(j)")
        }
    }

    // MARK: Gradient of the few-step generator loss (Double)

    /// ⟨∂L/∂θ_G, u⟩ from the generator phase against central differences of
    ///     L̃(θ) = ½·mean((G_θ(x_j; σ_j, y) − c)²) + w_G·L_G(G_θ(x_j; σ_j, y)),  c = sg(x_g − g)
    /// (L_DM as defined, its target held at θ's value) along a random direction u over all of
    /// G's parameters, at j = 0, 1 and 3 of a 4-step generator. The rollout input x_j is held
    /// fixed too: backward simulation runs without gradient, so G's gradient must not see it.
    func testFewStepGeneratorLossGradientMatchesFiniteDifferences() throws {
        let inputs = DebugState.randomInputs(seed: 6, generatorSteps: 4)
        let c = inputs.config, schedule = inputs.schedule
        let d = doubleDraws(inputs.draws)
        let f = try XCTUnwrap(d.fewStep)
        let y: Tensor<Double> = oneHot(d.labels, classes: c.labelDim)
        var objective = DMD2Objective(schedule: schedule)
        objective.ganWeightGenerator = 0.3                                   // large enough that L_G's path is checked too
        for j in [0, 1, 3] {
            let networks = fewStepNetworks(inputs, as: Double.self)
            let rollout = schedule.trainingInput(latents: d.latents, draw: FewStepDraw(step: j, renoise: f.renoise),
                                                 backwardSimulation: true, realImages: nil) { networks.generate($0, labels: y).value }
            let xg = networks.generate(rollout.input, labels: y)
            let phase = try objective.generatorGradients(networks: networks, xg: xg, labels: y, draws: d, regression: nil, step: 1)
            let g = try XCTUnwrap(phase.dm).grad, target = xg.value - g
            let θ = networks.generator.parameters.variables
            let grads = θ.map { $0.grad ?? .zeros($0.shape) }
            XCTAssertGreaterThan(fsNorm(grads), 0)

            func loss() -> Double {
                NoGrad.run {
                    let x = networks.generate(rollout.input, labels: y)
                    let dm = mseLoss(x, Variable(target)) * 0.5
                    let gan = generatorGANLoss(x, labels: y, critic: networks.fake, head: networks.head, draw: d.generatorGAN)
                    return (dm + gan.loss * objective.ganWeightGenerator).value.scalar
                }
            }
            XCTAssertEqual(loss(), Double(phase.total), accuracy: 1e-12 * max(1, abs(Double(phase.total))), "L̃(θ) is the generator loss")
            // ⟨∇L̃, u⟩ against the Richardson difference of L̃ along u within its error bound
            // (DMD2Checks' GradCheck.swift), θ restored afterwards.
            let stats = try LossChecks.directional("few-step generator loss at j = \(j)", params: θ, seed: 100 + UInt64(j),
                                                   magnitude: abs(loss()), loss)
            print("j = \(j): \(stats)")
        }
    }

    // MARK: Debug states

    /// The committed 4-step debug state replays within its tolerances, holds the whole rollout
    /// (j = 3: x̂_0 … x̂_2), and its inputs and metadata are what `randomInputs(seed: 0,
    /// generatorSteps: 4)` draws today, bitwise. (Computed tensors are compared by the replay:
    /// BLIS picks different kernels on different CPUs, so they match to the tolerances, not bits.)
    func testFewStepDebugStateReplays() throws {
        let file = try SafeTensorsFile(contentsOf: resource("dmd2_debug_state_4step.safetensors"))
        XCTAssertEqual(file.metadata["generator_steps"], "4")
        XCTAssertEqual(file.metadata["generator_sigma_indices"], "[999,749,499,249]")
        XCTAssertEqual(file.metadata["backward_simulation"], "true")
        XCTAssertEqual(try file.tensor("input.fewstep.step").int64s(), [3])
        for key in ["fewstep.x_hat.0", "fewstep.x_hat.1", "fewstep.x_hat.2", "fewstep.input", "fewstep.input_sigma",
                    "input.fewstep.noise.1", "input.fewstep.noise.2", "input.fewstep.noise.3"] {
            XCTAssertNotNil(file.tensors[key], key)
        }
        XCTAssertNil(file.tensors["fewstep.x_hat.3"])
        let comparisons = try DebugState.replay(file)
        XCTAssertEqual(comparisons.count, file.tensors.count)
        for c in comparisons where !c.passed { XCTFail("\(c.key): \(c.error) > \(c.tolerance)") }
        // G's training input is inference's input of step 3 (the rollout through x̂_0 … x̂_2).
        let inputs = try DebugState.inputs(from: file)
        let generator = Denoiser(net: UNet(config: inputs.config, parameters: inputs.generator.copy(requiresGrad: false)))
        let y = oneHot(inputs.draws.labels, classes: inputs.config.labelDim, as: Float.self)
        var stepInputs: [Tensor<Float>] = []
        _ = inputs.schedule.sample(latents: inputs.draws.latents, renoise: inputs.draws.fewStep!.renoise) { input in
            stepInputs.append(input.x)
            return generator(Variable(input.x), sigma: input.sigma, classLabels: y).value
        }
        XCTAssertLessThanOrEqual(try maxRelativeDifference(stepInputs[3], Tensor<Float>(file.tensor("fewstep.input"))), 1e-4)

        try assertInputsAsDrawnToday(file, generatorSteps: 4)
    }

    /// The committed one-step debug state: today's `randomInputs(seed: 0)` draws its inputs and
    /// weights bitwise and records the same metadata (the few-step code added nothing to the
    /// one-step file), and it replays within tolerance.
    func testOneStepDebugStateInputsAreDrawnAsCommitted() throws {
        let file = try SafeTensorsFile(contentsOf: resource("dmd2_debug_state.safetensors"))
        XCTAssertNil(file.metadata["generator_steps"])
        XCTAssertFalse(file.tensors.keys.contains { $0.contains("fewstep") })
        try assertInputsAsDrawnToday(file, generatorSteps: 1)
        for c in try DebugState.replay(file) where !c.passed { XCTFail("\(c.key): \(c.error) > \(c.tolerance)") }
    }

    /// A fresh recording (with the file's thread count) has the file's keys and metadata, and
    /// bitwise its inputs and weights.
    private func assertInputsAsDrawnToday(_ file: SafeTensorsFile, generatorSteps: Int, line: UInt = #line) throws {
        let threads = try XCTUnwrap(file.metadata["threads"].flatMap(Int.init))
        let recorded = try Threads.with(threads) { try DebugState.record(DebugState.randomInputs(seed: 0, generatorSteps: generatorSteps)) }
        XCTAssertEqual(recorded.metadata, file.metadata, line: line)
        XCTAssertEqual(Set(recorded.tensors.keys), Set(file.tensors.keys), line: line)
        var compared = 0
        for key in file.tensors.keys.sorted() where DebugState.tolerance(forKey: key) == 0 {
            compared += 1
            if recorded.tensors[key] != file.tensors[key] { XCTFail("\(key) is no longer drawn the same way", line: line) }
        }
        XCTAssertGreaterThan(compared, 100, line: line)
    }

    // MARK: Classifier-free guidance on the real score

    /// With guidance w, the DM loss's μ_real is D_∅ + w·(D_y − D_∅), where D_∅ is the teacher
    /// without a label — the zero one-hot row that label dropout trains.
    func testRealGuidanceIsClassifierFreeGuidance() throws {
        let inputs = DebugState.randomInputs(seed: 8)
        let networks = fewStepNetworks(inputs, as: Double.self)
        let d = doubleDraws(inputs.draws)
        let y: Tensor<Double> = oneHot(d.labels, classes: inputs.config.labelDim)
        let xg = NoGrad.run { networks.generate(DMD2Networks<Double>.oneStepInput(latents: d.latents), labels: y) }
        let σ = d.dm.sigmas(.dmd2)
        let noisy = xg.value + d.dm.noise * perImageDouble(σ).broadcast(to: xg.shape)
        let (conditional, unconditional, zeroRow) = NoGrad.run {
            (networks.real(Variable(noisy), sigma: σ, classLabels: y).value,
             networks.real(Variable(noisy), sigma: σ, classLabels: nil).value,
             networks.real(Variable(noisy), sigma: σ, classLabels: Tensor<Double>.zeros(y.shape)).value)
        }
        XCTAssertEqual(unconditional, zeroRow, "D_∅ is the network given an all-zero label (what label dropout trains)")
        XCTAssertGreaterThan((conditional - unconditional).maxAbs(), 1e-3, "the label must matter for this check to mean anything")
        for w in [0.0, 1.0, 2.5] {
            let r = distributionMatchingLoss(Variable(xg.value), labels: y, real: networks.real, fake: networks.fake, draw: d.dm, realGuidance: w)
            let expected = unconditional + (conditional - unconditional) * w
            XCTAssertLessThanOrEqual((r.predReal - expected).maxAbs(), 1e-12 * expected.maxAbs(), "w = \(w)")
        }
        let plain = distributionMatchingLoss(Variable(xg.value), labels: y, real: networks.real, fake: networks.fake, draw: d.dm)
        XCTAssertEqual(plain.predReal, conditional)
        // The run's setting reaches the objective.
        XCTAssertEqual(DistillConfig(network: DebugState.network, batchSize: 2, iterations: 1, realGuidance: 2.5).objective.realGuidance, 2.5)
    }

    // MARK: From the trainer to the sampler

    /// A 4-step run of a few iterations: the log names the step j, the checkpoint records the
    /// schedule, and `DMD2Generator` loads it and samples in 4 steps (`steps:` overrides).
    /// Without backward simulation and without the GAN the run still reads real images.
    func testFourStepRunRecordsItsScheduleAndSamplesInFourSteps() throws {
        let run = temporaryFolder(self, "fewstep")
        let config = DistillConfig(network: DebugState.network, batchSize: 2, iterations: 3, learningRate: 1e-3, tturRatio: 1,
                                   seed: 1, checkpointInterval: 0, generatorSteps: 4)
        let trainer = try DistillTrainer<Float>(config: config, teacher: fewStepTeacher(), dataset: fewStepShapes(), runDirectory: run)
        var records: [DistillRecord] = []
        try trainer.run(onIteration: { records.append($0) })
        XCTAssertEqual(records.count, 3)
        XCTAssertTrue(records.allSatisfy { ($0.generatorStepIndex.map { (0..<4).contains($0) }) ?? false })
        let log = try String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8)
        XCTAssertTrue(log.contains("\"generator_step_index\""))

        let g = try DMD2Generator(contentsOf: run)
        XCTAssertEqual(g.schedule, .uniform(steps: 4))
        XCTAssertEqual(g.nfe, 4)
        var rng = RandomGenerator(seed: 2)
        let images = g.generate(labels: [0, 3], rng: &rng)
        XCTAssertEqual(images.shape, [2, 3, 16, 16])
        XCTAssertTrue(images.scalars.allSatisfy(\.isFinite))
        XCTAssertEqual(try DMD2Generator(contentsOf: run, steps: 1).schedule, .oneStep)

        // The trained G of the checkpoint samples exactly as the trainer's G does.
        var rngA = RandomGenerator(seed: 9), rngB = RandomGenerator(seed: 9)
        let direct = DMD2Generator(net: UNet(config: trainer.networks.config, parameters: trainer.networks.generator.parameters.copy(requiresGrad: false)),
                                   schedule: .uniform(steps: 4))
        fsAssertBitwiseEqual(g.generate(labels: [1, 2], rng: &rngA), direct.generate(labels: [1, 2], rng: &rngB), "checkpoint vs trainer G")

        let noBackSim = temporaryFolder(self, "fewstep-nobs")
        let ablation = DistillConfig(network: DebugState.network, batchSize: 2, iterations: 2, gan: false, seed: 1, checkpointInterval: 0,
                                     generatorSteps: 4, backwardSimulation: false)
        XCTAssertThrowsError(try DistillTrainer<Float>(config: ablation, teacher: fewStepTeacher(), dataset: nil, runDirectory: noBackSim))
        let t2 = try DistillTrainer<Float>(config: ablation, teacher: fewStepTeacher(), dataset: fewStepShapes(), runDirectory: noBackSim)
        XCTAssertNotNil(t2.loader)
        try t2.run()
        XCTAssertEqual(t2.step, 2)
    }

    /// A 4-step run resumed from its checkpoint continues bitwise as the uninterrupted run (the
    /// few-step draws come from the trainer's generator, which the checkpoint stores).
    func testFourStepResumeIsBitwiseIdentical() throws {
        let config = DistillConfig(network: DebugState.network, batchSize: 2, iterations: 4, learningRate: 1e-3, tturRatio: 2,
                                   seed: 3, checkpointInterval: 2, keepCheckpoints: 0, generatorSteps: 4)
        let straight = try DistillTrainer<Float>(config: config, teacher: fewStepTeacher(), dataset: fewStepShapes(),
                                                 runDirectory: temporaryFolder(self, "fewstep-a"))
        try straight.run()
        var short = config
        short.iterations = 2
        let runB = temporaryFolder(self, "fewstep-b")
        try DistillTrainer<Float>(config: short, teacher: fewStepTeacher(), dataset: fewStepShapes(), runDirectory: runB).run()
        let resumed = try DistillTrainer<Float>(resuming: runB, dataset: fewStepShapes(), iterations: 4)
        XCTAssertEqual(resumed.config.generatorSteps, 4)
        try resumed.run()
        for (a, b) in zip(straight.networks.generator.parameters.variables, resumed.networks.generator.parameters.variables) {
            fsAssertBitwiseEqual(a.value, b.value, "G after resume")
        }
        for (a, b) in zip(straight.networks.fake.parameters.variables, resumed.networks.fake.parameters.variables) {
            fsAssertBitwiseEqual(a.value, b.value, "μ_fake after resume")
        }
        XCTAssertEqual(straight.rng, resumed.rng)
    }

    // MARK: Helpers

    private func resource(_ name: String) throws -> URL {
        guard let folder = Bundle.module.url(forResource: "Resources", withExtension: nil) else {
            throw DistillError.badCheckpoint("Tests/DMD2Tests/Resources is missing from the test bundle")
        }
        return folder.appendingPathComponent(name)
    }
}

// File-private helpers (other files of this target have their own).

/// The debug state's networks in T: G, μ_fake and the head trainable, μ_real frozen.
private func fewStepNetworks<T: TensorScalar>(_ inputs: DebugState.Inputs, as: T.Type) -> DMD2Networks<T> {
    let c = inputs.config
    return DMD2Networks(generator: UNet(config: c, parameters: inputs.generator.converted(to: T.self)),
                        real: UNet(config: c, parameters: inputs.real.converted(to: T.self, requiresGrad: false)),
                        fake: UNet(config: c, parameters: inputs.fake.converted(to: T.self)),
                        head: GANHead(channels: c.bottleneckChannels, parameters: inputs.head.converted(to: T.self)))
}

/// Float draws in Double, the few-step draw included.
private func doubleDraws(_ d: IterationDraws<Float>) -> IterationDraws<Double> {
    func c(_ n: NoiseDraw<Float>) -> NoiseDraw<Double> { NoiseDraw(t: n.t, noise: n.noise.converted(to: Double.self)) }
    return IterationDraws(latents: d.latents.converted(to: Double.self), labels: d.labels, dm: c(d.dm), generatorGAN: c(d.generatorGAN),
                          fake: c(d.fake), discriminatorFake: c(d.discriminatorFake), discriminatorReal: c(d.discriminatorReal),
                          fewStep: d.fewStep.map { FewStepDraw(step: $0.step, renoise: $0.renoise.map { $0.converted(to: Double.self) }) })
}

/// σ per image as [N, 1, 1, 1].
private func perImageDouble(_ σ: [Double]) -> Tensor<Double> { Tensor(shape: [σ.count, 1, 1, 1], scalars: σ) }

/// A teacher with random non-zero weights on the debug network.
private func fewStepTeacher() -> UNet<Float> {
    var rng = RandomGenerator(seed: 21)
    return UNet(config: DebugState.network, parameters: DebugState.randomWeights(DebugState.network, rng: &rng))
}

/// 16×16 RGB shapes in 4 classes.
private func fewStepShapes() -> ShapesDataset { ShapesDataset(count: 8, classCount: 4, resolution: 16, channels: 3, seed: 7) }

private func fewStepBitwiseEqual(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Bool {
    a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// Fails unless `a` and `b` are bitwise equal.
private func fsAssertBitwiseEqual(_ a: Tensor<Float>, _ b: Tensor<Float>, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
    XCTAssertTrue(fewStepBitwiseEqual(a, b), "\(what): \(zip(a.scalars, b.scalars).filter { $0.bitPattern != $1.bitPattern }.count) elements differ",
                  file: file, line: line)
}

/// max |a − b| / max |b|.
private func maxRelativeDifference(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Double {
    precondition(a.shape == b.shape, "maxRelativeDifference: \(a.shape) vs \(b.shape)")
    return Double((a - b).maxAbs()) / max(Double(b.maxAbs()), 1e-30)
}

private func fsDot<T: TensorScalar>(_ a: [Tensor<T>], _ b: [Tensor<T>]) -> Double {
    zip(a, b).map { Double($0.converted(to: Double.self).dot($1.converted(to: Double.self))) }.reduce(0, +)
}

private func fsNorm<T: TensorScalar>(_ a: [Tensor<T>]) -> Double { fsDot(a, a).squareRoot() }

extension DebugState.Settings {
    /// AdamW's settings of the debug step (the tests' optimisers).
    fileprivate var optimizerConfig: AdamWConfig {
        AdamWConfig(learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, warmUpSteps: warmUpSteps)
    }
}
