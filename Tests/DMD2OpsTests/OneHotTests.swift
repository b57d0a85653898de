// Tests of oneHot (Sources/DMD2Ops/OneHot.swift): the one label encoding of the project, with
// −1 as "no class" (a zero row, the networks' unconditional input).
import DMD2Core
import DMD2Ops
import XCTest

final class OneHotTests: XCTestCase {
    func testRowsHaveOneAtTheLabel() {
        let y: Tensor<Double> = oneHot([2, 0, 3], classes: 4)
        XCTAssertEqual(y.shape, [3, 4])
        XCTAssertEqual(y.scalars, [0, 0, 1, 0,
                                   1, 0, 0, 0,
                                   0, 0, 0, 1])
    }

    func testMinusOneIsAZeroRow() {
        let y = oneHot([-1, 1, -1], classes: 3, as: Float.self)
        XCTAssertEqual(y.shape, [3, 3])
        XCTAssertEqual(y.scalars, [0, 0, 0,
                                   0, 1, 0,
                                   0, 0, 0])
    }

    func testEmptyBatchAndUnconditionalShapes() {
        let empty: Tensor<Float> = oneHot([], classes: 10)
        XCTAssertEqual(empty.shape, [0, 10])
        let none: Tensor<Float> = oneHot([-1, -1], classes: 0)
        XCTAssertEqual(none.shape, [2, 0])
    }

    /// The cross-entropy builds its targets with the same function: its gradient at logits 0 is
    /// (1/K − onehot)/N.
    func testSoftmaxCrossEntropyUsesTheSameRows() {
        let logits = Variable(Tensor<Double>.zeros([2, 4]), requiresGrad: true)
        softmaxCrossEntropy(logits: logits, labels: [1, 3]).backward()
        let target: Tensor<Double> = oneHot([1, 3], classes: 4)
        let expected = target.scalars.map { (0.25 - $0) / 2 }
        XCTAssertEqual(logits.grad?.scalars ?? [], expected)
    }
}
