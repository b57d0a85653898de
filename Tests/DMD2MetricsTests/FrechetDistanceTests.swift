// Fréchet distance and feature statistics against closed forms.
import DMD2Core
import DMD2Data
import DMD2Metrics
import Foundation
import XCTest

final class FrechetDistanceTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    func stats(_ mu: [Double], _ sigma: [[Double]]) -> FeatureStatistics {
        FeatureStatistics(mu: Tensor(shape: [mu.count], scalars: mu),
                          sigma: Tensor(shape: [mu.count, mu.count], scalars: sigma.flatMap { $0 }))
    }

    /// A random orthogonal D×D matrix (rows), from the eigenvectors of a random symmetric matrix.
    func randomRotation(_ D: Int, seed: UInt64) -> Tensor<Double> {
        var rng = RandomGenerator(seed: seed)
        let a: Tensor<Double> = rng.normal([D, D])
        return SymmetricEigen.decompose(a + a.permuted([1, 0])).vectorRows
    }

    /// Qᵀ diag(d) Q for Q given by rows.
    func rotated(_ q: Tensor<Double>, _ d: [Double]) -> [[Double]] {
        let D = d.count
        return (0..<D).map { i in (0..<D).map { j in (0..<D).reduce(0.0) { $0 + q[$1, i] * d[$1] * q[$1, j] } } }
    }

    func testEigenDecompositionReconstructs() {
        var rng = RandomGenerator(seed: 3)
        let a: Tensor<Double> = rng.normal([5, 5])
        let s = a + a.permuted([1, 0])
        let (values, v) = SymmetricEigen.decompose(s)
        XCTAssertEqual(values, values.sorted())
        for i in 0..<5 { for j in 0..<5 {
            let r = (0..<5).reduce(0.0) { $0 + v[$1, i] * values[$1] * v[$1, j] }
            XCTAssertEqual(r, s[i, j], accuracy: 1e-12)
            let orth = (0..<5).reduce(0.0) { $0 + v[i, $1] * v[j, $1] }
            XCTAssertEqual(orth, i == j ? 1 : 0, accuracy: 1e-12)
        } }
        for (a, b) in zip(SymmetricEigen.eigenvalues(s), values) { XCTAssertEqual(a, b, accuracy: 1e-12) }
    }

    func testIdenticalStatisticsGiveZero() {
        let q = randomRotation(16, seed: 1)
        let s = stats((0..<16).map { Double($0) / 7 }, rotated(q, (0..<16).map { 0.1 + Double($0) }))
        XCTAssertEqual(frechetDistance(s, s), 0, accuracy: 1e-9)
    }

    func testOneDimension() {
        // (μ₁ − μ₂)² + (σ₁ − σ₂)²
        XCTAssertEqual(frechetDistance(stats([1.5], [[4]]), stats([-0.5], [[9]])), 4 + 1, accuracy: 1e-12)
    }

    func testDiagonalAndCommutingCovariances() {
        // Commuting Σ₁ = Qᵀ diag(a) Q, Σ₂ = Qᵀ diag(b) Q: d² = ‖μ₁ − μ₂‖² + Σᵢ (√aᵢ − √bᵢ)².
        let D = 12
        let a = (0..<D).map { 0.5 + Double($0) * 0.3 }, b = (0..<D).map { 2.0 + sin(Double($0)) }
        let mu1 = (0..<D).map { Double($0) * 0.1 }, mu2 = (0..<D).map { 1 - Double($0) * 0.05 }
        let expected = zip(mu1, mu2).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            + zip(a, b).reduce(0) { $0 + ($1.0.squareRoot() - $1.1.squareRoot()) * ($1.0.squareRoot() - $1.1.squareRoot()) }
        let diagonal = { (d: [Double]) in (0..<D).map { i in (0..<D).map { j in i == j ? d[i] : 0 } } }
        XCTAssertEqual(frechetDistance(stats(mu1, diagonal(a)), stats(mu2, diagonal(b))), expected, accuracy: 1e-10)
        let q = randomRotation(D, seed: 2)
        let s1 = stats(mu1, rotated(q, a)), s2 = stats(mu2, rotated(q, b))
        XCTAssertEqual(frechetDistance(s1, s2), expected, accuracy: 1e-10)
        XCTAssertEqual(frechetDistance(s2, s1), expected, accuracy: 1e-10)
    }

    func testNonCommuting2x2ClosedForm() {
        // For 2×2: Tr √(Σ₁^½Σ₂Σ₁^½) = √(tr(Σ₁Σ₂) + 2√(det Σ₁ · det Σ₂)).
        let s1 = [[2.0, 0.7], [0.7, 1.0]], s2 = [[0.5, -0.2], [-0.2, 3.0]]
        let trProduct = s1[0][0] * s2[0][0] + s1[0][1] * s2[1][0] + s1[1][0] * s2[0][1] + s1[1][1] * s2[1][1]
        let det1 = s1[0][0] * s1[1][1] - s1[0][1] * s1[1][0], det2 = s2[0][0] * s2[1][1] - s2[0][1] * s2[1][0]
        let traceRoot = (trProduct + 2 * (det1 * det2).squareRoot()).squareRoot()
        let expected = 1.0 + 4.0 + (s1[0][0] + s1[1][1]) + (s2[0][0] + s2[1][1]) - 2 * traceRoot
        XCTAssertEqual(frechetDistance(stats([1, 2], s1), stats([0, 0], s2)), expected, accuracy: 1e-12)
    }

    func testMatchesScipySqrtm() {
        // EDM's formula, μ and Σ from reference/… written out: scipy.linalg.sqrtm(Σ₁Σ₂) gives 10.959078590784213
        // for Σ₁ = AAᵀ, Σ₂ = BBᵀ with A = [[2,0,0],[1,1,0],[0.5,−1,1.5]], B = [[1,0.5,0],[0,2,0],[−1,0.25,0.5]].
        let s1 = stats([0, 1, 2], [[4.0, 2.0, 1.0], [2.0, 2.0, -0.5], [1.0, -0.5, 3.5]])
        let s2 = stats([1, -1, 0.5], [[1.25, 1.0, -0.875], [1.0, 4.0, 0.5], [-0.875, 0.5, 1.3125]])
        XCTAssertEqual(frechetDistance(s1, s2), 10.959078590784213, accuracy: 1e-12)
    }

    func testSingularCovariances() {
        // Σ from 3 samples in 8 dimensions has rank 2: finite, ≥ 0, and 0 against itself (the
        // rounding-noise eigenvalues do not leak in through their square roots).
        var rng = RandomGenerator(seed: 4)
        let x = FeatureStatistics(features: rng.normal([3, 8])), y = FeatureStatistics(features: rng.normal([3, 8]))
        let d = frechetDistance(x, y)
        XCTAssertTrue(d.isFinite && d > 0, "\(d)")
        XCTAssertEqual(frechetDistance(x, x), 0, accuracy: 1e-12)
        // Commuting, rank-deficient (rotated, so the zeros are not exact in the input):
        // d² = Σᵢ (√aᵢ − √bᵢ)² still holds.
        let D = 10
        var a = [Double](repeating: 0, count: D), b = [Double](repeating: 0, count: D)
        for i in 4..<D { a[i] = Double(i) }                      // a = (0, 0, 0, 0, 4, 5, …, 9)
        for i in 0..<D where i % 3 != 0 { b[i] = 1 + Double(i) / 2 }   // zeros at 0, 3, 6, 9
        let q = randomRotation(D, seed: 9)
        let zero = [Double](repeating: 0, count: D)
        var expected = 0.0
        for (ai, bi) in zip(a, b) { expected += (ai.squareRoot() - bi.squareRoot()) * (ai.squareRoot() - bi.squareRoot()) }
        XCTAssertEqual(frechetDistance(stats(zero, rotated(q, a)), stats(zero, rotated(q, b))), expected, accuracy: 1e-10)
        XCTAssertEqual(frechetDistance(stats(zero, rotated(q, a)), stats(zero, rotated(q, a))), 0, accuracy: 1e-12)
    }
}

