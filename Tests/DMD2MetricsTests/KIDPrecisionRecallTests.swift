// KID and precision/recall on synthetic features with known answers.
import DMD2Core
import DMD2Metrics
import XCTest

final class KernelInceptionDistanceTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    func gaussian(_ n: Int, _ d: Int, seed: UInt64, mean: Double = 0) -> Tensor<Float> {
        var rng = RandomGenerator(seed: seed)
        return rng.normal([n, d], mean: mean, std: 1)
    }

    /// MMD²_u with k(x, y) = (xᵀy/d + 1)³ written as loops over all pairs.
    func bruteForceMMD(_ x: Tensor<Float>, _ y: Tensor<Float>) -> Double {
        let (m, d) = (x.shape[0], x.shape[1])
        func k(_ a: Tensor<Float>, _ i: Int, _ b: Tensor<Float>, _ j: Int) -> Double {
            let t = (0..<d).reduce(0.0) { $0 + Double(a[i, $1]) * Double(b[j, $1]) } / Double(d) + 1
            return t * t * t
        }
        var xx = 0.0, yy = 0.0, xy = 0.0
        for i in 0..<m { for j in 0..<m {
            if i != j { xx += k(x, i, x, j); yy += k(y, i, y, j) }
            xy += k(x, i, y, j)
        } }
        let M = Double(m)
        return (xx + yy) / (M * (M - 1)) - 2 * xy / (M * M)
    }

    func testWholeSetSubsetsEqualTheDefinition() {
        // With m = N every subset is the whole set: one value, the full MMD²_u.
        let x = gaussian(7, 5, seed: 1), y = gaussian(7, 5, seed: 2, mean: 0.3)
        let kid = kernelInceptionDistance(real: x, generated: y, subsets: 4, subsetSize: 1000)
        XCTAssertEqual(kid.subsetSize, 7)
        XCTAssertEqual(kid.subsets, 1)
        let expected = bruteForceMMD(x, y)
        XCTAssertEqual(kid.values.count, 1)
        XCTAssertEqual(kid.mean, expected, accuracy: 1e-12 * max(1, abs(expected)))
        XCTAssertEqual(kid.std, 0)
        // Drawn subsets (m = 7 of 9 generated): with 9 copies of one vector every draw is 7 copies,
        // so each subset's value is the definition on (x, 7 copies).
        let row = Array(y.scalars[0..<5])
        let copies = { (n: Int) in Tensor<Float>(shape: [n, 5], scalars: Array([[Float]](repeating: row, count: n).joined())) }
        let drawn = kernelInceptionDistance(real: x, generated: copies(9), subsets: 3, subsetSize: 7)
        XCTAssertEqual(drawn.values.count, 3)
        let onCopies = bruteForceMMD(x, copies(7))
        for v in drawn.values { XCTAssertEqual(v, onCopies, accuracy: 1e-12 * max(1, abs(onCopies))) }
    }

    func testUnbiasedNearZeroForOneDistributionAndPositiveForAShift() {
        let real = gaussian(400, 16, seed: 3)
        let same = kernelInceptionDistance(real: real, generated: gaussian(400, 16, seed: 4), subsets: 20, subsetSize: 200)
        let shifted = kernelInceptionDistance(real: real, generated: gaussian(400, 16, seed: 5, mean: 0.5), subsets: 20, subsetSize: 200)
        XCTAssertGreaterThan(shifted.mean, 0)
        XCTAssertLessThan(abs(same.mean), shifted.mean / 20, "same distribution: \(same.mean) vs shifted: \(shifted.mean)")
        // Within a few standard errors of 0 (the subsets overlap, so this is loose on purpose).
        XCTAssertLessThan(abs(same.mean), 4 * same.std, "mean \(same.mean), std \(same.std)")
    }

    func testSeededAndDeterministic() {
        let x = gaussian(30, 4, seed: 6), y = gaussian(30, 4, seed: 7)
        let a = kernelInceptionDistance(real: x, generated: y, subsets: 5, subsetSize: 10, seed: 1)
        let b = kernelInceptionDistance(real: x, generated: y, subsets: 5, subsetSize: 10, seed: 1)
        let c = kernelInceptionDistance(real: x, generated: y, subsets: 5, subsetSize: 10, seed: 2)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a.values, c.values)
    }
}

final class PrecisionRecallTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    func testIdenticalSetsAndFarApartSets() {
        var rng = RandomGenerator(seed: 8)
        let x: Tensor<Float> = rng.normal([60, 8])
        XCTAssertEqual(precisionRecall(real: x, generated: x), PrecisionRecall(precision: 1, recall: 1, k: 3))
        let far = x + Tensor(repeating: 100, shape: x.shape)
        XCTAssertEqual(precisionRecall(real: x, generated: far), PrecisionRecall(precision: 0, recall: 0, k: 3))
    }

    func testOneDimensionalExample() {
        // k = 1. Real 0, 1, 2, 3, 4.5: radii 1, 1, 1, 1, 1.5. Generated 0.5, 2.25, 14, 20, 31:
        // radii 1.75, 1.75, 6, 6, 11.
        // Precision: 0.5 (0.5 from 0) and 2.25 (0.25 from 2) lie in real balls; 14, 20, 31 do not → 2/5.
        // Recall: 0, 1, 2, 3 lie within 1.75 of 0.5 or 2.25; 4.5 is 2.25 from 2.25 and 9.5 from 14 → 4/5.
        let real = Tensor<Float>(shape: [5, 1], scalars: [0, 1, 2, 3, 4.5])
        let generated = Tensor<Float>(shape: [5, 1], scalars: [0.5, 2.25, 14, 20, 31])
        let pr = precisionRecall(real: real, generated: generated, k: 1)
        XCTAssertEqual(pr.precision, 0.4)
        XCTAssertEqual(pr.recall, 0.8)
        // Swapping the roles swaps the numbers.
        let swapped = precisionRecall(real: generated, generated: real, k: 1)
        XCTAssertEqual(swapped.precision, 0.8)
        XCTAssertEqual(swapped.recall, 0.4)
    }
}
