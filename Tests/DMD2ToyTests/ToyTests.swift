import DMD2Core
import DMD2Ops
@testable import DMD2Toy
import XCTest

final class GaussianMixtureTests: XCTestCase {
    override func setUp() { Threads.count = 1 }

    /// The closed-form score equals central differences of the closed-form log-density.
    func testScoreIsTheGradientOfTheLogDensity() {
        let mixture = GaussianMixture2D.ring(count: 5, radius: 1.3, std: 0.2)
        var rng = RandomGenerator(seed: 3)
        let x: Tensor<Double> = rng.normal([6, 2])
        for sigma in [0.0, 0.05, 0.7, 4.0] {
            let s = mixture.score(x, sigma: [Double](repeating: sigma, count: 6))
            let h = 1e-5
            for j in 0..<x.count {
                var plus = x.scalars, minus = x.scalars
                plus[j] += h
                minus[j] -= h
                let fd = (mixture.logDensity(Tensor(shape: x.shape, scalars: plus), sigma: sigma)[j / 2]
                    - mixture.logDensity(Tensor(shape: x.shape, scalars: minus), sigma: sigma)[j / 2]) / (2 * h)
                XCTAssertEqual(s.scalars[j], fd, accuracy: 1e-6 * max(1, Swift.abs(fd)), "σ \(sigma), entry \(j)")
            }
        }
    }

    /// One component: the ideal denoiser is the Gaussian posterior mean μ + s²/(s²+σ²)·(x − μ).
    func testDenoiserOfOneGaussianIsThePosteriorMean() {
        let mixture = GaussianMixture2D(means: [(0.3, -0.2)], std: 0.5)
        let x = Tensor<Double>(shape: [2, 2], scalars: [1, 2, -3, 0.5])
        let sigma = [0.1, 2.0]
        let d = mixture.denoise(x, sigma: sigma)
        for i in 0..<2 {
            let k = 0.25 / (0.25 + sigma[i] * sigma[i])
            XCTAssertEqual(d.scalars[2 * i], 0.3 + k * (x.scalars[2 * i] - 0.3), accuracy: 1e-12)
            XCTAssertEqual(d.scalars[2 * i + 1], -0.2 + k * (x.scalars[2 * i + 1] + 0.2), accuracy: 1e-12)
        }
    }

    func testSamplesFollowTheMixture() {
        let mixture = GaussianMixture2D.ring(count: 4, radius: 2, std: 0.1)
        var rng = RandomGenerator(seed: 1)
        let (x, component) = mixture.sample(4000, rng: &rng)
        let nearest = mixture.nearestComponent(x)
        XCTAssertEqual(zip(nearest, component).filter { $0.0.component == $0.1 }.count, 4000)
        for m in 0..<4 { XCTAssertEqual(Double(component.filter { $0 == m }.count) / 4000, 0.25, accuracy: 0.03) }
        XCTAssertEqual(mixture.dataStd, (2.0 + 0.01).squareRoot(), accuracy: 1e-12)   // radius²/2 + s²
    }
}

final class ToyDMDTests: XCTestCase {
    override func setUp() { Threads.count = 1 }

    /// ∂L_DM/∂x_g = g/(2N): the surrogate's gradient is the normalised score difference, and
    /// its value is ½·mean(g²).
    func testDistributionMatchingGradientIsTheNormalisedScoreDifference() {
        var config = ToyDMDConfig()
        config.iterations = 0
        let toy = ToyDMD(config: config)
        var rng = RandomGenerator(seed: 5)
        let x = Variable<Double>(rng.normal([8, 2]), requiresGrad: true)
        let sigma = (0..<8).map { toy.sigmaGrid[100 * $0 + 50] }
        let noise: Tensor<Double> = rng.normal([8, 2])
        let loss = toy.distributionMatchingLoss(x, sigma: sigma, noise: noise)
        loss.backward()
        // g from its definition.
        let xt = Tensor(shape: [8, 2], scalars: (0..<16).map { x.value.scalars[$0] + sigma[$0 / 2] * noise.scalars[$0] })
        let a = toy.mixture.denoise(xt, sigma: sigma)
        let b = NoGrad.run { toy.fake(Variable(xt), sigma: sigma).value }
        var sumSquares = 0.0
        for i in 0..<8 {
            let w = (Swift.abs(x.value.scalars[2 * i] - a.scalars[2 * i]) + Swift.abs(x.value.scalars[2 * i + 1] - a.scalars[2 * i + 1])) / 2
            for c in 0..<2 {
                let g = (b.scalars[2 * i + c] - a.scalars[2 * i + c]) / w
                sumSquares += g * g
                XCTAssertEqual(x.grad!.scalars[2 * i + c], g / 16, accuracy: 1e-12 * max(1, Swift.abs(g)))
            }
        }
        XCTAssertEqual(loss.value.scalar, 0.5 * sumSquares / 16, accuracy: 1e-12 * max(1, sumSquares))
    }

    /// The teacher ODE with the exact denoiser lands its samples on the mixture's components.
    func testTeacherODESamplesLieOnTheMixture() {
        let mixture = GaussianMixture2D.ring()
        var rng = RandomGenerator(seed: 2)
        let y = ToyDMD.teacherODE(mixture, latents: rng.normal([500, 2]), steps: 32)
        let q = ToyDMD.quality(of: y, mixture)
        XCTAssertGreaterThan(q.precision, 0.97)
        XCTAssertEqual(q.coverage, 1)
    }

    /// A short run (120 generator updates) moves G's samples from a blob at the centre, far from
    /// every component, out towards all of them. (Concentrating on the 8 discs takes thousands of
    /// iterations: `dmd2 toy` shows it; here only the direction of learning is checked.)
    func testShortRunLearnsTheMixture() {
        var config = ToyDMDConfig()
        config.iterations = 600
        config.criticWarmStart = 200
        config.batch = 128
        config.snapshots = [0, 600]
        let toy = ToyDMD(config: config)
        func medianDistance(_ x: Tensor<Double>) -> Double {
            let d = toy.mixture.nearestComponent(x).map(\.distance).sorted()
            return d[d.count / 2]
        }
        let start = toy.samples(toy.evaluationNoise)
        let before = ToyDMD.quality(of: start, toy.mixture)
        toy.run()
        let after = toy.quality()
        let end = toy.samples(toy.evaluationNoise)
        XCTAssertEqual(before.precision, 0, "the untrained generator should not already fit: \(before)")
        XCTAssertGreaterThan(after.precision, 0.15, "after: \(after)")
        XCTAssertGreaterThanOrEqual(after.coverage, 0.75, "after: \(after)")
        XCTAssertLessThan(medianDistance(end), 0.5 * medianDistance(start),
                          "median distance to the nearest component, in std: \(medianDistance(start)) → \(medianDistance(end))")
        XCTAssertEqual(toy.snapshots.map(\.iteration), [0, 600])
    }
}
