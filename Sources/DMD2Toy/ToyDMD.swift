// DMD2 in the plane: the method of docs/METHOD.md §2 with every network but two replaced by a
// closed form, so that a reader can watch it work in seconds.
//
//   μ_real(x_t; σ)  GaussianMixture2D.denoise — the exact denoiser of the noised mixture
//   μ_fake(x_t; σ)  ToyDenoiser, trained on G's samples (the fake critic)
//   G(z)            MLP, the one-step generator
//
// Generator step (every `ratio`-th iteration; the two time-scale update rule):
//   x_g = G(z); t ~ U{20..980}; σ = K[t]; x_t = x_g + σ·ε
//   a = μ_real(x_t; σ), b = μ_fake(x_t; σ)               (no gradient through either)
//   w = mean_coords |x_g − a| per sample; g = (b − a)/w
//   L_DM = ½·mean((x_g − sg(x_g − g))²)                  (∂L_DM/∂x_g = g/(2N))
//   optionally + λ_reg·mean((G(z_ref) − y_ref)²), the original DMD's regression loss on pairs
//   (z_ref, y_ref = the teacher's ODE solution from σ_max·z_ref)
// Critic step (every iteration), on x = sg(x_g):
//   t ~ U{0..999}; σ = K[t]; L_fake = mean((1/σ² + 1/σ_d²)·(μ_fake(x + σε; σ) − x)²)
// σ grid K: Karras, 1000 levels, σ_min 0.002 to σ_max 80, ρ = 7, K[0] smallest (docs/METHOD.md §2).
//
// b − a = σ²·(s_fake − s_real): the generator moves along the real score minus the fake score,
// i.e. towards where the data is dense and away from where its own samples already are.
import DMD2Core
import DMD2Ops
import DMD2Train
import EDM
import Foundation

/// Settings of a toy run.
public struct ToyDMDConfig: Codable, Equatable, Sendable {
    public var iterations = 3000
    public var batch = 256
    /// Critic updates per generator update (TTUR); 1 updates both every iteration.
    public var ratio = 5
    public var generatorLR = 1e-3
    public var criticLR = 1e-3
    /// Critic-only steps on G's initial samples before the first generator step (at image scale
    /// μ_fake starts as a copy of a teacher that already knows images; here it must first learn
    /// G's starting distribution).
    public var criticWarmStart = 500
    /// Weight of the original DMD regression loss; 0 turns it off.
    public var regressionWeight = 0.0
    /// Pairs for the regression loss (z, teacher ODE sample), drawn once.
    public var regressionPairs = 1024
    /// Heun steps of the teacher ODE that makes the pairs.
    public var regressionSteps = 32
    public var seed: UInt64 = 0
    /// Iterations at which G's samples are kept for figures (0 = before training).
    public var snapshots: [Int] = [0, 100, 300, 1000, 3000]

    public init() {}
}

/// What one iteration did (the JSON-lines log of the toy).
public struct ToyDMDRecord: Codable, Equatable, Sendable {
    public var iteration: Int
    /// L_DM and the regression loss, when G was updated this iteration.
    public var lossDM: Double?
    public var lossRegression: Double?
    public var lossFake: Double
    /// Mean of G's batch per coordinate (the toy's "brightness").
    public var meanX: Double
    public var meanY: Double
}

/// Quality of G's samples against the mixture.
public struct ToySampleQuality: Codable, Equatable, Sendable {
    /// Fraction of samples within 3 std of some component.
    public var precision: Double
    /// Fraction of components that hold at least half their fair share of the precise samples.
    public var coverage: Double
}

/// A toy DMD2 run: the mixture, the networks, their optimisers and the log.
public final class ToyDMD {
    public let config: ToyDMDConfig
    public let mixture: GaussianMixture2D
    public let generator: MLP
    public let fake: ToyDenoiser
    public let sigmaGrid: [Double]
    let generatorOptimizer: AdamW<Double>
    let criticOptimizer: AdamW<Double>
    var rng: RandomGenerator
    /// Regression pairs (z, y_ref), when the regression loss is on.
    public private(set) var pairs: (z: Tensor<Double>, target: Tensor<Double>)?
    public private(set) var records: [ToyDMDRecord] = []
    /// G's samples of the fixed evaluation noise at each snapshot iteration.
    public private(set) var snapshots: [(iteration: Int, samples: Tensor<Double>)] = []
    /// Fixed noise for snapshots and quality, so pictures differ only by G.
    public let evaluationNoise: Tensor<Double>

