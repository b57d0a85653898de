// The DMD2 debug state: one generator step and one critic step on a tiny network, with every
// input, intermediate and result in one safetensors file — the contract another
// implementation (a GPU backend, reference/dmd2_step.py in PyTorch) replays and must reproduce,
// like llm.c's debug-state file. Key names and tolerances: docs/DEBUG-STATE.md.
//
// Recording (`DebugState.record`): random weights for μ_real, G and μ_fake (three independent
// draws, non-zero everywhere, so every layer and both predictions matter), a fresh GAN head,
// one iteration's draws (IterationDraws) and a batch of real images; then one iteration of
// `DMD2Objective.iterate` with G updated. Gradients are recorded before clipping.
// Replaying (`DebugState.replay`): the same iteration from the file's inputs; every intermediate,
// loss, norm and gradient is compared with the file's. The optimiser steps are replayed from the
// file's own gradients (set into `.grad` just before clipping), so the update rule is compared
// tightly and independently of the gradients' rounding: AdamW's first step is ≈ lr·sign(g),
// which rounding could flip for gradients near zero.
//
// Few-step variant (`randomInputs(…, generatorSteps: k)` with k > 1, docs/METHOD.md §3): the draws
// add the step j and the re-noising ε_1 … ε_{k−1} (keys `input.fewstep.…`); j is set to k − 1
// so the whole rollout is recorded; the file adds G's rollout outputs `fewstep.x_hat.<i>`
// (i < j), its training input `fewstep.input` at σ_j (`fewstep.input_sigma`) and metadata
// `generator_steps`, `generator_sigma_indices`, `generator_sigmas`, `backward_simulation`.
// The one-step file has none of these, and is byte for byte what it was before they existed.
import DMD2Core
import DMD2Ops
import DMD2Train
import EDM
import Foundation
import SafeTensors

public enum DebugState {
    public static let format = "swift-dmd2.dmd2-debug-state"
    public static let formatVersion = "1"

    /// small16's structure at width 8: 16×16 RGB, 4 classes, 8 × [1, 2] channels (bottleneck
    /// 16 × 8×8), embedding 16, one block per level, attention at 8×8 (one head of 16).
    public static let network = UNetConfig(
        resolution: 16, inChannels: 3, outChannels: 3, labelDim: 4, modelChannels: 8,
        channelMult: [1, 2], channelMultEmb: 2, numBlocks: 1, attnResolutions: [8],
        dropout: 0, labelDropout: 0)

    /// The step's hyper-parameters. The learning rate is larger than the recipe's 2e-6 so the
    /// update is visible above Float rounding; the warm-up makes the first step's lr = lr/W; the
    /// clipping norm 2 lies between the two optimisers' gradient norms of the default inputs
    /// (G ≈ 1.46, critic ≈ 3.42), so one update is clipped and the other is not.
    public struct Settings: Codable, Equatable, Sendable {
        public var batch = 2
        public var learningRate = 1e-2
        public var warmUpSteps = 10
        public var weightDecay = 0.01
        public var beta1 = 0.9
        public var beta2 = 0.999
        public var eps = 1e-8
        public var maxGradNorm = 2.0
        public var ganWeightGenerator = 3e-3
        public var ganWeightCritic = 1e-2
        public var dmMinStep = 20
        public var dmMaxStep = 980

        public init() {}

        var optimizer: AdamWConfig {
            AdamWConfig(learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, warmUpSteps: warmUpSteps)
        }
        var objective: DMD2Objective { DMD2Objective(ganWeightGenerator: ganWeightGenerator, ganWeightCritic: ganWeightCritic) }
    }

    /// Everything the step starts from.
    public struct Inputs {
        public var config: UNetConfig
        public var settings: Settings
        public var real: ParameterStore<Float>
        public var generator: ParameterStore<Float>
        public var fake: ParameterStore<Float>
        public var head: ParameterStore<Float>
        public var draws: IterationDraws<Float>
        public var realImages: Tensor<Float>
        public var realLabels: [Int]
        /// The generator's steps (one step: the original debug state).
        public var schedule: GeneratorSchedule = .oneStep
        /// A few-step generator's training input: its rollout (true) or noised real images.
        public var backwardSimulation = true
    }

    /// How one tensor of a replay compares with the file.
    public struct Comparison: Sendable {
        public var key: String
        /// max |replayed − recorded| / max |recorded| (0 for equal tensors).
        public var error: Double
        public var tolerance: Double
        public var passed: Bool { error <= tolerance }
    }

