// The fused in-place optimiser passes (FusedUpdate.swift, GradClip.swift) are bitwise the
// `Tensor` compositions they replaced: AdamW's update (with and without weight decay, over
// several steps), the EMA, and gradient clipping's norm and scale — on sizes that are cut into
// several chunks and have a SIMD tail, with zeros and negative zeros in the gradients.
import DMD2Core
import DMD2Ops
import DMD2Train
import XCTest

final class FusedUpdateTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    /// A gradient with exact zeros and −0 sprinkled in (the affine's + 0 matters there).
    private func gradient<T: TensorScalar>(_ rng: inout RandomGenerator, _ n: Int, _: T.Type) -> Tensor<T> {
        var g: Tensor<T> = rng.normal([n], std: 0.3)
        g.withUnsafeMutableBufferPointer { b in
            for i in stride(from: 0, to: n, by: 97) { b[i] = 0 }
            for i in stride(from: 5, to: n, by: 89) { b[i] = -0.0 }
        }
        return g
    }

    private func assertBitwise<T: TensorScalar>(_ a: Tensor<T>, _ b: Tensor<T>, _ message: String, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, message, line: line)
        XCTAssertEqual(a.scalars.map { $0.bitPattern(T.self) }, b.scalars.map { $0.bitPattern(T.self) }, message, line: line)
    }

    private func checkAdamW<T: TensorScalar>(_: T.Type, weightDecay: Double) {
        let n = 100_003   // several chunks of 2¹⁵ and a tail of 3
        var rng = RandomGenerator(seed: 5)
        let p0: Tensor<T> = rng.normal([n])
        let p = Variable(p0, requiresGrad: true, name: "p")
        let config = AdamWConfig(learningRate: 0.01, weightDecay: weightDecay, warmUpSteps: 2)
        let opt = AdamW(parameters: [("p", p)], config: config)
        // The composition AdamW.step used to run, on its own copies of the state.
        var value = p0, m = Tensor<T>.zeros([n]), v = Tensor<T>.zeros([n])
        for k in 1...3 {
            let g = gradient(&rng, n, T.self)
            p.grad = g
            let lr = opt.step()
            if weightDecay != 0 { value = value * T(1 - lr * weightDecay) }
            m = m + (g - m) * T(1 - config.beta1)
            v = v * T(config.beta2) + (g * g) * T(1 - config.beta2)
            let stepSize = lr / (1 - Double.pow(config.beta1, Double(k)))
            let root = (1 - Double.pow(config.beta2, Double(k))).squareRoot()
            let denominator = v.map(.sqrt) * T(1 / root) + T(config.eps)
            value = value - (m / denominator) * T(stepSize)
            assertBitwise(p.value, value, "\(T.self) wd \(weightDecay) step \(k): parameter")
            assertBitwise(opt.expAvg[0], m, "\(T.self) step \(k): exp_avg")
            assertBitwise(opt.expAvgSq[0], v, "\(T.self) step \(k): exp_avg_sq")
        }
    }

    func testFusedAdamWMatchesTheComposition() {
        checkAdamW(Float.self, weightDecay: 0.01)
        checkAdamW(Float.self, weightDecay: 0)
        checkAdamW(Double.self, weightDecay: 0.01)
    }

    func testFusedEMAMatchesTheComposition() {
        var rng = RandomGenerator(seed: 6)
        let n = 70_001
        let p = Variable(rng.normal([n]) as Tensor<Float>, requiresGrad: true)
        var ema = EMA([p], schedule: .decay(0.99))
        var expected = p.value
        for _ in 0..<3 {
            p.value = p.value + gradient(&rng, n, Float.self)
            ema.update([p], batchImages: 8, imagesSeen: 8)
            expected = p.value + (expected - p.value) * Float(0.99)
            assertBitwise(ema.values[0], expected, "EMA")
        }
    }

    func testFusedClippingMatchesTheComposition() {
        var rng = RandomGenerator(seed: 7)
        for (n, maxNorm) in [(100_003, 1.0), (5, 1.0), (65_536, 1e6)] {
            let grads: [Tensor<Float>] = [gradient(&rng, n, Float.self), gradient(&rng, 1000, Float.self)]
            let params = grads.map { g -> Variable<Float> in
                let p = Variable(Tensor<Float>.zeros(g.shape), requiresGrad: true)
                p.grad = g
                return p
            }
            let norm = clipGradNorm(params, maxNorm: maxNorm)
            var sumOfSquares = 0.0
            for g in grads { let g64 = g.converted(to: Double.self); sumOfSquares += g64.dot(g64) }
            XCTAssertEqual(norm.bitPattern, sumOfSquares.squareRoot().bitPattern, "norm, n \(n)")
            let coef = maxNorm / (norm + 1e-6)
            for (p, g) in zip(params, grads) {
                assertBitwise(p.grad!, coef < 1 ? g * Float(coef) : g, "clipped gradient, n \(n)")
            }
        }
    }
}

private extension TensorScalar {
    func bitPattern(_: Self.Type) -> UInt64 {
        if let f = self as? Float { return UInt64(f.bitPattern) }
        return (self as! Double).bitPattern
    }
}