    public init(config: ToyDMDConfig, mixture: GaussianMixture2D = .ring()) {
        precondition(config.iterations >= 0 && config.batch > 0 && config.ratio >= 1,
                     "ToyDMD: need iterations ≥ 0, batch > 0 and ratio ≥ 1, got \(config.iterations), \(config.batch), \(config.ratio)")
        self.config = config
        self.mixture = mixture
        var rng = RandomGenerator(seed: config.seed)
        generator = MLP(widths: [2, 128, 128, 2], rng: &rng)
        fake = ToyDenoiser(sigmaData: mixture.dataStd, rng: &rng)
        sigmaGrid = Array(KarrasSchedule.sigmas(steps: 1000).prefix(1000).reversed())
        generatorOptimizer = AdamW(parameters: generator.namedParameters,
                                   config: AdamWConfig(learningRate: config.generatorLR, weightDecay: 0))
        criticOptimizer = AdamW(parameters: fake.net.namedParameters,
                                config: AdamWConfig(learningRate: config.criticLR, weightDecay: 0))
        evaluationNoise = rng.normal([2000, 2])
        if config.regressionWeight > 0 {
            let z: Tensor<Double> = rng.normal([config.regressionPairs, 2])
            pairs = (z, Self.teacherODE(mixture, latents: z, steps: config.regressionSteps))
        }
        self.rng = rng
    }

    /// The teacher's deterministic sample from each latent z: EDM's Heun sampler from σ_max·z,
    /// with the mixture's exact denoiser.
    public static func teacherODE(_ mixture: GaussianMixture2D, latents z: Tensor<Double>, steps: Int) -> Tensor<Double> {
        var unused = RandomGenerator(seed: 0)
        let sampler = EDMSampler(method: .heun, steps: steps)
        return sampler.sample(latents: z, rng: &unused) { x, sigma in
            mixture.denoise(x, sigma: [Double](repeating: sigma, count: x.shape[0]))
        }.x
    }

    /// G's samples for the latents z [n, 2], without gradient.
    public func samples(_ z: Tensor<Double>) -> Tensor<Double> {
        NoGrad.run { generator(Variable(z)).value }
    }

    /// One σ = K[t] per sample with t uniform in `range`.
    func drawSigmas(_ n: Int, _ range: ClosedRange<Int>) -> [Double] {
        (0..<n).map { _ in sigmaGrid[rng.int(in: range)] }
    }

    /// [n, 1] column of per-sample values.
    static func column(_ v: [Double]) -> Tensor<Double> { Tensor(shape: [v.count, 1], scalars: v) }

    /// The distribution matching loss for x_g (a Variable carrying G's graph) with its draws.
    public func distributionMatchingLoss(_ xg: Variable<Double>, sigma: [Double], noise: Tensor<Double>) -> Variable<Double> {
        let N = xg.shape[0]
        let g: Tensor<Double> = NoGrad.run {
            let xt = xg.value + noise * Self.column(sigma).broadcast(to: [N, 2])
            let a = mixture.denoise(xt, sigma: sigma)                         // μ_real
            let b = fake(Variable(xt), sigma: sigma).value                    // μ_fake
            let distance: Tensor<Double> = (xg.value - a).map(.abs)
            let w = distance.sum(axis: 1) * 0.5                                 // mean |x_g − a| per sample
            let raw = (b - a) / w.reshaped([N, 1]).broadcast(to: [N, 2])
            return nanToNum(Variable(raw)).value
        }
        let target = Variable(xg.value - g)                                   // sg(x_g − g)
        return 0.5 * mseLoss(xg, target)
    }

