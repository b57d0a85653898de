// EDM's samplers for the probability-flow ODE dx/dσ = (x − D(x; σ))/σ (Karras et al. 2022,
// Algorithms 1 and 2; docs/METHOD.md §1). The state x and every σ are Double (the reference runs
// its ODE in float64); the denoiser is called on the state converted to its own precision.
//
// Time steps (ρ = 7):  σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i < n;  σ_n = 0.
// Start: x_0 = σ_0·z, z ~ N(0, I). Step i (σ = σ_i, σ' = σ_{i+1}):
//   stochastic only: γ = min(S_churn/n, √2 − 1) if S_min ≤ σ ≤ S_max else 0;  σ̂ = σ·(1 + γ);
//                    x̂ = x + √(σ̂² − σ²)·S_noise·ε  (ε drawn only when γ > 0);  else σ̂ = σ, x̂ = x
//   Euler:  d = (x̂ − D(x̂; σ̂))/σ̂;  x' = x̂ + (σ' − σ̂)·d
//   Heun:   when σ' > 0, d' = (x' − D(x'; σ'))/σ';  x' = x̂ + (σ' − σ̂)·(d + d')/2
// Network evaluations (NFE): Euler n, Heun 2n − 1 (the last step, to σ = 0, has no correction).
// Classifier-free guidance: D = D(x; σ, ∅) + w·(D(x; σ, y) − D(x; σ, ∅)) (w = 1: conditional).
import DMD2Core
import DMD2Ops

/// Karras et al.'s noise levels.
public enum KarrasSchedule {
    /// n + 1 levels, decreasing from σ_max to σ_min (n points, uniform in σ^{1/ρ}), then 0.
    /// One step gives [σ_max, 0].
    public static func sigmas(steps n: Int, sigmaMin: Double = 0.002, sigmaMax: Double = 80, rho: Double = 7) -> [Double] {
        precondition(n >= 1, "KarrasSchedule: need at least one step, got \(n)")
        precondition(0 < sigmaMin && sigmaMin <= sigmaMax && rho > 0,
                     "KarrasSchedule: need 0 < σ_min ≤ σ_max and ρ > 0, got \(sigmaMin), \(sigmaMax), \(rho)")
        let a = Double.pow(sigmaMax, 1 / rho), b = Double.pow(sigmaMin, 1 / rho)
        var s = (0..<n).map { i in n == 1 ? sigmaMax : Double.pow(a + Double(i) / Double(n - 1) * (b - a), rho) }
        s.append(0)
        return s
    }
}

/// The "churn" of EDM's stochastic sampler: noise added back before each step in [S_min, S_max].
public struct StochasticSampling: Sendable, Equatable, Codable {
    public var churn: Double
    public var sMin: Double
    public var sMax: Double
    public var sNoise: Double

    public init(churn: Double, sMin: Double = 0, sMax: Double = .infinity, sNoise: Double = 1) {
        self.churn = churn
        self.sMin = sMin
        self.sMax = sMax
        self.sNoise = sNoise
    }

    /// EDM's ImageNet-64 setting (FID 1.36 at 256 Heun steps): S_churn 40, S_min 0.05,
    /// S_max 50, S_noise 1.003.
    public static let edmImageNet64 = StochasticSampling(churn: 40, sMin: 0.05, sMax: 50, sNoise: 1.003)
}

/// A sample and its cost.
public struct SampleResult {
    /// The final state, at σ = 0.
    public var x: Tensor<Double>
    /// Denoiser evaluations made.
    public var nfe: Int
}

/// EDM's Euler / Heun sampler, deterministic or stochastic.
public struct EDMSampler: Sendable, Equatable {
    public enum Method: String, Sendable, Codable, CaseIterable {
        case euler, heun
    }

    /// D(x; σ) on a Double state (a batch sharing one σ).
    public typealias DenoiseFunction = (_ x: Tensor<Double>, _ sigma: Double) -> Tensor<Double>

    public var method: Method
    public var steps: Int
    public var sigmaMin: Double
    public var sigmaMax: Double
    public var rho: Double
    /// nil: deterministic.
    public var stochastic: StochasticSampling?

    public init(method: Method = .heun, steps: Int, sigmaMin: Double = 0.002, sigmaMax: Double = 80, rho: Double = 7,
                stochastic: StochasticSampling? = nil) {
        self.method = method
        self.steps = steps
        self.sigmaMin = sigmaMin
        self.sigmaMax = sigmaMax
        self.rho = rho
        self.stochastic = stochastic
    }

