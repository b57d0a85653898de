// XCTest entry points for the Shape family's checks (cases: Sources/DMD2Checks/Cases/ShapeCases.swift).
import DMD2Core
import DMD2Ops
import DMD2Checks
import DMD2TestSupport
import XCTest

final class ShapeGradTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }
    func testGradientChecks() { runChecks(ShapeCases.all) }
}

final class ShapeValueTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testReshapeInfersMinusOneAndKeepsOrder() {
        let x = Variable(Tensor<Double>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]))
        let y = reshape(x, [-1, 2])
        XCTAssertEqual(y.shape, [3, 2])
        XCTAssertEqual(y.value.scalars, [1, 2, 3, 4, 5, 6])
    }

    func testPermuteValuesAndInverseGradient() {
        // x [2, 3]: permute [1, 0] is the transpose.
        let x = Variable(Tensor<Double>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]), requiresGrad: true)
        let y = permute(x, [1, 0])
        XCTAssertEqual(y.shape, [3, 2])
        XCTAssertEqual(y.value.scalars, [1, 4, 2, 5, 3, 6])
        y.backward(seed: Tensor(shape: [3, 2], scalars: [10, 40, 20, 50, 30, 60]))
        XCTAssertEqual(x.grad?.scalars, [10, 20, 30, 40, 50, 60])
        // A 3-cycle: the inverse is a different permutation from the forward one.
        let z = Variable(randn([2, 3, 4], seed: 1), requiresGrad: true)
        let g = randn([4, 2, 3], seed: 2)
        permute(z, [2, 0, 1]).backward(seed: g)
        XCTAssertEqual(z.grad, g.permuted([1, 2, 0]))
    }

    func testConcatOnChannelsPutsFirstInputFirst() {
        // a [2, 1, 2] and b [2, 2, 2] joined on axis 1: per sample, a's channel then b's two.
        let a = Variable(Tensor<Double>(shape: [2, 1, 2], scalars: [1, 2, 3, 4]))
        let b = Variable(Tensor<Double>(shape: [2, 2, 2], scalars: [10, 11, 12, 13, 14, 15, 16, 17]))
        let y = concat([a, b], axis: 1)
        XCTAssertEqual(y.shape, [2, 3, 2])
        XCTAssertEqual(y.value.scalars, [1, 2, 10, 11, 12, 13, 3, 4, 14, 15, 16, 17])
        let y0 = concat([a, a], axis: 0)
        XCTAssertEqual(y0.shape, [4, 1, 2])
        XCTAssertEqual(y0.value.scalars, [1, 2, 3, 4, 1, 2, 3, 4])
    }

    func testConcatOfTheSameVariableTwiceSumsItsGradients() {
        let x = Variable(randn([2, 2, 3], seed: 3), requiresGrad: true)
        let g = randn([2, 4, 3], seed: 4)
        concat([x, x], axis: 1).backward(seed: g)
        let expected = g.scalars.indices.filter { ($0 / 3) % 4 < 2 }.map { g.scalars[$0] + g.scalars[$0 + 6] }
        XCTAssertEqual(x.grad?.scalars ?? [], expected)
    }

    func testSliceValuesAndGradientPlacement() {
        let x = Variable(Tensor<Double>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]), requiresGrad: true)
        let y = slice(x, axis: 1, range: 1 ..< 3)
        XCTAssertEqual(y.value.scalars, [2, 3, 5, 6])
        y.backward(seed: Tensor(shape: [2, 2], scalars: [7, 8, 9, 10]))
        XCTAssertEqual(x.grad?.scalars, [0, 7, 8, 0, 9, 10])
        XCTAssertEqual(slice(x, axis: 1, range: 2 ..< 2).shape, [2, 0])
    }

    func testSplitIsSlicesAndConcatUndoesIt() {
        let x = Variable(randn([2, 6, 3], seed: 5), requiresGrad: true)
        let parts = split(x, sizes: [1, 3, 2], axis: 1)
        XCTAssertEqual(parts.map(\.shape), [[2, 1, 3], [2, 3, 3], [2, 2, 3]])
        XCTAssertEqual(parts.map(\.name), ["slice", "slice", "slice"])
        for (part, range) in zip(parts, [0 ..< 1, 1 ..< 4, 4 ..< 6]) {
            XCTAssertEqual(part.value, slice(x, axis: 1, range: range).value)
        }
        XCTAssertEqual(concat(parts, axis: 1).value, x.value)
        // Gradients from every piece add up in x: through concat the round trip is the identity.
        let g = randn([2, 6, 3], seed: 6)
        concat(parts, axis: 1).backward(seed: g)
        XCTAssertEqual(x.grad, g)
        // Along axis 0, with an empty piece.
        let pieces = split(x, sizes: [0, 2], axis: 0)
        XCTAssertEqual(pieces[0].shape, [0, 6, 3])
        XCTAssertEqual(concat(pieces, axis: 0).value, x.value)
    }

    func testSinusoidalEmbeddingKnownValues() {
        // channels 4 → H = 2 frequencies f = [1, (1/10000)^(1/2)] = [1, 0.01]; c = 0.5:
        // [cos 0.5, cos 0.005, sin 0.5, sin 0.005].
        let c = Variable(Tensor<Double>(shape: [1], scalars: [0.5]), requiresGrad: true)
        let y = sinusoidalEmbedding(c, channels: 4)
        XCTAssertEqual(y.shape, [1, 4])
        let expected = [0.8775825618903728, 0.9999875000260416, 0.479425538604203, 0.004999979166692708]
        for (a, b) in zip(y.value.scalars, expected) { XCTAssertEqual(a, b, accuracy: 1e-15) }
        // d(Σ y)/dc = Σ_j f_j (cos(c f_j) − sin(c f_j)) = (cos 0.5 − sin 0.5) + 0.01 (cos 0.005 − sin 0.005).
        y.backward()
        let dc = (0.8775825618903728 - 0.479425538604203) + 0.01 * (0.9999875000260416 - 0.004999979166692708)
        XCTAssertEqual(c.grad?.scalar ?? .nan, dc, accuracy: 1e-14)
        // c = 0: cos part all ones, sin part all zeros, for every row.
        let z = sinusoidalEmbedding(Variable(Tensor<Float>(shape: [2], scalars: [0, 0])), channels: 6)
        XCTAssertEqual(z.value.scalars, [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0])
    }

    func testDropoutMaskIsSeededBinaryAndHasTheRightRate() {
        var a = RandomGenerator(seed: 11), b = RandomGenerator(seed: 11)
        let m1: Tensor<Float> = dropoutMask(shape: [100, 100], p: 0.1, rng: &a)
        let m2: Tensor<Float> = dropoutMask(shape: [100, 100], p: 0.1, rng: &b)
        XCTAssertEqual(m1, m2)
        XCTAssert(m1.scalars.allSatisfy { $0 == 0 || $0 == 1 })
        // 10 000 Bernoulli(0.9) draws: the kept fraction is 0.9 ± 0.003 (1 s.d.).
        XCTAssertEqual(Double(m1.sum()) / 10_000, 0.9, accuracy: 0.015)
        XCTAssertNotEqual(a, RandomGenerator(seed: 11), "the generator advanced")
        var c = RandomGenerator(seed: 12)
        let none: Tensor<Double> = dropoutMask(shape: [50], p: 0, rng: &c)
        let all: Tensor<Double> = dropoutMask(shape: [50], p: 1, rng: &c)
        XCTAssertEqual(none, .ones([50]))
        XCTAssertEqual(all, .zeros([50]))
    }

    func testDropoutScalesKeptValuesAndMasksGradient() {
        let x = Variable(Tensor<Double>(shape: [4], scalars: [1, 2, 3, 4]), requiresGrad: true)
        let mask = Tensor<Double>(shape: [4], scalars: [1, 0, 1, 0])
        let y = dropout(x, mask: mask, p: 0.5)
        XCTAssertEqual(y.value.scalars, [2, 0, 6, 0])
        y.backward(seed: Tensor(shape: [4], scalars: [1, 1, 1, 1]))
        XCTAssertEqual(x.grad?.scalars, [2, 0, 2, 0])
        XCTAssertEqual(dropout(x, mask: .ones([4]), p: 0).value, x.value, "p = 0 is the identity")
        XCTAssertEqual(dropout(x, mask: mask, p: 1).value, .zeros([4]), "p = 1 drops everything")
    }

    func testNanToNumReplacesNonFiniteValuesAndMasksTheirGradient() {
        let x = Variable(Tensor<Double>(shape: [5], scalars: [1.5, .nan, .infinity, -.infinity, -2]), requiresGrad: true)
        let y = nanToNum(x)
        XCTAssertEqual(y.value.scalars, [1.5, 0, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, -2])
        y.backward(seed: Tensor(shape: [5], scalars: [10, 20, 30, 40, 50]))
        XCTAssertEqual(x.grad?.scalars, [10, 0, 0, 0, 50])

        let custom = nanToNum(x, nan: -1, posInf: 7, negInf: -7)
        XCTAssertEqual(custom.value.scalars, [1.5, -1, 7, -7, -2])
        let partial = nanToNum(x, posInf: 3)
        XCTAssertEqual(partial.value.scalars, [1.5, 0, 3, -.greatestFiniteMagnitude, -2])

        // Float defaults are Float's own largest finite values.
        let xf = Variable(Tensor<Float>(shape: [3], scalars: [.infinity, -.infinity, .nan]), requiresGrad: true)
        let yf = nanToNum(xf)
        XCTAssertEqual(yf.value.scalars, [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, 0])
        yf.backward()
        XCTAssertEqual(xf.grad?.scalars, [0, 0, 0])
    }
}
