// The objective DMD descends, checked exactly in the plane (docs/guide/02-the-objective.md).
//
// DMD2's generator minimises the reverse KL divergence D_KL(p_fake,σ ‖ p_real,σ) between its own
// noised distribution and the data's, at every noise level σ. Its gradient with respect to G's
// parameters θ is the DMD gradient
//
//   ∇_θ D_KL(p_fake,σ ‖ p_real,σ) = E_{z,ε}[(s_fake,σ(x_t) − s_real,σ(x_t))ᵀ·∂x_t/∂θ],
//   x_t = G_θ(z) + σ·ε
//
// (the reparameterised derivative of E[log p_fake,σ(x_t) − log p_real,σ(x_t)]; the term from
// p_fake,σ's own dependence on θ at fixed x is E[∂_θ log p_fake,σ] = 0). To check it numerically
// both densities must be known, so G here is affine, x_g = A·z + b with z ~ N(0, I₂):
//
//   p_fake,σ = N(b, C),  C = A·Aᵀ + σ²·I,  s_fake,σ(x) = −C⁻¹·(x − b)
//   p_real,σ = the ring mixture noised at σ, in closed form (GaussianMixture2D)
//
// With L·Lᵀ = C (Cholesky) and x = b + L·u, u ~ N(0, I₂):
//
//   KL_σ(θ) = E_u[log N(b + L·u; b, C) − log p_real,σ(b + L·u)]
//
// an integral over the plane, computed by the trapezoid rule on a fixed grid in u (spectrally
// accurate for these smooth, Gaussian-decaying integrands). The same grid gives the DMD gradient
// exactly: ∂x_t/∂b = I, and ∂x_t/∂A_jk = e_j·z_k, whose expectation given x_t is
// E[z | x_t] = Aᵀ·C⁻¹·(x_t − b) = Aᵀ·L⁻ᵀ·u. Finite differences of KL_σ (Richardson-extrapolated
// central differences) against that quadrature check the identity; a Monte-Carlo estimate with
// fixed samples, through the toy's surrogate loss ½·mean((x − sg(x − g))²) with
// g = s_fake − s_real = (D_fake − D_real)/σ², checks the code path within its standard error.
import DMD2Core
import DMD2Ops
import Foundation

/// x = A·z + b in the plane: a generator whose output density is Gaussian, N(b, A·Aᵀ).
public struct AffineGenerator2D: Equatable, Sendable {
    /// A, row-major [A00, A01, A10, A11].
    public var a: [Double]
    public var b: [Double]

    /// The parameter names in `parameters` order.
    public static let parameterNames = ["A[0,0]", "A[0,1]", "A[1,0]", "A[1,1]", "b[0]", "b[1]"]

    public init(a: [Double], b: [Double]) {
        precondition(a.count == 4 && b.count == 2, "AffineGenerator2D: A needs 4 entries and b 2, got \(a.count) and \(b.count)")
        self.a = a
        self.b = b
    }

    /// θ = [A00, A01, A10, A11, b0, b1].
    public init(parameters θ: [Double]) {
        precondition(θ.count == 6, "AffineGenerator2D: 6 parameters needed, got \(θ.count)")
        self.init(a: Array(θ[0..<4]), b: Array(θ[4..<6]))
    }

    public var parameters: [Double] { a + b }

    /// The Cholesky factor of C = A·Aᵀ + σ²·I as (l00, l10, l11), L = [[l00, 0], [l10, l11]].
    public func noisedCholesky(sigma: Double) -> (l00: Double, l10: Double, l11: Double) {
        let c00 = a[0] * a[0] + a[1] * a[1] + sigma * sigma
        let c01 = a[0] * a[2] + a[1] * a[3]
        let c11 = a[2] * a[2] + a[3] * a[3] + sigma * sigma
        precondition(c00 > 0, "AffineGenerator2D: A·Aᵀ + σ²·I is singular (A's first row is 0 and σ = 0)")
        let l00 = c00.squareRoot(), l10 = c01 / l00
        let rest = c11 - l10 * l10
        precondition(rest > 0, "AffineGenerator2D: A·Aᵀ + σ²·I is singular (A is rank-deficient and σ = 0)")
        return (l00, l10, rest.squareRoot())
    }