final class FeatureStatisticsTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    func testMeanAndUnbiasedCovariance() {
        // Rows (1, 2), (3, 5), (5, 11): μ = (3, 6); centred rows (−2, −4), (0, −1), (2, 5);
        // Σ = ½·[[8, 18], [18, 42]].
        let f = Tensor<Float>(shape: [3, 2], scalars: [1, 2, 3, 5, 5, 11])
        let s = FeatureStatistics(features: f)
        XCTAssertEqual(s.mu.scalars, [3, 6])
        XCTAssertEqual(s.sigma.scalars, [4, 9, 9, 21])
        XCTAssertEqual(s.count, 3)
        // Streaming in two batches, and far from the origin (no cancellation).
        var acc = FeatureStatistics.Accumulator(dimension: 2)
        acc.add(Tensor(shape: [1, 2], scalars: [1_000_001, 1_000_002]))
        acc.add(Tensor(shape: [2, 2], scalars: [1_000_003, 1_000_005, 1_000_005, 1_000_011]))
        let t = acc.statistics
        XCTAssertEqual(t.mu.scalars, [1_000_003, 1_000_006])
        XCTAssertEqual(t.sigma.scalars, [4, 9, 9, 21])
        XCTAssertEqual(t.count, 3)
    }

    func testBatchesEqualOnePass() {
        var rng = RandomGenerator(seed: 5)
        let f: Tensor<Float> = rng.normal([40, 6], mean: 2, std: 0.5)
        let whole = FeatureStatistics(features: f)
        var acc = FeatureStatistics.Accumulator(dimension: 6)
        for start in stride(from: 0, to: 40, by: 7) {
            let end = min(start + 7, 40)
            acc.add(Tensor(shape: [end - start, 6], scalars: Array(f.scalars[(start * 6)..<(end * 6)])))
        }
        let parts = acc.statistics
        for (a, b) in zip(whole.mu.scalars + whole.sigma.scalars, parts.mu.scalars + parts.sigma.scalars) {
            XCTAssertEqual(a, b, accuracy: 1e-12)
        }
        // Σ is exactly symmetric.
        for i in 0..<6 { for j in 0..<6 { XCTAssertEqual(parts.sigma[i, j], parts.sigma[j, i]) } }
    }

    func testReadsEDMReferenceNPZ() throws {
        // Written by numpy's savez (reference/make_metrics_fixtures.py): mu, sigma = AAᵀ, no count.
        let s = try FeatureStatistics(contentsOf: resource("edm_stats", "npz"))
        XCTAssertEqual(s.mu.scalars, [1, -2, 0.5, 3])
        XCTAssertEqual(s.sigma.shape, [4, 4])
        XCTAssertEqual(s.sigma[0, 0], 4.26, accuracy: 1e-15)
        XCTAssertEqual(s.sigma[1, 2], 0.45, accuracy: 1e-15)
        XCTAssertEqual(s.count, 0)
        XCTAssertEqual(frechetDistance(s, s), 0, accuracy: 1e-12)
    }

    func testWriteReadRoundTrip() throws {
        var rng = RandomGenerator(seed: 6)
        let s = FeatureStatistics(features: rng.normal([10, 5]))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-metrics-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ref.npz")
        try s.write(to: url)
        try s.write(to: url)                                   // overwriting works
        XCTAssertEqual(try FeatureStatistics(contentsOf: url), s)
        // A wrong sigma shape is named.
        XCTAssertThrowsError(try FeatureStatistics(contentsOf: resource("inception_fixture", "npz"))) { error in
            XCTAssertTrue(String(describing: error).contains("mu.npy"), "\(error)")
        }
    }
}
