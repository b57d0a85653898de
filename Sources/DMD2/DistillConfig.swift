// The settings of a DMD2 distillation run (stored in every checkpoint), with the official
// ImageNet-64 recipe's values as defaults (docs/METHOD.md §2 "Totals and update rule"):
//   generator loss L_DM + 3e-3·L_G; critic loss L_fake + 1e-2·L_D; TTUR ratio 5 (G updated at
//   iterations 0, 5, 10, …; the critic every iteration); AdamW betas (0.9, 0.999), eps 1e-8,
//   weight decay 0.01, lr 2e-6 for both, constant after a linear warm-up; gradient norm clipped
//   to 10 per optimiser; no EMA of G. Switches for the paper's ablations: DM on/off, GAN on/off,
//   the TTUR ratio, and the original DMD's regression loss on stored teacher pairs.
// The few-step generator (docs/METHOD.md §3, FewStep.swift): `generatorSteps` k (1: the one-step
// generator, the default, bitwise the same run as before the setting existed) on the schedule
// K[999 − i·⌊1000/k⌋], and `backwardSimulation` (default on). Manifests written before these
// settings existed decode with the defaults.
import DMD2Core
import DMD2Train
import EDM

/// The original DMD's regression term: L2 to stored teacher samples (RegressionPairs.swift).
public struct RegressionSettings: Codable, Equatable, Sendable {
    /// The pairs file (`dmd2 make-pairs`), as given.
    public var pairsFile: String
    /// w_reg in L_DM + w_G·L_G + w_reg·L_reg.
    public var weight: Double

    public init(pairsFile: String, weight: Double) {
        self.pairsFile = pairsFile
        self.weight = weight
    }
}

/// A distillation run's settings.
public struct DistillConfig: Codable, Equatable, Sendable {
    /// The teacher's network config (G, μ_real and μ_fake use it with dropout 0).
    public var network: UNetConfig
    /// Images per iteration (generated, and real ones for the discriminator).
    public var batchSize: Int
    /// Total iterations of the run (generator and critic-only ones).
    public var iterations: Int
    public var generatorOptimizer: AdamWConfig
    public var criticOptimizer: AdamWConfig
    /// G is updated at iterations i with i % tturRatio == 0 (0-based); the critic every iteration.
    public var tturRatio: Int
    /// The distribution matching loss in G's objective (off: "GAN alone").
    public var distributionMatching: Bool
    /// The GAN terms (L_G for G, L_D for the critic, the head).
    public var gan: Bool
    /// w_G: weight of L_G in the generator loss (3e-3).
    public var ganWeightGenerator: Double
    /// w_D: weight of L_D in the critic loss (1e-2).
    public var ganWeightCritic: Double
    /// Gradient norm clipping per optimiser (10).
    public var maxGradNorm: Double
    /// EMA of G (nil: none, the default).
    public var ema: EMASchedule?
    /// Classifier-free guidance scale on the real score (nil: none; needs label dropout).
    public var realGuidance: Double?
    /// The original DMD's regression loss (nil: off).
    public var regression: RegressionSettings?
    /// The DM loss's σ-grid index range (DMD2: 20…980 of 0…999).
    public var dmMinStep: Int
    public var dmMaxStep: Int
    public var seed: UInt64
    /// A checkpoint every this many iterations (and at the last); 0: only at the last.
    public var checkpointInterval: Int
    /// Checkpoints kept (the newest); 0 keeps all.
    public var keepCheckpoints: Int
    /// Real images: at most this many from the dataset (balanced over classes); nil: all.
    public var maxItems: Int?
    /// k, the generator's steps (1: one step at σ = 80).
    public var generatorSteps: Int
    /// A k-step generator's training inputs: the rollout of the current G (true) or noised real
    /// images (false, the ablation). Ignored for k = 1.
    public var backwardSimulation: Bool
    /// Data-parallel shards S of the batch (DMD2Train's DataParallel: each shard has its own
    /// random stream, gradients averaged in shard order); nil or 1: the whole batch at once.
    public var shards: Int?

    /// S (1 without sharding).
    public var shardCount: Int { shards ?? 1 }

    enum CodingKeys: String, CodingKey {
        case network, batchSize, iterations, generatorOptimizer, criticOptimizer, tturRatio, distributionMatching, gan
        case ganWeightGenerator, ganWeightCritic, maxGradNorm, ema, realGuidance, regression, dmMinStep, dmMaxStep, seed
        case checkpointInterval, keepCheckpoints, maxItems, generatorSteps, backwardSimulation, shards
    }