    /// The fake critic's denoising loss on x (no gradient to G).
    public func fakeCriticLoss(_ x: Tensor<Double>, sigma: [Double], noise: Tensor<Double>) -> Variable<Double> {
        let N = x.shape[0]
        let noisy = x + noise * Self.column(sigma).broadcast(to: [N, 2])
        let d = mixture.dataStd
        let weight = Self.column(sigma.map { 1 / ($0 * $0) + 1 / (d * d) })
        return weightedMSELoss(fake(Variable(noisy), sigma: sigma), Variable(x), weight: Variable(weight))
    }

    /// One critic update on x = sg(x_g); returns L_fake.
    func criticStep(_ x: Tensor<Double>) -> Double {
        let N = x.shape[0]
        let sigma = drawSigmas(N, 0...999)
        let noise: Tensor<Double> = rng.normal([N, 2])
        let loss = fakeCriticLoss(x, sigma: sigma, noise: noise)
        criticOptimizer.zeroGrad()
        loss.backward()
        _ = clipGradNorm(fake.net.namedParameters.map(\.variable), maxNorm: 10)
        criticOptimizer.step()
        return loss.value.scalar
    }

    /// Whether the critic's warm start has run.
    public private(set) var warmedUp = false

    /// The critic-only steps on G's initial samples (`criticWarmStart` of them); `run` calls
    /// this first if it has not been called.
    public func warmStartCritic() {
        guard !warmedUp else { return }
        for _ in 0..<config.criticWarmStart {
            _ = criticStep(samples(rng.normal([config.batch, 2])))
        }
        warmedUp = true
        if config.snapshots.contains(0) { snapshots.append((0, samples(evaluationNoise))) }
    }

    /// Run every iteration, calling `progress` after each.
    public func run(progress: (ToyDMDRecord) -> Void = { _ in }) {
        let B = config.batch
        warmStartCritic()
        for iteration in 1...max(config.iterations, 1) where config.iterations > 0 {
            let z: Tensor<Double> = rng.normal([B, 2])
            var lossDM: Double?, lossReg: Double?
            let xg: Tensor<Double>
            if iteration % config.ratio == 0 {
                let x = generator(Variable(z))
                let sigma = drawSigmas(B, 20...980)
                let noise: Tensor<Double> = rng.normal([B, 2])
                var loss = distributionMatchingLoss(x, sigma: sigma, noise: noise)
                lossDM = loss.value.scalar
                if let pairs {
                    let reg = mseLoss(generator(Variable(pairs.z)), Variable(pairs.target))
                    lossReg = reg.value.scalar
                    loss = loss + reg * config.regressionWeight
                }
                generatorOptimizer.zeroGrad()
                loss.backward()
                _ = clipGradNorm(generator.namedParameters.map(\.variable), maxNorm: 10)
                generatorOptimizer.step()
                xg = x.value
            } else {
                xg = samples(z)
            }
            let lossFake = criticStep(xg)
            let mean = xg.sum(axis: 0).scalars.map { $0 / Double(B) }
            let record = ToyDMDRecord(iteration: iteration, lossDM: lossDM, lossRegression: lossReg,
                                      lossFake: lossFake, meanX: mean[0], meanY: mean[1])
            records.append(record)
            if config.snapshots.contains(iteration) { snapshots.append((iteration, samples(evaluationNoise))) }
            progress(record)
        }
    }

    /// Precision and coverage of G's samples of the evaluation noise.
    public func quality() -> ToySampleQuality { Self.quality(of: samples(evaluationNoise), mixture) }

    public static func quality(of x: Tensor<Double>, _ mixture: GaussianMixture2D) -> ToySampleQuality {
        let nearest = mixture.nearestComponent(x).filter { $0.distance <= 3 }
        var counts = [Int](repeating: 0, count: mixture.means.count)
        for n in nearest { counts[n.component] += 1 }
        let fair = Double(nearest.count) / Double(counts.count)
        let covered = counts.filter { nearest.count > 0 && Double($0) >= 0.5 * fair }.count
        return ToySampleQuality(precision: Double(nearest.count) / Double(x.shape[0]),
                                coverage: Double(covered) / Double(counts.count))
    }
}
