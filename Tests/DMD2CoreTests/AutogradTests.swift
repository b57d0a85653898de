import DMD2Core
import DMD2TestSupport
import XCTest

final class AutogradTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testTensorBasics() {
        let t = Tensor<Double>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(t[1, 2], 6)
        XCTAssertEqual(t.reshaped([3, -1]).shape, [3, 2])
        XCTAssertEqual(t.sum(), 21)
        XCTAssertEqual(t.sum(axis: 0).scalars, [5, 7, 9])
        XCTAssertEqual(t.sum(axis: 1).scalars, [6, 15])
        XCTAssertEqual(t.permuted([1, 0]).scalars, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(Tensor<Double>(shape: [3, 1], scalars: [1, 2, 3]).broadcast(to: [2, 3, 2]).scalars,
                       [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(t.summed(toShape: [3]).scalars, [5, 7, 9])
        XCTAssertEqual(broadcastShape([2, 1, 4], [3, 1]), [2, 3, 4])
        XCTAssertNil(broadcastShape([2, 3], [4]))
    }

    func testParallelChunksCoverEveryIndexOnce() {
        for threads in [1, 2, 3, 7] {
            Threads.with(threads) {
                for n in [0, 1, 5, 100, 1001] {
                    var hits = [Int](repeating: 0, count: n)
                    hits.withUnsafeMutableBufferPointer { h in
                        let p = h.baseAddress
                        parallelFor(n) { i in p![i] += 1 }
                    }
                    XCTAssertEqual(hits, [Int](repeating: 1, count: n), "threads \(threads), n \(n)")
                }
            }
        }
    }

    func testSumIsDeterministicForAFixedThreadCount() {
        var rng = RandomGenerator(seed: 3)
        let x: Tensor<Float> = rng.normal([1 << 18])
        let a = Threads.with(2) { x.sum() }, b = Threads.with(2) { x.sum() }
        XCTAssertEqual(a, b)
    }

    func testRandomGeneratorIsReproducibleAndNormal() {
        var a = RandomGenerator(seed: 42), b = RandomGenerator(seed: 42)
        let x: Tensor<Double> = a.normal([10_000]), y: Tensor<Double> = b.normal([10_000])
        XCTAssertEqual(x, y)
        XCTAssertEqual(x.mean(), 0, accuracy: 0.05)
        XCTAssertEqual((x * x).mean(), 1, accuracy: 0.05)
    }

    func testGemmMatchesNaiveProductForAllTransposes() {
        var rng = RandomGenerator(seed: 5)
        let m = 7, n = 5, k = 3
        let a: Tensor<Double> = rng.normal([m, k]), b: Tensor<Double> = rng.normal([k, n])
        let at = a.permuted([1, 0]), bt = b.permuted([1, 0])
        var expected = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k { expected[i * n + j] += a[i, p] * b[p, j] } } }
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let A = ta ? at : a, B = tb ? bt : b
            var c = [Double](repeating: 0, count: m * n)
            A.withUnsafeBufferPointer { ap in B.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                Compute.backend.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1,
                                     a: ap.baseAddress!, lda: A.shape[1], b: bp.baseAddress!, ldb: B.shape[1],
                                     beta: 0, c: cp.baseAddress!, ldc: n)
            } } }
            for i in 0..<(m * n) { XCTAssertEqual(c[i], expected[i], accuracy: 1e-12, "transA \(ta) transB \(tb)") }
        }
    }
}
