// Improved precision and recall (Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019,
// "Improved Precision and Recall Metric for Assessing Generative Models", §2).
//
// Each set of features approximates its distribution's manifold by a union of balls: around
// every sample φ a ball whose radius is the distance to φ's k-th nearest neighbour in the same
// set (itself excluded; k = 3 in the paper). Then
//
//   precision = fraction of generated samples inside the real manifold   (how many fakes look real)
//   recall    = fraction of real samples inside the generated manifold   (how much of the real
//                                                                          variety is produced)
//
// with "inside" meaning ‖φ − φ'‖ ≤ radius(φ') for at least one φ' of the other set. Identical
// sets give 1 and 1; sets far apart give 0 and 0. Distances are computed from features in
// Double as ‖a‖² + ‖b‖² − 2aᵀb (a GEMM per block of rows) and compared squared.
import DMD2Core

/// Precision and recall of generated features against real ones.
public struct PrecisionRecall: Sendable, Equatable {
    public var precision: Double
    public var recall: Double
    /// The neighbourhood size used for the radii.
    public var k: Int

    public init(precision: Double, recall: Double, k: Int) {
        self.precision = precision
        self.recall = recall
        self.k = k
    }
}

/// Precision and recall (k-NN manifolds) of generated features [N_g, D] against real [N_r, D];
/// each set needs more than k samples.
public func precisionRecall(real: Tensor<Float>, generated: Tensor<Float>, k: Int = 3) -> PrecisionRecall {
    precondition(real.rank == 2 && generated.rank == 2 && real.shape[1] == generated.shape[1],
                 "precisionRecall: features must be [N, D] with one D, got \(real.shape) and \(generated.shape)")
    precondition(k >= 1 && real.shape[0] > k && generated.shape[0] > k,
                 "precisionRecall: need k ≥ 1 and more than k samples per set (k = \(k), \(real.shape[0]) real, \(generated.shape[0]) generated)")
    let r = real.converted(to: Double.self), g = generated.converted(to: Double.self)
    let realRadii = kthNeighbourSquaredDistances(r, k: k)
    let generatedRadii = kthNeighbourSquaredDistances(g, k: k)
    return PrecisionRecall(precision: fractionInside(g, manifold: r, squaredRadii: realRadii),
                           recall: fractionInside(r, manifold: g, squaredRadii: generatedRadii), k: k)
}

/// Rows per distance block: bounds the [rows, N] block of squared distances in memory.
private let blockRows = 256

/// For each row of x [N, D], the squared distance to its k-th nearest other row.
func kthNeighbourSquaredDistances(_ x: Tensor<Double>, k: Int) -> [Double] {
    let N = x.shape[0]
    var radii = [Double](repeating: 0, count: N)
    forEachDistanceBlock(x, x) { start, block in
        for r in 0..<block.count / N {
            let i = start + r
            var nearest: [Double] = []          // the k smallest so far, ascending
            for j in 0..<N where j != i {
                let d = block[r * N + j]
                if nearest.count < k || d < nearest[k - 1] {
                    let at = nearest.firstIndex { $0 > d } ?? nearest.count
                    nearest.insert(d, at: at)
                    if nearest.count > k { nearest.removeLast() }
                }
            }
            radii[i] = nearest[k - 1]
        }
    }
    return radii
}

/// The fraction of rows q of `queries` with ‖q − a_j‖² ≤ squaredRadii[j] for some row a_j of `manifold`.
func fractionInside(_ queries: Tensor<Double>, manifold: Tensor<Double>, squaredRadii: [Double]) -> Double {
    let M = manifold.shape[0]
    var inside = 0
    forEachDistanceBlock(queries, manifold) { _, block in
        for r in 0..<block.count / M where (0..<M).contains(where: { block[r * M + $0] <= squaredRadii[$0] }) {
            inside += 1
        }
    }
    return Double(inside) / Double(queries.shape[0])
}

/// Calls `body(firstRow, block)` with squared distances block [rows, M] between consecutive
/// rows of a [N, D] and all rows of b [M, D]: ‖aᵢ‖² + ‖bⱼ‖² − 2aᵢᵀbⱼ, clamped at 0.
func forEachDistanceBlock(_ a: Tensor<Double>, _ b: Tensor<Double>, _ body: (Int, [Double]) -> Void) {
    let (N, D, M) = (a.shape[0], a.shape[1], b.shape[0])
    let normsA = squaredRowNorms(a), normsB = squaredRowNorms(b)
    for start in stride(from: 0, to: N, by: blockRows) {
        let count = min(blockRows, N - start)
        let rowsA = Tensor(shape: [count, D], scalars: Array(a.scalars[(start * D)..<((start + count) * D)]))
        var block = matmul(rowsA, b, transposeB: true).scalars            // aᵢᵀbⱼ [count, M]
        for r in 0..<count {
            for j in 0..<M {
                block[r * M + j] = max(normsA[start + r] + normsB[j] - 2 * block[r * M + j], 0)
            }
        }
        body(start, block)
    }
}

/// ‖xᵢ‖² for each row of x [N, D].
func squaredRowNorms(_ x: Tensor<Double>) -> [Double] {
    x.map(.square).sum(axis: 1).scalars
}