    /// The tolerance for a key: inputs are copied (exact); updated weights come from the file's
    /// own gradients (1e-6 of the largest weight); everything computed, 1e-4 (Float).
    public static func tolerance(forKey key: String) -> Double {
        // The weights are `<network>.model.…` and `head.cls_pred_branch.…`; a bare "fake." would
        // also catch the computed fake.x_t and fake.pred.
        if key.hasPrefix("input.") || ["real.model.", "generator.model.", "fake.model.", "head."].contains(where: key.hasPrefix) { return 0 }
        if key.hasPrefix("updated.") || key.hasPrefix("lr.") { return 1e-6 }
        return 1e-4
    }

    // MARK: Inputs

    /// Random inputs from `seed`: μ_real, G and μ_fake from three independent random draws (see
    /// `randomWeights`), a fresh head, one iteration's draws, real images U[−1, 1) and labels.
    /// `generatorSteps` k > 1 gives the few-step variant (the draws add j and ε_1 … ε_{k−1}; j
    /// is then set to k − 1 so the step covers the whole rollout); k = 1 draws exactly the
    /// one-step inputs.
    public static func randomInputs(seed: UInt64 = 0, settings: Settings = Settings(), config: UNetConfig = network,
                                    generatorSteps: Int = 1, backwardSimulation: Bool = true) -> Inputs {
        var rng = RandomGenerator(seed: seed)
        let real = randomWeights(config, rng: &rng), generator = randomWeights(config, rng: &rng), fake = randomWeights(config, rng: &rng)
        let head = GANHead<Float>(channels: config.bottleneckChannels, rng: &rng).parameters
        let shape = [settings.batch, config.inChannels, config.resolution, config.resolution]
        var draws = IterationDraws<Float>.draw(shape: shape, classes: config.labelDim, dmSteps: settings.dmMinStep...settings.dmMaxStep,
                                               generatorSteps: generatorSteps, rng: &rng)
        if generatorSteps > 1 { draws.fewStep!.step = generatorSteps - 1 }
        let images: Tensor<Float> = rng.uniform(shape, low: -1, high: 1)
        let labels = (0..<settings.batch).map { _ in config.labelDim > 0 ? rng.int(in: 0...(config.labelDim - 1)) : -1 }
        return Inputs(config: config, settings: settings, real: real, generator: generator, fake: fake, head: head,
                      draws: draws, realImages: images, realLabels: labels, schedule: .uniform(steps: generatorSteps),
                      backwardSimulation: backwardSimulation)
    }

    /// Random parameters that leave no layer at zero (`UNetConfig.randomNonZeroParameters`).
    public static func randomWeights(_ config: UNetConfig, rng: inout RandomGenerator) -> ParameterStore<Float> {
        config.randomNonZeroParameters(rng: &rng)
    }

    // MARK: Recording and replaying

    /// Run the step on `inputs` and return the debug-state file (inputs, intermediates, results).
    public static func record(_ inputs: Inputs) throws -> SafeTensorsFile {
        var tensors = inputTensors(inputs)
        for (key, value) in try computed(inputs, gradientsForUpdate: nil) { tensors[key] = value }
        var file = SafeTensorsFile(metadata: try metadata(inputs))
        for (key, value) in tensors { file[key] = value }
        return file
    }

