// The toy's two trained networks, small MLPs in the plane:
//   G       the one-step generator, z ∈ ℝ² ↦ x ∈ ℝ² (at image scale DMD2's G is the teacher's
//           denoiser evaluated at σ_max on σ_max·z; here a fresh MLP plays that role)
//   μ_fake  the fake critic, a denoiser with EDM's preconditioning (docs/METHOD.md §1):
//           D(x; σ) = c_skip(σ)·x + c_out(σ)·F([c_in(σ)·x, c_noise(σ)])
// The real score μ_real needs no network: it is GaussianMixture2D's closed form.
import DMD2Core
import DMD2Ops
import EDM

/// y = L_k(SiLU(… SiLU(L_1(x)))) with L_i(x) = x·W_iᵀ + b_i, parameters named
/// `layers.<i>.weight` / `layers.<i>.bias`.
public struct MLP {
    public let widths: [Int]
    public let weights: [Variable<Double>]
    public let biases: [Variable<Double>]

    /// PyTorch's default initialisation of `nn.Linear`: W and b uniform in ±1/√fan_in.
    public init(widths: [Int], rng: inout RandomGenerator) {
        precondition(widths.count >= 2 && widths.allSatisfy { $0 > 0 }, "MLP: widths \(widths) need ≥ 2 positive entries")
        self.widths = widths
        var w: [Variable<Double>] = [], b: [Variable<Double>] = []
        for i in 0..<(widths.count - 1) {
            let bound = 1 / Double(widths[i]).squareRoot()
            w.append(Variable(rng.uniform([widths[i + 1], widths[i]], low: -bound, high: bound), requiresGrad: true))
            b.append(Variable(rng.uniform([widths[i + 1]], low: -bound, high: bound), requiresGrad: true))
        }
        weights = w
        biases = b
    }

    public func callAsFunction(_ x: Variable<Double>) -> Variable<Double> {
        var h = x
        for i in weights.indices {
            h = linear(h, weight: weights[i], bias: biases[i])
            if i < weights.count - 1 { h = silu(h) }
        }
        return h
    }

    public var namedParameters: [(name: String, variable: Variable<Double>)] {
        weights.indices.flatMap { i in [("layers.\(i).weight", weights[i]), ("layers.\(i).bias", biases[i])] }
    }
}

/// A denoiser in the plane with EDM's preconditioning around an MLP F of [c_in·x, c_noise].
public struct ToyDenoiser {
    public let net: MLP
    /// σ_d, the data's per-coordinate standard deviation.
    public let sigmaData: Double

    public init(hidden: Int = 128, depth: Int = 3, sigmaData: Double, rng: inout RandomGenerator) {
        net = MLP(widths: [3] + [Int](repeating: hidden, count: depth) + [2], rng: &rng)
        self.sigmaData = sigmaData
    }

    /// D(x; σ) for x [N, 2] and one σ per row.
    public func callAsFunction(_ x: Variable<Double>, sigma: [Double]) -> Variable<Double> {
        let N = x.shape[0]
        precondition(x.shape == [N, 2] && sigma.count == N, "ToyDenoiser: points \(x.shape) with \(sigma.count) σ values")
        let c = sigma.map { Preconditioning(sigma: $0, sigmaData: sigmaData) }
        func column(_ v: [Double]) -> Variable<Double> { Variable(Tensor(shape: [N, 1], scalars: v)) }
        let input = concat([x * column(c.map(\.cIn)), column(c.map(\.cNoise))], axis: 1)
        return x * column(c.map(\.cSkip)) + net(input) * column(c.map(\.cOut))
    }
}