    /// The noise levels σ_0 … σ_n = 0.
    public var sigmas: [Double] { KarrasSchedule.sigmas(steps: steps, sigmaMin: sigmaMin, sigmaMax: sigmaMax, rho: rho) }

    /// Denoiser evaluations per sample: n (Euler) or 2n − 1 (Heun).
    public var nfe: Int { method == .heun ? 2 * steps - 1 : steps }

    /// Integrate from x_0 = σ_0·z (`latents` z ~ N(0, I)). `churnNoise(i)` supplies ε of the
    /// state's shape for step i; it is called only at steps that add noise (γ > 0).
    public func sample(
        latents z: Tensor<Double>, churnNoise: (_ step: Int) -> Tensor<Double>, denoise: DenoiseFunction
    ) -> SampleResult {
        let t = sigmas
        var nfe = 0
        func d(_ x: Tensor<Double>, _ σ: Double) -> Tensor<Double> {          // (x − D(x; σ))/σ
            nfe += 1
            let D = denoise(x, σ)
            precondition(D.shape == x.shape, "EDMSampler: denoiser returned \(D.shape) for a state of \(x.shape)")
            return (x - D) * (1 / σ)
        }
        var x = z * t[0]
        for i in 0..<steps {
            let σ = t[i], σNext = t[i + 1]
            // Churn: raise σ to σ̂ by adding fresh noise.
            var σHat = σ, xHat = x
            if let s = stochastic, s.sMin <= σ && σ <= s.sMax {
                let γ = min(s.churn / Double(steps), 2.0.squareRoot() - 1)
                if γ > 0 {
                    σHat = σ * (1 + γ)
                    let ε = churnNoise(i)
                    precondition(ε.shape == x.shape, "EDMSampler: churn noise \(ε.shape) for a state of \(x.shape)")
                    xHat = x + ε * ((σHat * σHat - σ * σ).squareRoot() * s.sNoise)
                }
            }
            // Euler step, then Heun's trapezoid correction unless stepping to σ = 0.
            let dCur = d(xHat, σHat)
            x = xHat + dCur * (σNext - σHat)
            if method == .heun && σNext > 0 {
                let dNext = d(x, σNext)
                x = xHat + (dCur + dNext) * (0.5 * (σNext - σHat))
            }
        }
        return SampleResult(x: x, nfe: nfe)
    }

    /// `sample` with churn noise drawn from `rng` (standard normals, one tensor per noisy step).
    public func sample(latents z: Tensor<Double>, rng: inout RandomGenerator, denoise: DenoiseFunction) -> SampleResult {
        var generator = rng
        defer { rng = generator }
        return sample(latents: z, churnNoise: { _ in generator.normal(z.shape) }, denoise: denoise)
    }

    /// `sample` with latents of `shape` drawn from `rng` first, then the churn noise.
    public func sample(shape: [Int], rng: inout RandomGenerator, denoise: DenoiseFunction) -> SampleResult {
        let z: Tensor<Double> = rng.normal(shape)
        return sample(latents: z, rng: &rng, denoise: denoise)
    }
}

// MARK: - The network as a sampler's denoiser

extension Denoiser {
    /// D(x; σ, y) for a Double state, run without recording gradients in T precision.
    /// With `guidance` w (needs labels): D(x; σ, ∅) + w·(D(x; σ, y) − D(x; σ, ∅)).
    public func samplingFunction(classLabels: Tensor<T>?, guidance: Double? = nil) -> EDMSampler.DenoiseFunction {
        precondition(guidance == nil || classLabels != nil, "Denoiser: classifier-free guidance needs class labels")
        return { x, σ in
            NoGrad.run {
                let input = Variable(x.converted(to: T.self))
                let conditional = self(input, sigma: σ, classLabels: classLabels).value.converted(to: Double.self)
                guard let w = guidance else { return conditional }
                let unconditional = self(input, sigma: σ, classLabels: nil).value.converted(to: Double.self)
                return guided(unconditional: unconditional, conditional: conditional, scale: w)
            }
        }
    }
}

/// Classifier-free guidance: D_∅ + w·(D_y − D_∅).
public func guided(unconditional: Tensor<Double>, conditional: Tensor<Double>, scale w: Double) -> Tensor<Double> {
    unconditional + (conditional - unconditional) * w
}
