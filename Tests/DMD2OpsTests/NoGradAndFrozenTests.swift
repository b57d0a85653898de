// Tests of the autograd rules in Sources/DMD2Core/Autograd/Variable.swift that DMD2 relies on:
// no-grad scopes, stop-gradient, accumulation, frozen leaves, restricted backward passes
// (the generator's GAN loss through the critic) and gradients returned without touching `.grad`.
// (Lives in DMD2OpsTests because it builds graphs from DMD2Ops ops.)
import DMD2Core
import DMD2Ops
import Foundation
import DMD2TestSupport
import XCTest

final class NoGradAndFrozenTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    let xValue = Tensor<Double>(shape: [2, 1], scalars: [1, 2])
    let wValue = Tensor<Double>(shape: [2, 2], scalars: [1, 2, 3, 4])

    func testNoGradRecordsNothing() {
        let x = Variable(xValue, requiresGrad: true)
        let y = NoGrad.run { square(x) * 3.0 }
        XCTAssertFalse(y.requiresGrad)
        XCTAssert(y.isLeaf)
        XCTAssertEqual(y.value.scalars, [3, 12], "the forward value is still computed")
        XCTAssertTrue(NoGrad.isRecording, "recording resumes after the scope")
        XCTAssertFalse(NoGrad.run { NoGrad.isRecording })
        y.backward()
        XCTAssertNil(x.grad, "nothing reaches x through an unrecorded op")
        // Outside the scope the same op records.
        let z = square(x) * 3.0
        XCTAssertTrue(z.requiresGrad)
        XCTAssertFalse(z.isLeaf)
    }

    func testDetachedStopsTheGradient() {
        // y = x·sg(x): dy/dx = sg(x) = x, not 2x.
        let x = Variable(xValue, requiresGrad: true)
        let d = x.detached()
        XCTAssertFalse(d.requiresGrad)
        XCTAssertEqual(d.value, x.value)
        (x * d).backward()
        XCTAssertEqual(x.grad?.scalars, [1, 2])
    }

    func testGradientsAccumulateUntilZeroGrad() {
        let x = Variable(xValue, requiresGrad: true)
        square(x).backward()
        XCTAssertEqual(x.grad?.scalars, [2, 4])
        square(x).backward()
        XCTAssertEqual(x.grad?.scalars, [4, 8], "a second backward adds, it does not overwrite")
        x.zeroGrad()
        XCTAssertNil(x.grad)
        square(x).backward()
        XCTAssertEqual(x.grad?.scalars, [2, 4])
    }

    func testFrozenLeafGetsNoGradient() {
        let w = Variable(wValue, requiresGrad: false)
        let x = Variable(xValue, requiresGrad: true)
        sum(matmul(w, x)).backward()
        XCTAssertNil(w.grad)
        XCTAssertEqual(x.grad?.scalars, [4, 6], "dx = Wᵀ·1")
        // With every input frozen the result is a constant: nothing is recorded.
        let c = matmul(w, Variable(xValue))
        XCTAssertFalse(c.requiresGrad)
        XCTAssert(c.isLeaf)
    }

    func testBackwardToSelectedLeavesLeavesOtherParametersUntouched() {
        // DMD2's generator GAN loss: loss = softplus(−D(x)) with a critic D(x) = Σ W·x whose
        // weight requires grad (for the critic's own loss) but must not receive this gradient.
        let w = Variable(wValue, requiresGrad: true)
        let x = Variable(xValue, requiresGrad: true)
        let existing = Tensor<Double>(shape: [2, 2], scalars: [9, 9, 9, 9])
        w.grad = existing
        let loss = softplusLoss(-sum(matmul(w, x)))
        loss.backward(to: [x])
        XCTAssertEqual(w.grad, existing, "the critic's accumulated gradient is untouched")
        // d/dx softplus(−s) = −σ(−s)·Wᵀ·1 with s = Σ W·x = 1 + 4 + 3 + 8 = 16.
        let sigma = 1 / (1 + Foundation.exp(16.0))
        XCTAssertEqual(x.grad?.scalars[0] ?? .nan, -sigma * 4, accuracy: 1e-20)
        XCTAssertEqual(x.grad?.scalars[1] ?? .nan, -sigma * 6, accuracy: 1e-20)
    }

    func testGradientsFunctionDoesNotTouchGrad() {
        let w = Variable(wValue, requiresGrad: true)
        let x = Variable(xValue, requiresGrad: true)
        let before = Tensor<Double>(shape: [2, 1], scalars: [-1, -1])
        x.grad = before
        let y = sum(matmul(w, x))
        let unrelated = Variable(Tensor<Double>(shape: [3], scalars: [1, 2, 3]), requiresGrad: true)
        let g = gradients(of: y, withRespectTo: [x, w, unrelated])
        XCTAssertEqual(g[0].scalars, [4, 6])                       // Wᵀ·1
        XCTAssertEqual(g[1].scalars, [1, 2, 1, 2])                 // 1·xᵀ
        XCTAssertEqual(g[2], .zeros([3]), "zeros for an input the output does not depend on")
        XCTAssertEqual(x.grad, before, "x.grad is restored")
        XCTAssertNil(w.grad)
        XCTAssertNil(unrelated.grad)
    }

    func testDiamondGraphSumsBothPaths() {
        // y = exp(x) + x²: x feeds two branches that meet again.
        let x = Variable(xValue, requiresGrad: true)
        (exp(x) + square(x)).backward()
        for (g, v) in zip(x.grad?.scalars ?? [], xValue.scalars) {
            XCTAssertEqual(g, Foundation.exp(v) + 2 * v, accuracy: 1e-12)
        }
        // The same node used twice by one op: y = a·a with a = 3x → dy/dx = 2·a·3 = 18x.
        let z = Variable(xValue, requiresGrad: true)
        let a = z * 3.0
        (a * a).backward()
        XCTAssertEqual(z.grad?.scalars, [18, 36])
    }
}
