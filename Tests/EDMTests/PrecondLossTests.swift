// EDM preconditioning and loss: the coefficients' published values, D and the score built
// from F, the loss against a hand computation, and the draw distribution.
import DMD2Core
import DMD2Ops
import EDM
import DMD2TestSupport
import XCTest

final class PrecondLossTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// docs/METHOD.md §1: at σ = 80, c_skip ≈ 3.906e-5, c_out ≈ 0.49999, c_in = 0.0125, c_noise ≈ 1.0955.
    func testCoefficientsAtSigma80() {
        let c = Preconditioning(sigma: 80)
        XCTAssertEqual(c.cSkip, 0.25 / 6400.25, accuracy: 1e-18)
        XCTAssertEqual(c.cSkip, 3.906e-5, accuracy: 1e-8)
        XCTAssertEqual(c.cOut, 0.49999, accuracy: 1e-5)
        XCTAssertEqual(c.cIn, 1 / 6400.25.squareRoot(), accuracy: 1e-18)
        XCTAssertEqual(c.cIn, 0.0125, accuracy: 1e-6)
        XCTAssertEqual(c.cNoise, 1.0955, accuracy: 1e-4)
        // c_skip + c_out²/σ_d² = 1: the denoiser's output variance is that of the data at every σ.
        for σ in [0.002, 0.5, 3, 80] {
            let p = Preconditioning(sigma: σ)
            XCTAssertEqual(p.cSkip + p.cOut * p.cOut / 0.25, 1, accuracy: 1e-14)
        }
    }

    /// D = c_skip·x + c_out·F(c_in·x, c_noise, y) per image, and s = (D − x)/σ².
    func testDenoiserAndScoreFromF() {
        let values = randomParameterValues(tinyConfig.layout.stateEntries, seed: 1)
        let denoiser = Denoiser<Double>(net: unet(tinyConfig, values: values))
        var rng = RandomGenerator(seed: 2)
        let x: Tensor<Double> = rng.normal([2, 2, 8, 8])
        let σ = [0.7, 12.0], y: Tensor<Double> = oneHot([2, nil], count: 3)
        let D = NoGrad.run { denoiser(Variable(x), sigma: σ, classLabels: y) }.value
        let s = NoGrad.run { denoiser.score(Variable(x), sigma: σ, classLabels: y) }.value
        for n in 0..<2 {
            let c = Preconditioning(sigma: σ[n])
            let xn = Tensor(shape: [1, 2, 8, 8], scalars: Array(x.scalars[n * 128 ..< (n + 1) * 128]))
            let F = NoGrad.run {
                denoiser.net(Variable(xn * c.cIn), noiseLabels: Tensor(shape: [1], scalars: [c.cNoise]),
                             classLabels: Tensor(shape: [1, 3], scalars: Array(y.scalars[n * 3 ..< n * 3 + 3])))
            }.value
            for k in 0..<128 {
                let expected = c.cSkip * xn.scalars[k] + c.cOut * F.scalars[k]
                XCTAssertEqual(D.scalars[n * 128 + k], expected, accuracy: 1e-12)
                XCTAssertEqual(s.scalars[n * 128 + k], (expected - xn.scalars[k]) / (σ[n] * σ[n]), accuracy: 1e-11)
            }
        }
    }

    /// L = mean over elements of λ(σ)·(D(x + σε; σ, y′) − x)², y′ with dropped labels zeroed.
    func testLossMatchesHandComputation() {
        let values = randomParameterValues(tinyConfig.layout.stateEntries, seed: 3)
        let denoiser = Denoiser<Double>(net: unet(tinyConfig, values: values))
        var rng = RandomGenerator(seed: 4)
        let x: Tensor<Double> = rng.normal([2, 2, 8, 8])
        let y: Tensor<Double> = oneHot([1, 2], count: 3)
        let draws = EDMLoss.Draws<Double>(sigma: [0.1, 5], noise: rng.normal([2, 2, 8, 8]), dropLabel: [false, true])
        let L = NoGrad.run { EDMLoss()(denoiser, images: Variable(x), classLabels: y, draws: draws) }.value.scalar
        var expected = 0.0
        for n in 0..<2 {
            let xn = Tensor(shape: [1, 2, 8, 8], scalars: Array(x.scalars[n * 128 ..< (n + 1) * 128]))
            let en = Tensor(shape: [1, 2, 8, 8], scalars: Array(draws.noise.scalars[n * 128 ..< (n + 1) * 128]))
            let yn: Tensor<Double> = n == 0 ? oneHot([1], count: 3) : .zeros([1, 3])
            let D = NoGrad.run { denoiser(Variable(xn + en * draws.sigma[n]), sigma: [draws.sigma[n]], classLabels: yn) }.value
            let λ = (draws.sigma[n] * draws.sigma[n] + 0.25) / (draws.sigma[n] * draws.sigma[n] * 0.25)
            expected += zip(D.scalars, xn.scalars).map { λ * ($0 - $1) * ($0 - $1) }.reduce(0, +)
        }
        expected /= 256
        XCTAssertEqual(L, expected, accuracy: 1e-12 * abs(expected))
        XCTAssertEqual(EDMLoss.weight(sigma: 80), (6400 + 0.25) / (6400 * 0.25), accuracy: 1e-15)
    }

    /// ln σ ~ N(−1.2, 1.2²); labels dropped at the given rate; draws reproducible.
    func testDrawDistribution() {
        var rng = RandomGenerator(seed: 5)
        let loss = EDMLoss(labelDropout: 0.25)
        let d: EDMLoss.Draws<Float> = loss.draw(shape: [20000, 1, 1, 1], rng: &rng)
        let logs = d.sigma.map { Double.log($0) }
        let mean = logs.reduce(0, +) / 20000
        let std = (logs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 20000).squareRoot()
        XCTAssertEqual(mean, -1.2, accuracy: 0.03)                       // ±3.5 standard errors
        XCTAssertEqual(std, 1.2, accuracy: 0.03)
        XCTAssertEqual(Double(d.dropLabel.filter { $0 }.count) / 20000, 0.25, accuracy: 0.012)
        var a = RandomGenerator(seed: 6), b = RandomGenerator(seed: 6)
        let d1: EDMLoss.Draws<Float> = loss.draw(shape: [3, 1, 4, 4], rng: &a)
        let d2: EDMLoss.Draws<Float> = loss.draw(shape: [3, 1, 4, 4], rng: &b)
        XCTAssertEqual(d1.sigma, d2.sigma)
        XCTAssertEqual(d1.noise, d2.noise)
        XCTAssertEqual(d1.dropLabel, d2.dropLabel)
    }

    /// The generator-drawing convenience equals drawing first; training-mode dropout masks.
    func testLossConvenience() {
        var rng = RandomGenerator(seed: 7)
        let net = UNet<Float>(config: tinyConfig, rng: &rng)
        let denoiser = Denoiser(net: net)
        let x = Variable<Float>(rng.normal([2, 2, 8, 8]))
        let loss = EDMLoss(config: tinyConfig)
        var a = RandomGenerator(seed: 8), b = RandomGenerator(seed: 8)
        let l1 = NoGrad.run { loss(denoiser, images: x, classLabels: nil, rng: &a) }.value
        let draws: EDMLoss.Draws<Float> = loss.draw(shape: x.shape, rng: &b)
        let l2 = NoGrad.run { loss(denoiser, images: x, classLabels: nil, draws: draws) }.value
        XCTAssertEqual(l1, l2)
        XCTAssertEqual(a, b)
        XCTAssertNil(net.trainingDropout(rng: &a))
        var withDropout = tinyConfig
        withDropout.dropout = 0.1
        XCTAssertEqual(UNet<Float>(config: withDropout, rng: &rng).trainingDropout(rng: &a)?.p, 0.1)
    }

    /// End to end: plain gradient descent on a fixed batch and fixed draws lowers the loss.
    func testGradientDescentLowersTheLoss() {
        var rng = RandomGenerator(seed: 9)
        let denoiser = Denoiser(net: UNet<Float>(config: tinyConfig, rng: &rng))
        let x = Variable<Float>(rng.normal([4, 2, 8, 8], std: 0.5))
        let y: Tensor<Float> = oneHot([0, 1, 2, nil], count: 3)
        let loss = EDMLoss()
        let draws: EDMLoss.Draws<Float> = loss.draw(shape: x.shape, rng: &rng)
        var values: [Float] = []
        for _ in 0..<25 {
            let L = loss(denoiser, images: x, classLabels: y, draws: draws)
            values.append(L.value.scalar)
            denoiser.parameters.zeroGrad()
            L.backward()
            for p in denoiser.parameters.variables { p.value = p.value - p.grad! * 0.1 }
        }
        XCTAssertTrue(values.allSatisfy(\.isFinite))
        XCTAssertLessThan(values.last!, 0.7 * values.first!, "losses \(values)")
    }
}
