// The shadow checker: a deliberately broken primitive is caught and named (with its arguments,
// worst index and both values); the tolerance rule's edge (½ tolerance passes, 2 tolerances
// fail; data movement must be bitwise); an input written by the candidate is caught; the stop
// and record-and-continue policies; `check` throws the first divergence. (A correct backend
// passing a whole small UNet in shadow mode is SmallUNetConformanceTests.)
import DMD2Core
import DMD2Ops
import DMD2Checks
import DMD2TestSupport
import XCTest

final class ShadowBackendTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// An attention layer (softmax over 8×8 = 64 keys) forward and backward.
    func attentionForwardBackward() {
        let qkv = Variable(randn([2, 3 * 8, 4, 4], seed: 11).converted(to: Float.self), requiresGrad: true)
        let y = attention(qkv: qkv, heads: 2)
        _ = gradients(of: y, withRespectTo: [qkv], seed: randn(y.shape, seed: 12).converted(to: Float.self))
    }

    func testOffByOneSoftmaxIsCaughtAndNamed() {
        let shadow = ShadowBackend(candidate: BrokenBackend(.softmaxOffByOne))
        XCTAssertThrowsError(try shadow.check { attentionForwardBackward() }) { error in
            guard let d = error as? ShadowDivergence else { return XCTFail("not a ShadowDivergence: \(error)") }
            print("ShadowBackendTests, off-by-one softmax:\n\(d)")
            XCTAssertEqual(d.primitive, "softmaxRows")
            XCTAssertEqual(d.buffer, "y")
            XCTAssertEqual(d.shape, [16, 16], "one softmax per (image, head): L = 16 rows of 16 keys")
            XCTAssertTrue(d.arguments.contains("rows 16, cols 16"), d.arguments)
            XCTAssertGreaterThan(d.error, d.tolerance)
            XCTAssertEqual(d.candidate, "broken(softmaxOffByOne)")
            XCTAssertEqual(d.reference, "reference")
        }
        // `.stop`: one divergence recorded, later calls not compared (but still run).
        XCTAssertEqual(shadow.divergences.count, 1)
        XCTAssertGreaterThan(shadow.callCount, shadow.firstDivergence!.call)
    }

    func testForgottenTransposeInGEMMIsCaughtAtTheRightCall() throws {
        let a = Variable(randn([5, 7], seed: 1).converted(to: Float.self), requiresGrad: true)
        let b = Variable(randn([7, 3], seed: 2).converted(to: Float.self), requiresGrad: true)
        let shadow = ShadowBackend(candidate: BrokenBackend(.gemmIgnoresTransB))
        // The forward product has no transpose: it passes.
        let y = try shadow.check { matmul(a, b) }
        // dA = dY·Bᵀ is the first transposed product.
        XCTAssertThrowsError(try shadow.check { _ = gradients(of: y, withRespectTo: [a, b], seed: .ones(y.shape)) }) { error in
            guard let d = error as? ShadowDivergence else { return XCTFail("not a ShadowDivergence: \(error)") }
            print("ShadowBackendTests, forgotten transpose:\n\(d)")
            XCTAssertEqual(d.primitive, "gemm")
            XCTAssertTrue(d.arguments.contains("transB true"), d.arguments)
            XCTAssertTrue(d.arguments.contains("m 5, n 7, k 3"), d.arguments)
            XCTAssertEqual(d.buffer, "C")
            XCTAssertEqual(d.shape, [5, 7])
        }
    }

    func testToleranceRuleEdge() throws {
        let x = Variable(randn([6, 40], seed: 3).converted(to: Float.self))
        let w = Variable(randn([40, 9], seed: 4).converted(to: Float.self))
        // Half the allowed error passes, twice the allowed error fails.
        _ = try ShadowBackend(candidate: BrokenBackend(.gemmNudge(factor: 0.5))).check { matmul(x, w) }
        XCTAssertThrowsError(try ShadowBackend(candidate: BrokenBackend(.gemmNudge(factor: 2))).check { matmul(x, w) }) { error in
            guard let d = error as? ShadowDivergence else { return XCTFail("not a ShadowDivergence: \(error)") }
            XCTAssertEqual(d.index, [0, 0])
            XCTAssertEqual(d.error / d.tolerance, 2, accuracy: 0.2)
            XCTAssertTrue(d.rule.contains("K = 41"), d.rule)             // k = 40 products + the α·Σ rounding (Tolerance.table)
        }
        // Data movement: one ulp is a divergence.
        XCTAssertThrowsError(try ShadowBackend(candidate: BrokenBackend(.permuteOneULP)).check { permute(w, [1, 0]) }) { error in
            guard let d = error as? ShadowDivergence else { return XCTFail("not a ShadowDivergence: \(error)") }
            XCTAssertEqual(d.primitive, "permute")
            XCTAssertEqual(d.tolerance, 0)
            XCTAssertEqual(d.index, [0, 0])
        }
    }

    func testCandidateWritingIntoItsInputIsCaught() {
        let x = randn([10], seed: 5).converted(to: Float.self)
        XCTAssertThrowsError(try ShadowBackend(candidate: BrokenBackend(.unaryWritesInput)).check { _ = x.map(.exp) }) { error in
            guard let d = error as? ShadowDivergence else { return XCTFail("not a ShadowDivergence: \(error)") }
            XCTAssertEqual(d.primitive, "unary")
            XCTAssertTrue(d.buffer.hasPrefix("input x"), d.buffer)
            XCTAssertEqual(d.index, [0])
        }
    }

    func testRecordAndContinueRecordsEveryDivergentCall() {
        let shadow = ShadowBackend(candidate: BrokenBackend(.softmaxOffByOne), policy: .recordAndContinue)
        Compute.with(shadow) {
            for seed in [21, 22, 23] as [UInt64] {
                _ = softmax(Variable(randn([3, 5], seed: seed).converted(to: Float.self))).value
            }
        }
        XCTAssertEqual(shadow.divergenceCount, 3)
        XCTAssertEqual(shadow.divergences.map(\.call), [1, 2, 3])
        XCTAssertEqual(shadow.statistics["softmaxRows"]?.divergences, 3)
        XCTAssertGreaterThan(shadow.statistics["softmaxRows"]?.worstRatio ?? 0, 1)
        shadow.reset()
        XCTAssertEqual(shadow.callCount, 0)
        XCTAssertNil(shadow.firstDivergence)
    }

    func testCorrectBackendPassesEveryOpCaseInBothPrecisions() {
        // Every primitive an op reaches, through the ops themselves: each gradient-check case of
        // DMD2Checks, forward and backward, in Double and in Float.
        let shadow = ShadowBackend(candidate: CPUBackend(), policy: .recordAndContinue)
        for c in AllOpCases.all {
            var rng = RandomGenerator(seed: 31)
            let seed: Tensor<Double> = rng.normal(GradCheck.evaluate(c.double, c.inputs).shape)
            let xf = c.inputs.map { $0.converted(to: Float.self) }
            Compute.with(shadow) {
                _ = GradCheck.gradient(c.double, c.inputs, seed: seed)
                _ = GradCheck.gradient(c.float, xf, seed: seed.converted(to: Float.self))
            }
        }
        XCTAssertNil(shadow.firstDivergence, "\(shadow.firstDivergence.map { "\($0)" } ?? "")")
        print("ShadowBackendTests, CPU backend over every op case, forward and backward:\n\(shadow.report())")
    }
}