    public init(network: UNetConfig, batchSize: Int, iterations: Int, learningRate: Double = 2e-6, warmUpSteps: Int = 0,
                weightDecay: Double = 0.01, tturRatio: Int = 5, distributionMatching: Bool = true, gan: Bool = true,
                ganWeightGenerator: Double = 3e-3, ganWeightCritic: Double = 1e-2, maxGradNorm: Double = 10,
                ema: EMASchedule? = nil, realGuidance: Double? = nil, regression: RegressionSettings? = nil,
                dmMinStep: Int = 20, dmMaxStep: Int = 980, seed: UInt64 = 0, checkpointInterval: Int = 500,
                keepCheckpoints: Int = 3, maxItems: Int? = nil, generatorSteps: Int = 1, backwardSimulation: Bool = true,
                shards: Int? = nil) {
        let optimizer = AdamWConfig(learningRate: learningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8,
                                    weightDecay: weightDecay, warmUpSteps: warmUpSteps)
        self.network = network
        self.batchSize = batchSize
        self.iterations = iterations
        self.generatorOptimizer = optimizer
        self.criticOptimizer = optimizer
        self.tturRatio = tturRatio
        self.distributionMatching = distributionMatching
        self.gan = gan
        self.ganWeightGenerator = ganWeightGenerator
        self.ganWeightCritic = ganWeightCritic
        self.maxGradNorm = maxGradNorm
        self.ema = ema
        self.realGuidance = realGuidance
        self.regression = regression
        self.dmMinStep = dmMinStep
        self.dmMaxStep = dmMaxStep
        self.seed = seed
        self.checkpointInterval = checkpointInterval
        self.keepCheckpoints = keepCheckpoints
        self.maxItems = maxItems
        self.generatorSteps = generatorSteps
        self.backwardSimulation = backwardSimulation
        self.shards = shards
    }

