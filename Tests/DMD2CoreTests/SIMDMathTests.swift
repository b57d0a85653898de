import DMD2Core
import Foundation
import DMD2TestSupport
import XCTest

final class SIMDMathTests: CheckedTestCase {
    /// The vectorised Float exp is within a few ulp of the Double exp over the whole useful range,
    /// and saturates instead of producing garbage outside it.
    func testExpAccuracy() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            var v = SIMD8<Float>()
            for l in 0..<8 { v[l] = x + Float(l) * 0.0137 }
            let e = SIMDMath.exp(v)
            for l in 0..<8 {
                let exact = Foundation.exp(Double(v[l]))
                worst = max(worst, abs(Double(e[l]) - exact) / exact)
            }
            x += 0.11
        }
        XCTAssertLessThan(worst, 4 * Float.unitRoundoff * 2, "worst relative error \(worst)")
        let edge = SIMDMath.exp(SIMD8<Float>(-200, -100, 0, 1, 100, 200, -0.0, 0.5))
        XCTAssertEqual(edge[2], 1); XCTAssertEqual(edge[6], 1)
        XCTAssertTrue(edge[0] >= 0 && edge[0] < 1e-37)
        XCTAssertTrue(edge[4].isFinite && edge[4] > 1e38)
        XCTAssertEqual(Double(edge[3]), M_E, accuracy: 1e-6)
    }

    /// The Float SIMD SiLU/sigmoid paths agree with the Double kernels (tails included).
    func testFloatActivationsMatchDouble() {
        var rng = RandomGenerator(seed: 9)
        let xd: Tensor<Double> = rng.normal([1003], std: 6)
        let xf = xd.converted(to: Float.self)
        for op in [UnaryOp.exp, .sigmoid, .silu] {
            let d = xd.map(op), f = xf.map(op).converted(to: Double.self)
            for i in 0..<d.count {
                XCTAssertEqual(f.scalars[i], d.scalars[i], accuracy: 1e-6 * max(1, abs(d.scalars[i])), "\(op) at x = \(xd.scalars[i])")
            }
        }
        let g: Tensor<Double> = rng.normal([1003])
        for op in [BinaryOp.siluBackward, .sigmoidBackward] {
            let d = xd.zip(g, op), f = xf.zip(g.converted(), op).converted(to: Double.self)
            for i in 0..<d.count {
                XCTAssertEqual(f.scalars[i], d.scalars[i], accuracy: 1e-6 * max(1, abs(d.scalars[i])), "\(op) at x = \(xd.scalars[i])")
            }
        }
    }
}