    /// Recompute the file's step from its inputs and compare every tensor (sorted by key).
    /// Throws if the file is not a debug state or a key is missing.
    public static func replay(_ file: SafeTensorsFile) throws -> [Comparison] {
        let inputs = try Self.inputs(from: file)
        var recomputed = inputTensors(inputs)
        let shapes = Dictionary(uniqueKeysWithValues: [("generator", inputs.generator), ("fake", inputs.fake), ("head", inputs.head)].flatMap { prefix, store in
            store.namedTensors.map { ("grad.\(prefix).\($0.name)", $0.value.shape) }
        })
        let stored = try Dictionary(uniqueKeysWithValues: file.tensors.keys.filter { $0.hasPrefix("grad.") }.map { key in
            let value: Tensor<Float>
            do { value = try file.tensor(key, as: Float.self) } catch { throw DistillError.badCheckpoint("debug state: '\(key)': \(error)") }
            guard let shape = shapes[key], shape == value.shape else {
                throw DistillError.badCheckpoint("debug state: '\(key)' has shape \(value.shape), expected \(shapes[key].map { "\($0)" } ?? "no such parameter")")
            }
            return (key, value)
        })
        for (key, value) in try computed(inputs, gradientsForUpdate: stored) { recomputed[key] = value }
        let missing = Set(recomputed.keys).symmetricDifference(file.tensors.keys)
        guard missing.isEmpty else {
            throw DistillError.badCheckpoint("debug state: keys differ between the file and the replay: \(missing.sorted().prefix(10))")
        }
        return try file.tensors.keys.sorted().map { key in
            // Values widened to Double whatever the dtype: the file holds integer records too
            // (indices, steps), which `Tensor(_:)` refuses on purpose for weights.
            func widened(_ r: SafeTensor) throws -> Tensor<Double> { Tensor(shape: r.shape, scalars: try r.doubles()) }
            let a = try widened(recomputed[key]!), b = try widened(file.tensor(key))
            guard a.shape == b.shape else {
                throw DistillError.badCheckpoint("debug state: '\(key)' has shape \(b.shape) in the file, \(a.shape) in the replay")
            }
            let scale = max(b.maxAbs(), 1e-30)
            let error = a.count == 0 ? 0 : (a - b).maxAbs() / scale
            return Comparison(key: key, error: error.isNaN ? .infinity : error, tolerance: tolerance(forKey: key))
        }
    }

    /// The inputs stored in a debug-state file. Every tensor is checked (present, shape, dtype,
    /// index ranges) so that a mis-formatted file throws an error naming the key rather than
    /// trapping inside a network.
    public static func inputs(from file: SafeTensorsFile) throws -> Inputs {
        func fail(_ m: String) -> DistillError { .badCheckpoint("debug state: \(m)") }
        guard file.metadata["format"] == format else {
            throw fail("metadata 'format' is \(file.metadata["format"] ?? "absent"), expected \(format)")
        }
        guard let c = file.metadata["config"], let config = try? JSONDecoder().decode(UNetConfig.self, from: Data(c.utf8)),
              let s = file.metadata["settings"], let settings = try? JSONDecoder().decode(Settings.self, from: Data(s.utf8)) else {
            throw fail("metadata 'config' or 'settings' missing or invalid")
        }
        do { try config.validate() } catch { throw fail("metadata 'config': \(error)") }
        guard config.bottleneckResolution == GANHead<Float>.inputResolution else {
            throw fail("metadata 'config': the encoder ends at \(config.bottleneckResolution)×\(config.bottleneckResolution), the GAN head needs 8×8")
        }
        guard settings.batch > 0 else { throw fail("metadata 'settings': batch \(settings.batch) must be positive") }
        let N = settings.batch, K = config.labelDim
        let imageShape = [N, config.inChannels, config.resolution, config.resolution]
        func record(_ key: String, _ shape: [Int]) throws -> SafeTensor {
            let r = try file.tensor(key)                                        // names the key when absent
            guard r.shape == shape else { throw fail("'\(key)' has shape \(r.shape), expected \(shape)") }
            return r
        }
        func floats(_ key: String, _ shape: [Int]) throws -> Tensor<Float> {
            let r = try record(key, shape)
            do { return try Tensor<Float>(r) } catch { throw fail("'\(key)': \(error)") }
        }
        func ints(_ key: String, in range: ClosedRange<Int>) throws -> [Int] {
            let r = try record(key, [N])
            let values: [Int]
            do { values = try r.int64s().map(Int.init) } catch { throw fail("'\(key)': \(error)") }
            if let bad = values.first(where: { !range.contains($0) }) { throw fail("'\(key)' holds \(bad), outside \(range)") }
            return values
        }
        func store(_ prefix: String, _ table: [(name: String, shape: [Int])]) throws -> ParameterStore<Float> {
            ParameterStore(try table.map { ($0.name, Variable(try floats("\(prefix).\($0.name)", $0.shape), requiresGrad: true, name: $0.name)) })
        }
        let entries = config.layout.parameterEntries.map { (name: $0.name, shape: $0.shape) }
        let grid = 0...SigmaGrid.dmd2.maxIndex, labelRange = K > 0 ? -1...(K - 1) : -1...(-1)
        func draw(_ name: String) throws -> NoiseDraw<Float> {
            NoiseDraw(t: try ints("input.\(name).t", in: grid), noise: try floats("input.\(name).noise", imageShape))
        }
        guard let schedule = GeneratorSchedule(metadata: file.metadata) else {
            throw fail("metadata 'generator_sigma_indices' is not a decreasing list of grid indices")
        }
        var fewStep: FewStepDraw<Float>?
        if schedule.steps > 1 {
            let j: [Int]
            do { j = try record("input.fewstep.step", [1]).int64s().map(Int.init) } catch { throw fail("'input.fewstep.step': \(error)") }
            guard (0..<schedule.steps).contains(j[0]) else { throw fail("'input.fewstep.step' holds \(j[0]), outside 0..<\(schedule.steps)") }
            fewStep = FewStepDraw(step: j[0], renoise: try (1..<schedule.steps).map { try floats("input.fewstep.noise.\($0)", imageShape) })
        }
        let draws = IterationDraws<Float>(
            latents: try floats("input.z", imageShape), labels: try ints("input.labels", in: labelRange),
            dm: try draw("dm"), generatorGAN: try draw("gen_gan"), fake: try draw("fake"),
            discriminatorFake: try draw("disc_fake"), discriminatorReal: try draw("disc_real"), fewStep: fewStep)
        return Inputs(config: config, settings: settings, real: try store("real", entries), generator: try store("generator", entries),
                      fake: try store("fake", entries),
                      head: try store("head", GANHead<Float>.parameterTable(channels: config.bottleneckChannels).map { ($0.name, $0.shape) }),
                      draws: draws, realImages: try floats("input.real_images", imageShape),
                      realLabels: try ints("input.real_labels", in: labelRange),
                      schedule: schedule, backwardSimulation: file.metadata["backward_simulation"].map { $0 == "true" } ?? true)
    }

