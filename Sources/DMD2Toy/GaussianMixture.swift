// A 2-D Gaussian mixture whose noised score is known in closed form: the "teacher" of the toy.
//
// p(x) = Σ_m π_m N(x; μ_m, s² I). Adding noise of level σ (x_σ = x + σ·ε) keeps it a mixture:
//   p_σ(x) = Σ_m π_m N(x; μ_m, (s² + σ²) I)
// so with v = s² + σ² and responsibilities r_m(x) = π_m N(x; μ_m, v I) / p_σ(x):
//   score       ∇ₓ log p_σ(x) = Σ_m r_m(x) (μ_m − x) / v
//   denoiser    D(x; σ) = E[x₀ | x_σ = x] = x + σ²·∇ₓ log p_σ(x)          (Tweedie)
// This is exactly what a perfectly trained EDM teacher would output, so the toy's "μ_real" has
// no approximation error and every picture shows the method alone.
import DMD2Core
import Foundation

/// An isotropic Gaussian mixture in the plane.
public struct GaussianMixture2D: Sendable {
    public var means: [(Double, Double)]
    public var weights: [Double]
    /// s, the standard deviation of every component.
    public var std: Double

    public init(means: [(Double, Double)], weights: [Double]? = nil, std: Double) {
        precondition(!means.isEmpty, "GaussianMixture2D: no components")
        precondition(std > 0, "GaussianMixture2D: std must be positive, got \(std)")
        let w = weights ?? [Double](repeating: 1, count: means.count)
        precondition(w.count == means.count && w.allSatisfy { $0 > 0 },
                     "GaussianMixture2D: \(w.count) positive weights needed for \(means.count) components")
        let total = w.reduce(0, +)
        self.means = means
        self.weights = w.map { $0 / total }
        self.std = std
    }

    /// `count` equally weighted components on a circle of `radius` (the classic "ring" toy).
    public static func ring(count: Int = 8, radius: Double = 1, std: Double = 0.08) -> GaussianMixture2D {
        GaussianMixture2D(
            means: (0..<count).map { m in
                let a = 2 * Double.pi * Double(m) / Double(count)
                return (radius * Foundation.cos(a), radius * Foundation.sin(a))
            },
            std: std)
    }

    /// The per-coordinate standard deviation of the data, EDM's σ_d for this distribution.
    public var dataStd: Double {
        let mx = zip(weights, means).map { $0 * $1.0 }.reduce(0, +)
        let my = zip(weights, means).map { $0 * $1.1 }.reduce(0, +)
        let vx = zip(weights, means).map { $0 * ($1.0 - mx) * ($1.0 - mx) }.reduce(0, +)
        let vy = zip(weights, means).map { $0 * ($1.1 - my) * ($1.1 - my) }.reduce(0, +)
        return ((vx + vy) / 2 + std * std).squareRoot()
    }

    /// `n` samples as [n, 2], with the component each came from.
    public func sample(_ n: Int, rng: inout RandomGenerator) -> (x: Tensor<Double>, component: [Int]) {
        var scalars = [Double](repeating: 0, count: 2 * n)
        var component = [Int](repeating: 0, count: n)
        for i in 0..<n {
            var u = rng.nextUniform(), m = 0
            while m < weights.count - 1 && u >= weights[m] { u -= weights[m]; m += 1 }
            let (e0, e1) = rng.nextNormalPair()
            scalars[2 * i] = means[m].0 + std * e0
            scalars[2 * i + 1] = means[m].1 + std * e1
            component[i] = m
        }
        return (Tensor(shape: [n, 2], scalars: scalars), component)
    }

    /// Responsibilities r_m(x) of p_σ for each row of x [n, 2], as [n][m] (log-sum-exp stable).
    func responsibilities(_ x: Tensor<Double>, sigma: Double) -> [[Double]] {
        let v = std * std + sigma * sigma
        return (0..<x.shape[0]).map { i in
            let px = x.scalars[2 * i], py = x.scalars[2 * i + 1]
            let logits = zip(weights, means).map { w, mu in
                Foundation.log(w) - ((px - mu.0) * (px - mu.0) + (py - mu.1) * (py - mu.1)) / (2 * v)
            }
            let top = logits.max()!
            let e = logits.map { Foundation.exp($0 - top) }
            let z = e.reduce(0, +)
            return e.map { $0 / z }
        }
    }

    /// log p_σ(x) per row of x [n, 2].
    public func logDensity(_ x: Tensor<Double>, sigma: Double = 0) -> [Double] {
        precondition(x.rank == 2 && x.shape[1] == 2, "GaussianMixture2D: points must be [n, 2], got \(x.shape)")
        let v = std * std + sigma * sigma
        return (0..<x.shape[0]).map { i in
            let px = x.scalars[2 * i], py = x.scalars[2 * i + 1]
            let terms = zip(weights, means).map { w, mu in
                Foundation.log(w) - Foundation.log(2 * Double.pi * v)
                    - ((px - mu.0) * (px - mu.0) + (py - mu.1) * (py - mu.1)) / (2 * v)
            }
            let top = terms.max()!
            return top + Foundation.log(terms.map { Foundation.exp($0 - top) }.reduce(0, +))
        }
    }

    /// ∇ₓ log p_σ(x) for x [n, 2], one σ per row.
    public func score(_ x: Tensor<Double>, sigma: [Double]) -> Tensor<Double> {
        precondition(x.rank == 2 && x.shape[1] == 2 && sigma.count == x.shape[0],
                     "GaussianMixture2D.score: points \(x.shape) with \(sigma.count) σ values")
        var out = [Double](repeating: 0, count: x.count)
        for i in 0..<x.shape[0] {
            let one = Tensor(shape: [1, 2], scalars: [x.scalars[2 * i], x.scalars[2 * i + 1]])
            let r = responsibilities(one, sigma: sigma[i])[0]
            let v = std * std + sigma[i] * sigma[i]
            for (m, mu) in means.enumerated() {
                out[2 * i] += r[m] * (mu.0 - x.scalars[2 * i]) / v
                out[2 * i + 1] += r[m] * (mu.1 - x.scalars[2 * i + 1]) / v
            }
        }
        return Tensor(shape: x.shape, scalars: out)
    }

    /// The ideal denoiser D(x; σ) = x + σ²·score, for x [n, 2], one σ per row.
    public func denoise(_ x: Tensor<Double>, sigma: [Double]) -> Tensor<Double> {
        let s = score(x, sigma: sigma)
        var out = x.scalars
        for j in 0..<out.count {
            let variance: Double = sigma[j / 2] * sigma[j / 2]
            out[j] += variance * s.scalars[j]
        }
        return Tensor(shape: x.shape, scalars: out)
    }

    /// The component nearest to each row of x [n, 2] and its distance in units of `std`.
    public func nearestComponent(_ x: Tensor<Double>) -> [(component: Int, distance: Double)] {
        (0..<x.shape[0]).map { i in
            let px = x.scalars[2 * i], py = x.scalars[2 * i + 1]
            let d = means.map { ((px - $0.0) * (px - $0.0) + (py - $0.1) * (py - $0.1)).squareRoot() / std }
            let m = d.indices.min { d[$0] < d[$1] }!
            return (m, d[m])
        }
    }
}
