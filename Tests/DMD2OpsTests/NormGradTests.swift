// XCTest entry points for the Norm family's checks (cases: Sources/DMD2Checks/Cases/NormCases.swift).
import DMD2Core
import DMD2Ops
import DMD2Checks
import DMD2TestSupport
import XCTest

final class NormGradTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testGroupNormGradients() { runChecks(NormCases.groupNormCases) }
    func testSoftmaxGradients() { runChecks(NormCases.softmaxCases) }
    func testAttentionGradients() { runChecks(NormCases.attentionCases) }

    /// At least one case per op is small enough for the full Jacobian.
    func testEveryOpHasAFullJacobianCase() {
        for op in ["groupNorm", "softmax", "attention"] {
            let full = NormCases.all.filter { $0.op == op }.contains { c in
                let nIn = zip(c.inputs, c.differentiable).filter(\.1).map(\.0.count).reduce(0, +)
                let nOut = GradCheck.evaluate(c.double, c.inputs).count
                return nIn * nOut <= 40_000
            }
            XCTAssert(full, "\(op): no case small enough for the full-Jacobian check")
        }
    }

    /// Softmax rows sum to 1 and are unchanged by a per-row shift, even at large magnitude.
    func testSoftmaxProperties() {
        let x = randn([4, 7], seed: 210, scale: 3)
        let shifted = Tensor(shape: x.shape, scalars: x.scalars.enumerated().map { i, v in v + Double(i / 7) * 1000 })
        let y = softmax(Variable(x)).value, ys = softmax(Variable(shifted)).value
        for r in 0..<4 {
            XCTAssertEqual(y.scalars[(r * 7)..<(r * 7 + 7)].reduce(0, +), 1, accuracy: 1e-14)
        }
        XCTAssertLessThan((y - ys).maxAbs(), 1e-12)
    }

    /// Without affine, every (n, g) group of the output has mean 0 and variance σ²/(σ² + eps).
    func testGroupNormStatistics() {
        let (N, C, L, G) = (2, 6, 5, 3)
        let x = randn([N, C, L], seed: 220, scale: 4, shift: 10)
        let y = groupNorm(Variable(x), groups: G, weight: nil, bias: nil).value
        let M = C / G * L
        for ng in 0..<(N * G) {
            let xs = x.scalars[(ng * M)..<((ng + 1) * M)], ys = y.scalars[(ng * M)..<((ng + 1) * M)]
            let mx = xs.reduce(0, +) / Double(M)
            let vx = xs.map { ($0 - mx) * ($0 - mx) }.reduce(0, +) / Double(M)
            let my = ys.reduce(0, +) / Double(M)
            let vy = ys.map { ($0 - my) * ($0 - my) }.reduce(0, +) / Double(M)
            XCTAssertEqual(my, 0, accuracy: 1e-12)
            XCTAssertEqual(vy, vx / (vx + 1e-5), accuracy: 1e-12)
        }
    }

    func testAdmGroupCount() {
        XCTAssertEqual(admGroupCount(channels: 192), 32)
        XCTAssertEqual(admGroupCount(channels: 768), 32)
        XCTAssertEqual(admGroupCount(channels: 64), 16)
        XCTAssertEqual(admGroupCount(channels: 8), 2)
    }

    /// Inference (no graph) reuses one [L, L] buffer; its result equals the recorded forward.
    func testAttentionNoGradMatchesRecordedForward() {
        let qkv = randn([2, 12, 3, 3], seed: 230)
        let recorded = attention(qkv: Variable(qkv, requiresGrad: true), heads: 2).value
        let inference = NoGrad.run { attention(qkv: Variable(qkv, requiresGrad: true), heads: 2) }.value
        XCTAssertEqual(recorded, inference)
    }
}
