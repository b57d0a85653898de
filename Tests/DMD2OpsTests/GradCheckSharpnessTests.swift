// The finite-difference checks are sharp: a backward wrong by a relative 1e-4 fails both the
// Jacobian and the vᵀJu check, while the correct backward passes with its bound to spare.
import DMD2Checks
import DMD2Core
import DMD2Ops
import XCTest

final class GradCheckSharpnessTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    /// SiLU whose backward is scaled by `factor` (1: the real op).
    static func scaledSilu<T>(_ x: Variable<T>, factor: Double) -> Variable<T> {
        Variable.record("silu", x.value.map(.silu), parents: [x]) { g, _ in [x.value.zip(g, .siluBackward) * T(factor)] }
    }

    /// Softmax over the last axis whose backward drops a fraction `drop` of the subtracted dot:
    /// dx = y·(g − (1 − drop)·⟨g, y⟩).
    static func leakySoftmax<T>(_ x: Variable<T>, drop: Double) -> Variable<T> {
        let y = softmax(Variable(x.value)).value
        return Variable.record("softmax", y, parents: [x]) { g, _ in
            let rows = y.shape[0], cols = y.shape[1]
            var dx = Tensor<T>.zeros(y.shape)
            for r in 0..<rows {
                var d = 0.0
                for c in 0..<cols { d += Double(g.scalars[r * cols + c]) * Double(y.scalars[r * cols + c]) }
                for c in 0..<cols {
                    dx.scalars[r * cols + c] = T(Double(y.scalars[r * cols + c]) * (Double(g.scalars[r * cols + c]) - (1 - drop) * d))
                }
            }
            return [dx]
        }
    }

    func siluCase(_ shape: [Int], factor: Double) -> OpCase {
        OpCase("silu", "backward × \(factor)", inputs: [randn(shape, seed: 40, scale: 2)],
               double: { Self.scaledSilu($0[0], factor: factor) }, float: { Self.scaledSilu($0[0], factor: factor) })
    }

    func testCorrectBackwardPasses() throws {
        let small = try GradCheck.jacobian(siluCase([2, 3, 4], factor: 1))
        XCTAssertLessThanOrEqual(small.resolution, GradCheck.requiredResolution)
        XCTAssertLessThan(small.worstRatio, 0.5, "the bound has room to spare")
        XCTAssertNoThrow(try GradCheck.randomDirection(siluCase([300], factor: 1), seed: 1))
        XCTAssertNoThrow(try GradCheck.jacobian(OpCase("softmax", inputs: [randn([3, 5], seed: 200, scale: 2)],
                                                       double: { Self.leakySoftmax($0[0], drop: 0) }, float: { Self.leakySoftmax($0[0], drop: 0) })))
    }

    func testScaledDerivativeFailsTheJacobian() {
        for factor in [1.001, 1.0001, 1 - 1e-4] {
            XCTAssertThrowsError(try GradCheck.jacobian(siluCase([2, 3, 4], factor: factor)), "SiLU' × \(factor)") { error in
                XCTAssertTrue("\(error)".contains("Jacobian mismatch"), "\(error)")
            }
        }
    }

    func testScaledDerivativeFailsVJP() {
        // 300 inputs: too many for the full Jacobian, so `all` relies on vᵀJu.
        let c = siluCase([300], factor: 1.0001)
        for seed in [1, 2, 3] as [UInt64] {
            XCTAssertThrowsError(try GradCheck.randomDirection(c, seed: seed), "SiLU' × 1.0001, direction \(seed)")
        }
    }

    func testPartlyDroppedTermFails() {
        // 1e-3 of softmax's subtracted dot missing: a relative error of order 1e-4 in dx.
        let c = OpCase("softmax", inputs: [randn([3, 5], seed: 200, scale: 2)],
                       double: { Self.leakySoftmax($0[0], drop: 1e-3) }, float: { Self.leakySoftmax($0[0], drop: 1e-3) })
        XCTAssertThrowsError(try GradCheck.jacobian(c))
        XCTAssertThrowsError(try GradCheck.randomDirection(c, seed: 1))
    }

    /// A sample point whose steps all straddle a kink fails (a mismatch, or a resolution too
    /// coarse) instead of passing within a loose bound: inputs must stay away from kinks.
    func testKinkFails() {
        let x = Tensor<Double>(shape: [3], scalars: [1e-7, 0.5, -0.7])        // every step crosses 0 at x = 1e-7
        let c = OpCase("abs", inputs: [x], double: { abs($0[0]) }, float: { abs($0[0]) })
        XCTAssertThrowsError(try GradCheck.jacobian(c))
    }
}
