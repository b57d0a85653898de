// EDM preconditioning (Karras et al. 2022, Table 1 "Ours"; docs/METHOD.md §1):
//   D(x; σ, y) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ), y)
//   c_skip = σ_d²/(σ² + σ_d²),  c_out = σ·σ_d/√(σ² + σ_d²),  c_in = 1/√(σ² + σ_d²),  c_noise = ln(σ)/4
// with σ_d = 0.5 and σ per sample. The coefficients are computed in Double (the sampler's
// precision) and rounded once to T. D is an x0-prediction; the score is s = (D − x)/σ².
// At σ = 80: c_skip ≈ 3.906e-5, c_out ≈ 0.49999, c_in = 0.0125, c_noise ≈ 1.0955.
import DMD2Core
import DMD2Ops

/// The four σ-dependent coefficients of EDM's preconditioning.
public struct Preconditioning: Sendable, Equatable {
    public var cSkip: Double
    public var cOut: Double
    public var cIn: Double
    public var cNoise: Double

    /// EDM's coefficients at noise level σ > 0 for data standard deviation σ_d.
    public init(sigma σ: Double, sigmaData σd: Double = 0.5) {
        precondition(σ > 0 && σ.isFinite, "Preconditioning: σ must be positive and finite, got \(σ)")
        let s2 = σ * σ + σd * σd
        cSkip = σd * σd / s2
        cOut = σ * σd / s2.squareRoot()
        cIn = 1 / s2.squareRoot()
        cNoise = Double.log(σ) / 4
    }
}

/// EDM's denoiser D(x; σ, y) around an ADM UNet F.
public struct Denoiser<T: TensorScalar> {
    public var net: UNet<T>
    /// σ_d, the data's standard deviation (0.5 for images in [−1, 1]).
    public var sigmaData: Double

    public init(net: UNet<T>, sigmaData: Double = 0.5) {
        self.net = net
        self.sigmaData = sigmaData
    }

    public var config: UNetConfig { net.config }
    public var parameters: ParameterStore<T> { net.parameters }

    /// D(x; σ, y) for x [N, C, R, R] and one σ per image; differentiable in x and the
    /// network's parameters.
    public func callAsFunction(
        _ x: Variable<T>, sigma: [Double], classLabels: Tensor<T>?, dropout: DropoutMasks<T>? = nil
    ) -> Variable<T> {
        let (cSkip, cOut, cIn, cNoise) = coefficients(sigma, batch: x.shape.first ?? 0)
        let F = net(x * cIn, noiseLabels: cNoise, classLabels: classLabels, dropout: dropout)
        return x * cSkip + F * cOut
    }

    /// D(x; σ, y) with the same σ for every image.
    public func callAsFunction(
        _ x: Variable<T>, sigma: Double, classLabels: Tensor<T>?, dropout: DropoutMasks<T>? = nil
    ) -> Variable<T> {
        self(x, sigma: [Double](repeating: sigma, count: x.shape.first ?? 0), classLabels: classLabels, dropout: dropout)
    }

    /// The score ∇ₓ log p_σ(x) ≈ (D(x; σ, y) − x)/σ², per image σ.
    public func score(_ x: Variable<T>, sigma: [Double], classLabels: Tensor<T>?) -> Variable<T> {
        let invSigma2 = Variable<T>(perImage(sigma.map { 1 / ($0 * $0) }))
        return (self(x, sigma: sigma, classLabels: classLabels) - x) * invSigma2
    }

    /// The encoder bottleneck of F at the preconditioned input: `net.encoderFeatures(c_in·x,
    /// c_noise, y)` (DMD2's GAN head input).
    public func encoderFeatures(
        _ x: Variable<T>, sigma: [Double], classLabels: Tensor<T>?, dropout: DropoutMasks<T>? = nil
    ) -> Variable<T> {
        let (_, _, cIn, cNoise) = coefficients(sigma, batch: x.shape.first ?? 0)
        return net.encoderFeatures(x * cIn, noiseLabels: cNoise, classLabels: classLabels, dropout: dropout)
    }

    /// c_skip, c_out, c_in as [N, 1, 1, 1] constants and c_noise as [N].
    func coefficients(_ sigma: [Double], batch N: Int)
        -> (cSkip: Variable<T>, cOut: Variable<T>, cIn: Variable<T>, cNoise: Tensor<T>)
    {
        precondition(sigma.count == N, "Denoiser: \(sigma.count) σ values for a batch of \(N)")
        let c = sigma.map { Preconditioning(sigma: $0, sigmaData: sigmaData) }
        return (Variable(perImage(c.map(\.cSkip))), Variable(perImage(c.map(\.cOut))),
                Variable(perImage(c.map(\.cIn))), Tensor(shape: [N], scalars: c.map { T($0.cNoise) }))
    }
}

/// One value per image as [N, 1, 1, 1], rounded once to T.
func perImage<T: TensorScalar>(_ values: [Double]) -> Tensor<T> {
    Tensor(shape: [values.count, 1, 1, 1], scalars: values.map { T($0) })
}