    /// s_fake,σ(x) = −C⁻¹·(x − b), the exact score of G's output noised at σ, for x [n, 2].
    public func score(_ x: Tensor<Double>, sigma: Double) -> Tensor<Double> {
        precondition(x.rank == 2 && x.shape[1] == 2, "AffineGenerator2D.score: points must be [n, 2], got \(x.shape)")
        let L = noisedCholesky(sigma: sigma)
        var out = [Double](repeating: 0, count: x.count)
        for i in 0..<x.shape[0] {
            // u = L⁻¹(x − b), then C⁻¹(x − b) = L⁻ᵀ·u.
            let u0 = (x.scalars[2 * i] - b[0]) / L.l00
            let u1 = (x.scalars[2 * i + 1] - b[1] - L.l10 * u0) / L.l11
            let w1 = u1 / L.l11, w0 = (u0 - L.l10 * w1) / L.l00
            out[2 * i] = -w0
            out[2 * i + 1] = -w1
        }
        return Tensor(shape: x.shape, scalars: out)
    }
}

/// A Monte-Carlo estimate of the DMD gradient with its standard error, per parameter.
public struct DMDGradientEstimate: Equatable, Sendable {
    /// The mean over samples of (s_fake − s_real)ᵀ·∂x_t/∂θ, written out per sample.
    public var mean: [Double]
    /// sd over samples / √samples.
    public var standardError: [Double]
    /// The same mean, from autograd through the surrogate ½·mean((x − sg(x − g))²) (times 2N/N:
    /// its gradient is (1/(2N))·Σ gᵀ·∂x/∂θ for x of shape [N, 2]).
    public var autograd: [Double]
    public var samples: Int
}

/// Which fake score the Monte-Carlo DMD gradient uses.
public enum FakeScoreChoice: Equatable, Sendable {
    /// The exact score of the current generator's noised output (a perfectly tracking critic).
    case exact
    /// The exact score of another (earlier) generator: a critic that lags behind G.
    case stale(AffineGenerator2D)
    /// No fake score at all: G would follow the real score alone.
    case none
}

/// Reverse KL and its gradient for an affine generator against a Gaussian mixture, exactly.
public struct KLGradientCheck: Sendable {
    public let mixture: GaussianMixture2D
    /// Trapezoid grid in u: `gridPoints` per axis on [−gridExtent, gridExtent].
    public var gridPoints: Int
    public var gridExtent: Double

    public init(mixture: GaussianMixture2D = .ring(), gridPoints: Int = 401, gridExtent: Double = 8) {
        precondition(gridPoints >= 3 && gridExtent > 0, "KLGradientCheck: need ≥ 3 grid points and a positive extent")
        self.mixture = mixture
        self.gridPoints = gridPoints
        self.gridExtent = gridExtent
    }

    /// The grid's nodes u and trapezoid weights h²·φ(u) (φ the standard normal density).
    func nodes() -> (u: [(Double, Double)], weight: [Double]) {
        let n = gridPoints, h = 2 * gridExtent / Double(n - 1)
        var u: [(Double, Double)] = [], w: [Double] = []
        u.reserveCapacity(n * n)
        w.reserveCapacity(n * n)
        for i in 0..<n {
            let u0 = -gridExtent + Double(i) * h
            for j in 0..<n {
                let u1 = -gridExtent + Double(j) * h
                u.append((u0, u1))
                let edge = (i == 0 || i == n - 1 ? 0.5 : 1) * (j == 0 || j == n - 1 ? 0.5 : 1)
                w.append(edge * h * h * Foundation.exp(-(u0 * u0 + u1 * u1) / 2) / (2 * Double.pi))
            }
        }
        return (u, w)
    }

    /// The points x = b + L·u of the grid for generator g at σ, as [n², 2].
    func points(_ g: AffineGenerator2D, sigma: Double, _ u: [(Double, Double)]) -> Tensor<Double> {
        let L = g.noisedCholesky(sigma: sigma)
        var x = [Double](repeating: 0, count: 2 * u.count)
        for (k, (u0, u1)) in u.enumerated() {
            x[2 * k] = g.b[0] + L.l00 * u0
            x[2 * k + 1] = g.b[1] + L.l10 * u0 + L.l11 * u1
        }
        return Tensor(shape: [u.count, 2], scalars: x)
    }

    /// D_KL(p_fake,σ ‖ p_real,σ) for the affine generator g, by quadrature.
    public func kl(_ g: AffineGenerator2D, sigma: Double) -> Double {
        let (u, weight) = nodes()
        let L = g.noisedCholesky(sigma: sigma)
        let logDet = 2 * Foundation.log(L.l00 * L.l11)
        let logReal = mixture.logDensity(points(g, sigma: sigma, u), sigma: sigma)
        var total = 0.0
        for k in u.indices {
            let logFake = -Foundation.log(2 * Double.pi) - logDet / 2 - (u[k].0 * u[k].0 + u[k].1 * u[k].1) / 2
            total += weight[k] * (logFake - logReal[k])
        }
        return total
    }

