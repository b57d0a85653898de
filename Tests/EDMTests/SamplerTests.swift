// Samplers: Karras time steps against the formula and DMD2's reference grid values, NFE, and
// convergence on data whose denoiser and ODE solution are known in closed form.
//
// Gaussian data N(μ, s²) per element: D(x; σ) = μ + s²/(s² + σ²)·(x − μ), and along the
// probability-flow ODE (x − μ)/√(s² + σ²) is constant.
import DMD2Core
import EDM
import DMD2TestSupport
import XCTest

final class SamplerTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    static let μ = 0.3, s = 0.5

    static func gaussianDenoiser(_ x: Tensor<Double>, _ σ: Double) -> Tensor<Double> {
        Tensor(shape: x.shape, scalars: x.scalars.map { μ + s * s / (s * s + σ * σ) * ($0 - μ) })
    }

    func testKarrasTimeSteps() {
        let n = 5, ρ = 7.0
        let t = KarrasSchedule.sigmas(steps: n)
        XCTAssertEqual(t.count, n + 1)
        XCTAssertEqual(t[0], 80, accuracy: 1e-12)
        XCTAssertEqual(t[n - 1], 0.002, accuracy: 1e-15)
        XCTAssertEqual(t[n], 0)
        for i in 0..<n {
            let expected = Double.pow(Double.pow(80, 1 / ρ) + Double(i) / Double(n - 1) * (Double.pow(0.002, 1 / ρ) - Double.pow(80, 1 / ρ)), ρ)
            XCTAssertEqual(t[i], expected, accuracy: 1e-13 * expected)
        }
        XCTAssertTrue(zip(t, t.dropFirst()).allSatisfy { $0 > $1 })
        XCTAssertEqual(KarrasSchedule.sigmas(steps: 1), [80, 0])
        // DMD2's grid (docs/METHOD.md §2): 1000 Karras levels reversed, K[0] = 0.002, K[999] = 80.
        let K = Array(KarrasSchedule.sigmas(steps: 1000).dropLast().reversed())
        for (i, v, tol) in [(20, 0.00323, 5e-6), (250, 0.170, 5e-4), (500, 2.527, 5e-4), (750, 17.62, 5e-3), (980, 72.05, 5e-3)] {
            XCTAssertEqual(K[i], v, accuracy: tol, "K[\(i)]")
        }
    }

    func testNFE() {
        var z = RandomGenerator(seed: 1)
        let latents: Tensor<Double> = z.normal([3])
        for (method, steps, stochastic, expected) in [(EDMSampler.Method.heun, 1, false, 1), (.heun, 18, false, 35),
                                                       (.euler, 18, false, 18), (.heun, 10, true, 19), (.euler, 4, true, 4)] {
            var calls = 0
            var rng = RandomGenerator(seed: 2)
            let sampler = EDMSampler(method: method, steps: steps, stochastic: stochastic ? .edmImageNet64 : nil)
            let r = sampler.sample(latents: latents, rng: &rng) { x, σ in calls += 1; return Self.gaussianDenoiser(x, σ) }
            XCTAssertEqual(r.nfe, expected)
            XCTAssertEqual(calls, expected)
            XCTAssertEqual(sampler.nfe, expected)
        }
    }

    /// Data that is a single point x₀: D ≡ x₀, the ODE is linear in σ, and every method lands on x₀.
    func testSinglePointDataIsReachedExactly() {
        let x0 = Tensor<Double>(shape: [4], scalars: [0.5, -1, 0.25, 0])
        var rng = RandomGenerator(seed: 3)
        for method in EDMSampler.Method.allCases {
            let r = EDMSampler(method: method, steps: 7).sample(shape: [4], rng: &rng) { _, _ in x0 }
            XCTAssertLessThan(relativeError(r.x, x0), 1e-14)
        }
    }

    /// Global error against the exact ODE solution: Heun is second order, Euler first order.
    /// The final step to σ = 0 returns D(x; σ_min) in both methods and is applied to the exact
    /// state at σ_min in the reference, so the error measured is that of the n − 1 ODE steps.
    func testConvergenceOrder() {
        let (μ, s) = (Self.μ, Self.s)
        let z = Tensor<Double>(shape: [3], scalars: [1.3, -0.4, 2.1])
        let σMax = 80.0, σMin = 0.002
        let exactAtMin = z.scalars.map { μ + (σMax * $0 - μ) * ((s * s + σMin * σMin) / (s * s + σMax * σMax)).squareRoot() }
        let reference = Self.gaussianDenoiser(Tensor(shape: [3], scalars: exactAtMin), σMin)
        func error(_ method: EDMSampler.Method, _ n: Int) -> Double {
            let r = EDMSampler(method: method, steps: n).sample(latents: z, churnNoise: { _ in fatalError("deterministic") },
                                                                denoise: Self.gaussianDenoiser)
            return zip(r.x.scalars, reference.scalars).map { abs($0 - $1) }.max()!
        }
        for (method, order) in [(EDMSampler.Method.heun, 2.0), (.euler, 1.0)] {
            let e = [32, 64, 128, 256].map { error(method, $0) }
            let observed = zip(e, e.dropFirst()).map { Double.log2($0 / $1) }
            for o in observed.suffix(2) { XCTAssertEqual(o, order, accuracy: 0.15, "\(method): errors \(e)") }
        }
        XCTAssertLessThan(error(.heun, 256), 1e-3)
        XCTAssertLessThan(error(.heun, 64) * 10, error(.euler, 64))
    }

    /// Sampling N(μ, s²) data: the deterministic and the stochastic sampler (EDM's ImageNet
    /// churn, 256 steps) both end with the data's mean and standard deviation (20,000
    /// independent elements).
    func testSamplesHaveTheDataDistribution() {
        let count = 20000
        for stochastic in [nil, StochasticSampling(churn: 40, sMin: 0.05, sMax: 50, sNoise: 1)] {
            var rng = RandomGenerator(seed: 4)
            let r = EDMSampler(steps: 256, stochastic: stochastic).sample(shape: [count], rng: &rng, denoise: Self.gaussianDenoiser)
            let mean = r.x.scalars.reduce(0, +) / Double(count)
            let std = (r.x.scalars.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(count)).squareRoot()
            XCTAssertEqual(mean, Self.μ, accuracy: 4 * Self.s / Double(count).squareRoot(), "stochastic: \(stochastic != nil)")
            print("N(\(Self.μ), \(Self.s)²) sampled, stochastic \(stochastic != nil): mean \(mean), std \(std)")
            XCTAssertEqual(std, Self.s, accuracy: 0.01, "stochastic: \(stochastic != nil)")
        }
    }

    /// Seeded runs repeat; S_churn = 0 is the deterministic sampler; churn draws noise.
    func testReproducibility() {
        func run(_ seed: UInt64, _ stochastic: StochasticSampling?) -> Tensor<Double> {
            var rng = RandomGenerator(seed: seed)
            return EDMSampler(steps: 8, stochastic: stochastic).sample(shape: [16], rng: &rng, denoise: Self.gaussianDenoiser).x
        }
        XCTAssertEqual(run(5, .edmImageNet64), run(5, .edmImageNet64))
        XCTAssertNotEqual(run(5, .edmImageNet64), run(6, .edmImageNet64))
        XCTAssertEqual(run(5, StochasticSampling(churn: 0)), run(5, nil))
        XCTAssertNotEqual(run(5, .edmImageNet64), run(5, nil))
    }

    /// The network as a sampler's denoiser, with classifier-free guidance.
    func testNetworkSamplingAndGuidance() {
        let denoiser = Denoiser<Float>(net: unet(tinyConfig, values: randomParameterValues(tinyConfig.layout.stateEntries, seed: 7)))
        let y: Tensor<Float> = oneHot([0, 2], count: 3)
        var rng = RandomGenerator(seed: 8)
        let x: Tensor<Double> = rng.normal([2, 2, 8, 8])
        let conditional = denoiser.samplingFunction(classLabels: y)(x, 1.5)
        let unconditional = denoiser.samplingFunction(classLabels: nil)(x, 1.5)
        XCTAssertLessThan(relativeError(denoiser.samplingFunction(classLabels: y, guidance: 1)(x, 1.5), conditional), 1e-12)
        XCTAssertLessThan(relativeError(denoiser.samplingFunction(classLabels: y, guidance: 0)(x, 1.5), unconditional), 1e-12)
        let w3 = denoiser.samplingFunction(classLabels: y, guidance: 3)(x, 1.5)
        XCTAssertLessThan(relativeError(w3, unconditional + (conditional - unconditional) * 3), 1e-12)

        var a = RandomGenerator(seed: 9), b = RandomGenerator(seed: 9)
        let sampler = EDMSampler(steps: 3)
        let r1 = sampler.sample(shape: [2, 2, 8, 8], rng: &a, denoise: denoiser.samplingFunction(classLabels: y, guidance: 2))
        let r2 = sampler.sample(shape: [2, 2, 8, 8], rng: &b, denoise: denoiser.samplingFunction(classLabels: y, guidance: 2))
        XCTAssertEqual(r1.x, r2.x)
        XCTAssertEqual(r1.nfe, 5)
        XCTAssertTrue(r1.x.isFinite)
    }
}
