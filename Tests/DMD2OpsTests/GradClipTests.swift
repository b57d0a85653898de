// Tests of clipGradNorm (GradClip.swift): PyTorch's clip_grad_norm_ convention.
import DMD2Core
import DMD2Ops
import DMD2TestSupport
import XCTest

final class GradClipTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// Two parameters with gradients [3, 4] and [12] (global norm √(9 + 16 + 144) = 13),
    /// and one without a gradient.
    func makeParameters<T: TensorScalar>(_: T.Type) -> [Variable<T>] {
        let a = Variable(Tensor<T>.zeros([2]), requiresGrad: true)
        let b = Variable(Tensor<T>.zeros([1, 1]), requiresGrad: true)
        let unused = Variable(Tensor<T>.zeros([3]), requiresGrad: true)
        a.grad = Tensor(shape: [2], scalars: [3, 4])
        b.grad = Tensor(shape: [1, 1], scalars: [12])
        return [a, unused, b]
    }

    func testNormMatchesHandComputationAndNilGradsAreSkipped() {
        let params = makeParameters(Double.self)
        XCTAssertEqual(clipGradNorm(params, maxNorm: 100), 13)
        XCTAssertNil(params[1].grad, "a parameter without a gradient stays without one")
    }

    /// `globalGradNorm` is the norm `clipGradNorm` measures, bit for bit, and changes nothing.
    func testGlobalGradNormIsClipGradNormsNorm() {
        var rng = RandomGenerator(seed: 7)
        for maxNorm in [1e-3, 1e6] {
            let params = (0..<3).map { _ in Variable(Tensor<Float>.zeros([5]), requiresGrad: true) }
            for p in params { p.grad = rng.normal([5]) }
            params[1].grad = nil
            let before = params.map { $0.grad?.scalars }
            let norm = globalGradNorm(params)
            XCTAssertEqual(params.map { $0.grad?.scalars }, before, "measuring leaves the gradients alone")
            XCTAssertEqual(clipGradNorm(params, maxNorm: maxNorm).bitPattern, norm.bitPattern)
        }
        XCTAssertEqual(globalGradNorm(makeParameters(Double.self)), 13)
        XCTAssertEqual(globalGradNorm([Variable(Tensor<Double>.zeros([2]), requiresGrad: true)]), 0, "no gradients: norm 0")
    }

    func testClipsToMaxNorm() {
        let params = makeParameters(Double.self)
        XCTAssertEqual(clipGradNorm(params, maxNorm: 6.5), 13, "returns the norm before clipping")
        let coef = 6.5 / (13 + 1e-6)                     // PyTorch: maxNorm/(norm + 1e-6)
        XCTAssertEqual(params[0].grad?.scalars ?? [], [3 * coef, 4 * coef])
        XCTAssertEqual(params[2].grad?.scalars ?? [], [12 * coef])
        // The clipped norm is maxNorm, just under it because of the 1e-6.
        let after = (params[0].grad!.dot(params[0].grad!) + params[2].grad!.dot(params[2].grad!)).squareRoot()
        XCTAssertEqual(after, 6.5, accuracy: 1e-6)
        XCTAssertLessThan(after, 6.5)

        let paramsF = makeParameters(Float.self)
        XCTAssertEqual(clipGradNorm(paramsF, maxNorm: 1), 13)
        for (g, e) in zip(paramsF[0].grad?.scalars ?? [], [3.0 / 13, 4.0 / 13]) {
            XCTAssertEqual(Double(g), e, accuracy: 1e-6)
        }
        XCTAssertEqual(Double(paramsF[2].grad?.scalar ?? .nan), 12.0 / 13, accuracy: 1e-6)
    }

    func testNoChangeUnderTheLimit() {
        let params = makeParameters(Double.self)
        XCTAssertEqual(clipGradNorm(params, maxNorm: 13.5), 13)
        XCTAssertEqual(params[0].grad?.scalars, [3, 4])
        XCTAssertEqual(params[2].grad?.scalars, [12])
    }

    func testNormIsAccumulatedInDoubleForFloatGradients() {
        // Σ g² = 4·10⁴⁰ overflows Float (max ≈ 3.4·10³⁸) but not Double: norm = 2·10²⁰.
        let p = Variable(Tensor<Float>.zeros([4]), requiresGrad: true)
        p.grad = Tensor(shape: [4], scalars: [1e20, 1e20, 1e20, 1e20])
        let norm = clipGradNorm([p], maxNorm: 1)
        XCTAssertEqual(norm, 2e20, accuracy: 2e20 * 1e-6)
        XCTAssertEqual(Double(p.grad!.scalars[0]), 0.5, accuracy: 1e-6)
    }

    func testNonFiniteNormIsReportedAndNothingIsScaled() {
        let params = makeParameters(Double.self)
        params[2].grad = Tensor(shape: [1, 1], scalars: [.nan])
        XCTAssert(clipGradNorm(params, maxNorm: 1).isNaN)
        XCTAssertEqual(params[0].grad?.scalars, [3, 4], "not scaled")

        params[2].grad = Tensor(shape: [1, 1], scalars: [.infinity])
        XCTAssertEqual(clipGradNorm(params, maxNorm: 1), .infinity)
        XCTAssertEqual(params[0].grad?.scalars, [3, 4], "not scaled")
    }

    func testNoGradientsGiveZeroNorm() {
        let p = Variable(Tensor<Double>.zeros([2]), requiresGrad: true)
        XCTAssertEqual(clipGradNorm([p], maxNorm: 1), 0)
        XCTAssertNil(p.grad)
    }
}