    /// ∂KL_σ/∂θ by central differences with step h and h/2, Richardson-extrapolated (error O(h⁴)).
    public func klGradientByFiniteDifferences(_ g: AffineGenerator2D, sigma: Double, step h: Double = 1e-3) -> [Double] {
        let θ = g.parameters
        func central(_ i: Int, _ h: Double) -> Double {
            var plus = θ, minus = θ
            plus[i] += h
            minus[i] -= h
            return (kl(AffineGenerator2D(parameters: plus), sigma: sigma) - kl(AffineGenerator2D(parameters: minus), sigma: sigma)) / (2 * h)
        }
        return θ.indices.map { i in (4 * central(i, h / 2) - central(i, h)) / 3 }
    }

    /// The DMD gradient E[(s_fake − s_real)ᵀ·∂x_t/∂θ] by quadrature over x_t, with E[z | x_t] for
    /// the A entries.
    public func dmdGradientByQuadrature(_ g: AffineGenerator2D, sigma: Double) -> [Double] {
        let (u, weight) = nodes()
        let L = g.noisedCholesky(sigma: sigma)
        let x = points(g, sigma: sigma, u)
        let sReal = mixture.score(x, sigma: [Double](repeating: sigma, count: u.count))
        let sFake = g.score(x, sigma: sigma)
        var grad = [Double](repeating: 0, count: 6)
        for k in u.indices {
            let d0 = sFake.scalars[2 * k] - sReal.scalars[2 * k]
            let d1 = sFake.scalars[2 * k + 1] - sReal.scalars[2 * k + 1]
            // E[z | x] = Aᵀ·L⁻ᵀ·u.
            let w1 = u[k].1 / L.l11, w0 = (u[k].0 - L.l10 * w1) / L.l00
            let z0 = g.a[0] * w0 + g.a[2] * w1, z1 = g.a[1] * w0 + g.a[3] * w1
            let c = [d0 * z0, d0 * z1, d1 * z0, d1 * z1, d0, d1]
            for p in 0..<6 { grad[p] += weight[k] * c[p] }
        }
        return grad
    }

    /// The DMD gradient by Monte-Carlo: `samples` draws of (z, ε) from `rng`, x_t = A·z + b + σ·ε,
    /// g = s_fake(x_t) − s_real(x_t) with s_fake as `fake` says; the mean of gᵀ·∂x_t/∂θ and its
    /// standard error, and the same mean by autograd through the toy's surrogate loss.
    public func dmdGradientMonteCarlo(_ gen: AffineGenerator2D, sigma: Double, samples n: Int,
                                      rng: inout RandomGenerator, fake: FakeScoreChoice = .exact) -> DMDGradientEstimate {
        precondition(n >= 2, "KLGradientCheck: need at least 2 samples, got \(n)")
        let z: Tensor<Double> = rng.normal([n, 2])
        let eps: Tensor<Double> = rng.normal([n, 2])
        let A = Variable(Tensor(shape: [2, 2], scalars: gen.a), requiresGrad: true)
        let b = Variable(Tensor(shape: [2], scalars: gen.b), requiresGrad: true)
        let x = linear(Variable(z), weight: A, bias: b) + Variable(eps * sigma)    // x_t = A·z + b + σ·ε
        let sReal = mixture.score(x.value, sigma: [Double](repeating: sigma, count: n))
        let g: Tensor<Double>
        switch fake {
        case .exact: g = gen.score(x.value, sigma: sigma) - sReal
        case .stale(let earlier): g = earlier.score(x.value, sigma: sigma) - sReal
        case .none: g = sReal * -1
        }
        let loss = 0.5 * mseLoss(x, Variable(x.value - g))                     // ½·mean((x − sg(x − g))²)
        loss.backward()
        let autograd = (A.grad!.scalars + b.grad!.scalars).map { 2 * $0 }       // mean over N of gᵀ·∂x/∂θ
        var sum = [Double](repeating: 0, count: 6), sumSquares = sum
        for i in 0..<n {
            let g0 = g.scalars[2 * i], g1 = g.scalars[2 * i + 1]
            let z0 = z.scalars[2 * i], z1 = z.scalars[2 * i + 1]
            let c = [g0 * z0, g0 * z1, g1 * z0, g1 * z1, g0, g1]
            for p in 0..<6 {
                sum[p] += c[p]
                sumSquares[p] += c[p] * c[p]
            }
        }
        let N = Double(n)
        let mean = sum.map { $0 / N }
        let se = (0..<6).map { p in (Swift.max(0, sumSquares[p] / N - mean[p] * mean[p]) * N / (N - 1) / N).squareRoot() }
        return DMDGradientEstimate(mean: mean, standardError: se, autograd: autograd, samples: n)
    }

    /// A generator like the toy's G at the start: a small blob near the origin, inside the ring.
    public static let collapsedBlob = AffineGenerator2D(a: [0.3, 0.1, -0.1, 0.25], b: [0.2, -0.1])
}
