// EDM's denoising training loss (Karras et al. 2022, §5 and Table 1; docs/METHOD.md §1):
//   ln σ ~ N(P_mean, P_std²) per image (P_mean = −1.2, P_std = 1.2),  ε ~ N(0, I),  n = σ·ε
//   λ(σ) = (σ² + σ_d²)/(σ·σ_d)²
//   L = mean over all N·C·H·W elements of λ(σ)·(D(x + n; σ, y) − x)²
// with labels dropped (replaced by the zero vector, "no label") with probability p so the
// model also learns the unconditional D(x; σ, ∅) for classifier-free guidance.
// λ = 1/c_out², so λ·(D − x)² = (F − F_target)² with F_target = (x − c_skip·(x + n))/c_out:
// the network's own regression target has unit weight at every σ. (EDM's code sums over
// elements and averages over images; the mean here is that divided by C·H·W.) The draws are arguments (`EDMLoss.Draws`), so a loss value is a
// deterministic function and can be gradient-checked; `draw` makes them from a generator.
import DMD2Core
import DMD2Ops

/// EDM's training loss with its σ distribution and label dropout.
public struct EDMLoss: Sendable, Equatable {
    /// Mean of ln σ.
    public var pMean: Double
    /// Standard deviation of ln σ.
    public var pStd: Double
    /// Probability of dropping an image's label.
    public var labelDropout: Double

    public init(pMean: Double = -1.2, pStd: Double = 1.2, labelDropout: Double = 0) {
        self.pMean = pMean
        self.pStd = pStd
        self.labelDropout = labelDropout
    }

    /// EDM's σ distribution with the config's label dropout.
    public init(config: UNetConfig) {
        self.init(labelDropout: config.labelDropout)
    }

    /// The random inputs of one loss evaluation.
    public struct Draws<T: TensorScalar> {
        /// σ per image.
        public var sigma: [Double]
        /// ε ~ N(0, I) of the images' shape; the added noise is σ·ε.
        public var noise: Tensor<T>
        /// Whether each image's label is dropped.
        public var dropLabel: [Bool]

        public init(sigma: [Double], noise: Tensor<T>, dropLabel: [Bool]) {
            self.sigma = sigma
            self.noise = noise
            self.dropLabel = dropLabel
        }
    }

    /// Draw σ (log-normal), ε and the label-dropout decisions for images of `shape` [N, …],
    /// in that order: N normals for ln σ, then ε, then N uniforms for the labels.
    public func draw<T: TensorScalar>(shape: [Int], rng: inout RandomGenerator, as: T.Type = T.self) -> Draws<T> {
        precondition(!shape.isEmpty, "EDMLoss.draw: images need a batch axis, got shape \(shape)")
        let N = shape[0]
        let z: Tensor<Double> = rng.normal([N])
        let sigma = z.scalars.map { Double.exp(pMean + pStd * $0) }
        let noise: Tensor<T> = rng.normal(shape)
        let drop = (0..<N).map { _ in rng.nextUniform() < labelDropout }
        return Draws(sigma: sigma, noise: noise, dropLabel: drop)
    }

    /// λ(σ) = (σ² + σ_d²)/(σ·σ_d)².
    public static func weight(sigma σ: Double, sigmaData σd: Double = 0.5) -> Double {
        (σ * σ + σd * σd) / ((σ * σd) * (σ * σd))
    }

    /// The loss for clean `images` x [N, C, H, W] with `classLabels` [N, K] (or nil), given the
    /// draws; a scalar Variable differentiable in the denoiser's parameters (and in x when x
    /// requires grad).
    public func callAsFunction<T>(
        _ denoiser: Denoiser<T>, images x: Variable<T>, classLabels: Tensor<T>?, draws: Draws<T>,
        dropout: DropoutMasks<T>? = nil
    ) -> Variable<T> {
        let N = x.shape.first ?? 0
        precondition(draws.sigma.count == N && draws.dropLabel.count == N,
                     "EDMLoss: draws for \(draws.sigma.count) images (σ) / \(draws.dropLabel.count) (labels), batch is \(N)")
        precondition(draws.noise.shape == x.shape, "EDMLoss: noise \(draws.noise.shape), images \(x.shape)")
        let σ = Variable<T>(perImage(draws.sigma))
        let noisy = x + Variable(draws.noise) * σ                          // x + σ·ε
        let labels = classLabels.map { Self.droppingLabels($0, draws.dropLabel) }
        let D = denoiser(noisy, sigma: draws.sigma, classLabels: labels, dropout: dropout)
        let λ = Variable<T>(perImage(draws.sigma.map { Self.weight(sigma: $0, sigmaData: denoiser.sigmaData) }))
        return weightedMSELoss(D, x, weight: λ)
    }

    /// One training evaluation: draws (σ, ε, labels) for `images` from `rng`, then the loss.
    /// Pass `dropout` masks for the network (e.g. `denoiser.net.trainingDropout(rng:)`).
    public func callAsFunction<T>(
        _ denoiser: Denoiser<T>, images x: Variable<T>, classLabels: Tensor<T>?, rng: inout RandomGenerator,
        dropout: DropoutMasks<T>? = nil
    ) -> Variable<T> {
        let draws: Draws<T> = draw(shape: x.shape, rng: &rng)
        return self(denoiser, images: x, classLabels: classLabels, draws: draws, dropout: dropout)
    }

    /// Labels with the rows where `drop` is true set to zero ("no label").
    static func droppingLabels<T>(_ y: Tensor<T>, _ drop: [Bool]) -> Tensor<T> {
        precondition(y.rank == 2 && y.shape[0] == drop.count, "EDMLoss: labels \(y.shape) for \(drop.count) images")
        guard drop.contains(true) else { return y }
        let keep = Tensor<T>(shape: [drop.count, 1], scalars: drop.map { $0 ? 0 : 1 })
        return y * keep.broadcast(to: y.shape)
    }
}