    // MARK: Internals

    static func metadata(_ inputs: Inputs) throws -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var fewStep: [String: String] = [:]
        if inputs.schedule.steps > 1 {
            fewStep = inputs.schedule.metadata
            fewStep["backward_simulation"] = String(inputs.backwardSimulation)
        }
        return fewStep.merging([
            "format": format, "format_version": formatVersion,
            "config": try EDMCheckpoint.configJSON(inputs.config),
            "settings": String(decoding: try encoder.encode(inputs.settings), as: UTF8.self),
            "sigma_max": String(DMD2Networks<Float>.sigmaMax), "sigma_data": "0.5",
            "sigma_grid": "Karras, 1000 levels, sigma_min 0.002, sigma_max 80, rho 7, ascending (K[0] = 0.002)",
            "head_groups": String(admGroupCount(channels: inputs.config.bottleneckChannels)),
            "threads": String(Threads.count), "generator": "swift-dmd2 DebugState.record",
        ]) { $1 }
    }

    /// The inputs as file tensors.
    static func inputTensors(_ inputs: Inputs) -> [String: SafeTensor] {
        var t: [String: SafeTensor] = [:]
        for (prefix, store) in [("real", inputs.real), ("generator", inputs.generator), ("fake", inputs.fake), ("head", inputs.head)] {
            for (name, value) in store.namedTensors { t["\(prefix).\(name)"] = value.safeTensor() }
        }
        let d = inputs.draws, K = inputs.config.labelDim
        t["input.z"] = d.latents.safeTensor()
        t["input.labels"] = ints(d.labels)
        t["input.labels_onehot"] = oneHot(d.labels, classes: K, as: Float.self).safeTensor()
        for (name, draw) in [("dm", d.dm), ("gen_gan", d.generatorGAN), ("fake", d.fake), ("disc_fake", d.discriminatorFake),
                             ("disc_real", d.discriminatorReal)] {
            t["input.\(name).t"] = ints(draw.t)
            t["input.\(name).sigma"] = doubles(draw.sigmas(.dmd2))
            t["input.\(name).noise"] = draw.noise.safeTensor()
        }
        t["input.real_images"] = inputs.realImages.safeTensor()
        t["input.real_labels"] = ints(inputs.realLabels)
        t["input.real_labels_onehot"] = oneHot(inputs.realLabels, classes: K, as: Float.self).safeTensor()
        if let f = d.fewStep {
            t["input.fewstep.step"] = ints([f.step])
            t["input.fewstep.sigma_index"] = ints(inputs.schedule.indices)
            t["input.fewstep.sigma"] = doubles(inputs.schedule.sigmas)
            for (i, ε) in f.renoise.enumerated() { t["input.fewstep.noise.\(i + 1)"] = ε.safeTensor() }
        }
        return t
    }

    /// One iteration from `inputs`: intermediates, losses, norms, gradients (before clipping) and
    /// the updated weights — from the computed gradients, or from `gradientsForUpdate` (file
    /// keys `grad.…`) when given.
    static func computed(_ inputs: Inputs, gradientsForUpdate: [String: Tensor<Float>]?) throws -> [String: SafeTensor] {
        let c = inputs.config, s = inputs.settings
        let networks = DMD2Networks(generator: UNet(config: c, parameters: inputs.generator.copy()),
                                    real: UNet(config: c, parameters: inputs.real.copy(requiresGrad: false)),
                                    fake: UNet(config: c, parameters: inputs.fake.copy()),
                                    head: GANHead(channels: c.bottleneckChannels, parameters: inputs.head.copy()))
        let optimizers = DMD2Optimizers(networks: networks, generator: s.optimizer, critic: s.optimizer, maxGradNorm: s.maxGradNorm)
        let real = RealBatch(images: inputs.realImages, labels: c.labelDim > 0 ? oneHot(inputs.realLabels, classes: c.labelDim, as: Float.self) : nil)
        let groups: [(String, ParameterStore<Float>)] = [("generator", networks.generator.parameters), ("fake", networks.fake.parameters),
                                                         ("head", networks.head.parameters)]
        var t: [String: SafeTensor] = [:]
        var objective = s.objective
        objective.schedule = inputs.schedule
        objective.backwardSimulation = inputs.backwardSimulation
        let outcome = try objective.iterate(networks: networks, optimizers: optimizers, draws: inputs.draws, real: real, regression: nil,
                                              updateGenerator: true, step: 1) { _ in
            for (prefix, store) in groups {
                for (name, v) in zip(store.names, store.variables) {
                    let key = "grad.\(prefix).\(name)"
                    t[key] = (v.grad ?? .zeros(v.shape)).safeTensor()
                    if let stored = gradientsForUpdate?[key] { v.grad = stored }
                }
            }
        }
        let g = outcome.generator!, dm = g.dm!, gan = g.gan!, k = outcome.critic, disc = k.discriminator!
        if inputs.schedule.steps > 1 {
            let r = outcome.rollout
            t["fewstep.input"] = r.input.x.safeTensor()
            t["fewstep.input_sigma"] = doubles(r.input.sigma)
            for (i, x̂) in r.outputs.enumerated() { t["fewstep.x_hat.\(i)"] = x̂.safeTensor() }
        }
        t["gen.x_g"] = outcome.images.safeTensor()
        t["gen.grad_x_g"] = g.imageGradient.safeTensor()
        t["dm.x_t"] = dm.noisy.safeTensor()
        t["dm.pred_real"] = dm.predReal.safeTensor()
        t["dm.pred_fake"] = dm.predFake.safeTensor()
        t["dm.normalizer"] = dm.normalizer.safeTensor()
        t["dm.grad"] = dm.grad.safeTensor()
        t["gen_gan.logits"] = gan.logits.safeTensor()
        t["fake.x_t"] = k.fake.noisy.safeTensor()
        t["fake.pred"] = k.fake.prediction.safeTensor()
        t["disc.logits_fake"] = disc.logitsFake.safeTensor()
        t["disc.logits_real"] = disc.logitsReal.safeTensor()
        t["loss.dm"] = dm.loss.value.safeTensor()
        t["loss.gen_gan"] = gan.loss.value.safeTensor()
        t["loss.generator"] = Tensor(scalar: g.total).safeTensor()
        t["loss.fake"] = k.fake.loss.value.safeTensor()
        t["loss.disc"] = disc.loss.value.safeTensor()
        t["loss.critic"] = Tensor(scalar: k.total).safeTensor()
        t["grad_norm.generator"] = doubles([outcome.generatorGradNorm!], shape: [])
        t["grad_norm.critic"] = doubles([outcome.criticGradNorm], shape: [])
        t["lr.generator"] = doubles([outcome.generatorLearningRate!], shape: [])
        t["lr.critic"] = doubles([outcome.criticLearningRate], shape: [])
        for (prefix, store) in groups {
            for (name, value) in store.namedTensors { t["updated.\(prefix).\(name)"] = value.safeTensor() }
        }
        return t
    }

    static func ints(_ values: [Int]) -> SafeTensor { try! SafeTensor(values.map(Int64.init), shape: [values.count]) }
    static func doubles(_ values: [Double], shape: [Int]? = nil) -> SafeTensor { try! SafeTensor(values, shape: shape ?? [values.count]) }
}