    /// Decodes a manifest's config; `generatorSteps` and `backwardSimulation` default to 1 and
    /// true when absent (runs from before the few-step generator).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        network = try c.decode(UNetConfig.self, forKey: .network)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        iterations = try c.decode(Int.self, forKey: .iterations)
        generatorOptimizer = try c.decode(AdamWConfig.self, forKey: .generatorOptimizer)
        criticOptimizer = try c.decode(AdamWConfig.self, forKey: .criticOptimizer)
        tturRatio = try c.decode(Int.self, forKey: .tturRatio)
        distributionMatching = try c.decode(Bool.self, forKey: .distributionMatching)
        gan = try c.decode(Bool.self, forKey: .gan)
        ganWeightGenerator = try c.decode(Double.self, forKey: .ganWeightGenerator)
        ganWeightCritic = try c.decode(Double.self, forKey: .ganWeightCritic)
        maxGradNorm = try c.decode(Double.self, forKey: .maxGradNorm)
        ema = try c.decodeIfPresent(EMASchedule.self, forKey: .ema)
        realGuidance = try c.decodeIfPresent(Double.self, forKey: .realGuidance)
        regression = try c.decodeIfPresent(RegressionSettings.self, forKey: .regression)
        dmMinStep = try c.decode(Int.self, forKey: .dmMinStep)
        dmMaxStep = try c.decode(Int.self, forKey: .dmMaxStep)
        seed = try c.decode(UInt64.self, forKey: .seed)
        checkpointInterval = try c.decode(Int.self, forKey: .checkpointInterval)
        keepCheckpoints = try c.decode(Int.self, forKey: .keepCheckpoints)
        maxItems = try c.decodeIfPresent(Int.self, forKey: .maxItems)
        generatorSteps = try c.decodeIfPresent(Int.self, forKey: .generatorSteps) ?? 1
        backwardSimulation = try c.decodeIfPresent(Bool.self, forKey: .backwardSimulation) ?? true
        shards = try c.decodeIfPresent(Int.self, forKey: .shards)
    }

    /// The generator's noise levels: K[999 − i·⌊1000/k⌋], i = 0 … k−1.
    public var generatorSchedule: GeneratorSchedule { .uniform(steps: generatorSteps) }

    /// Whether iterations read real images: for the GAN, or as G's inputs (few steps without
    /// backward simulation).
    public var readsRealImages: Bool { gan || objective.generatorReadsRealImages }

    /// The DM loss's index range.
    public var dmSteps: ClosedRange<Int> { dmMinStep...dmMaxStep }

    /// Whether iteration `i` (0-based) updates G.
    public func updatesGenerator(atIteration i: Int) -> Bool { i % tturRatio == 0 }

    /// The loss settings of this run.
    public var objective: DMD2Objective {
        DMD2Objective(distributionMatching: distributionMatching, gan: gan, ganWeightGenerator: ganWeightGenerator,
                      ganWeightCritic: ganWeightCritic, regressionWeight: regression?.weight, realGuidance: realGuidance,
                      schedule: generatorSchedule, backwardSimulation: backwardSimulation)
    }

    /// Throws `DistillError.badConfig` naming the first bad setting.
    public func validate() throws {
        func fail(_ m: String) -> DistillError { .badConfig(m) }
        do { try network.validate() } catch { throw fail("\(error)") }
        guard batchSize > 0 else { throw fail("batch size \(batchSize) must be positive") }
        guard iterations >= 1 else { throw fail("iterations \(iterations) must be ≥ 1 (a run of no iterations writes no checkpoint)") }
        guard checkpointInterval >= 0, keepCheckpoints >= 0 else {
            throw fail("checkpoint interval \(checkpointInterval) and kept checkpoints \(keepCheckpoints) must be ≥ 0")
        }
        guard tturRatio >= 1 else { throw fail("TTUR ratio \(tturRatio) must be ≥ 1") }
        guard distributionMatching || gan || regression != nil else {
            throw fail("the generator has no loss: distribution matching, GAN and regression are all off")
        }
        guard ganWeightGenerator >= 0, ganWeightCritic >= 0, ganWeightGenerator.isFinite, ganWeightCritic.isFinite else {
            throw fail("GAN weights \(ganWeightGenerator), \(ganWeightCritic) must be finite and ≥ 0")
        }
        guard maxGradNorm > 0, maxGradNorm.isFinite else { throw fail("max gradient norm \(maxGradNorm) must be finite and > 0") }
        guard 0 <= dmMinStep, dmMinStep <= dmMaxStep, dmMaxStep <= SigmaGrid.dmd2.maxIndex else {
            throw fail("DM steps \(dmMinStep)…\(dmMaxStep) must lie in 0…\(SigmaGrid.dmd2.maxIndex)")
        }
        if let realGuidance {
            guard realGuidance.isFinite else { throw fail("real guidance \(realGuidance) must be finite") }
            guard network.labelDim > 0 else { throw fail("real guidance needs a class-conditional teacher") }
        }
        if let regression {
            guard regression.weight >= 0, regression.weight.isFinite else { throw fail("regression weight \(regression.weight) must be finite and ≥ 0") }
        }
        if let maxItems, maxItems <= 0 { throw fail("max items \(maxItems) must be positive") }
        if let shards {
            guard shards >= 1, batchSize % shards == 0 else { throw fail("batch size \(batchSize) cannot be cut into \(shards) equal shards") }
        }
        guard (1...SigmaGrid.dmd2.count).contains(generatorSteps) else {
            throw fail("generator steps \(generatorSteps) must lie in 1…\(SigmaGrid.dmd2.count)")
        }
        for (which, o) in [("generator", generatorOptimizer), ("critic", criticOptimizer)] {
            guard o.learningRate >= 0, o.learningRate.isFinite, (0..<1).contains(o.beta1), (0..<1).contains(o.beta2),
                  o.eps > 0, o.weightDecay >= 0, o.warmUpSteps >= 0 else { throw fail("\(which) optimizer settings out of range: \(o)") }
        }
        switch ema {
        case .decay(let β)?: guard (0...1).contains(β) else { throw fail("EMA decay \(β) must lie in [0, 1]") }
        case .halfLife(let H, let r)?:
            guard H > 0, H.isFinite, r.map({ $0 > 0 && $0.isFinite }) ?? true else { throw fail("EMA half-life \(H) / ramp-up \(String(describing: r)) out of range") }
        case nil: break
        }
        guard network.bottleneckResolution == GANHead<Float>.inputResolution else {
            throw fail("the encoder of \(network.resolution)×\(network.resolution) × \(network.channelMult) ends at \(network.bottleneckResolution)×\(network.bottleneckResolution): the GAN head needs an 8×8 bottleneck")
        }
    }

    /// `validate()`, and both optimisers' settings representable in `T` (the networks' precision).
    public func validate<T: TensorScalar>(in _: T.Type) throws {
        try validate()
        for (which, o) in [("generator", generatorOptimizer), ("critic", criticOptimizer)] {
            if let problem = o.precisionProblem(in: T.self) { throw DistillError.badConfig("\(which) optimizer: \(problem)") }
        }
    }
}

/// Why a distillation could not start, resume or save.
public enum DistillError: Error, CustomStringConvertible, Equatable {
    case badConfig(String)
    /// The dataset, teacher or pairs do not fit the run.
    case dataMismatch(String)
    /// A run folder or checkpoint that cannot be used (the message names the file).
    case badCheckpoint(String)
    /// A resume asked to change settings of the run, or its teacher (each change named).
    case changedSettings([SettingChange])

    public var description: String {
        switch self {
        case .badConfig(let m): "distillation config: \(m)"
        case .dataMismatch(let m): "data: \(m)"
        case .badCheckpoint(let m): "checkpoint: \(m)"
        case .changedSettings(let changes):
            "resuming would change the run's settings:\n" + changes.map { "  \($0)" }.joined(separator: "\n")
        }
    }
}
