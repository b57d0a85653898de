// Kernel Inception Distance (Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD
// GANs", §4): the squared maximum mean discrepancy between real and generated features with
// the cubic polynomial kernel
//
//   k(x, y) = (xᵀy/d + 1)³            (d = feature dimension)
//
// estimated without bias on subsets. For X = {x₁…x_m} real and Y = {y₁…y_m} generated:
//
//   MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(xᵢ, xⱼ) + 1/(m(m−1)) Σ_{i≠j} k(yᵢ, yⱼ) − 2/m² Σ_{i,j} k(xᵢ, yⱼ)
//
// Unbiased (its expectation is the population MMD², 0 for equal distributions), so unlike FID it
// does not grow as N shrinks — the reason to report it at the few hundred samples a CPU run
// affords. It can come out slightly negative. Following the paper's code (and StyleGAN's
// metric), we average over `subsets` random subsets of size m = min(subsetSize, N_real, N_gen),
// each drawn without replacement, and report the mean and the standard deviation over subsets.
// When m equals both set sizes every subset is the whole set (MMD²_u does not depend on order), so
// we compute it once and report one subset with std 0 — pass subsetSize < N for a spread.
// Kernel sums are GEMMs in Double.
import DMD2Core

/// KID: the mean and spread of the unbiased MMD² estimate over random subsets.
public struct KernelInceptionDistance: Sendable, Equatable {
    /// Mean of MMD²_u over the subsets (the KID; often reported ×10³).
    public var mean: Double
    /// Standard deviation of MMD²_u over the subsets (population form, as np.std).
    public var std: Double
    /// Number of subsets (1 when m equals both set sizes) and the size m of each.
    public var subsets: Int
    public var subsetSize: Int
    /// MMD²_u of each subset.
    public var values: [Double]

    public init(mean: Double, std: Double, subsets: Int, subsetSize: Int, values: [Double]) {
        self.mean = mean
        self.std = std
        self.subsets = subsets
        self.subsetSize = subsetSize
        self.values = values
    }
}

/// KID between real features [N_r, D] and generated features [N_g, D].
///
/// - Parameters:
///   - subsets: number of random subset pairs (default 100, as StyleGAN/torch-fidelity).
///   - subsetSize: m, capped at min(N_r, N_g) (default 1000); must end up ≥ 2.
///   - seed: subsets are drawn from `RandomGenerator(seed:)`; the result is a function of the
///     features and the seed.
public func kernelInceptionDistance(
    real: Tensor<Float>, generated: Tensor<Float>, subsets: Int = 100, subsetSize: Int = 1000, seed: UInt64 = 0
) -> KernelInceptionDistance {
    precondition(real.rank == 2 && generated.rank == 2 && real.shape[1] == generated.shape[1],
                 "kernelInceptionDistance: features must be [N, D] with one D, got \(real.shape) and \(generated.shape)")
    let m = min(subsetSize, real.shape[0], generated.shape[0])
    precondition(m >= 2 && subsets >= 1,
                 "kernelInceptionDistance: need subsets ≥ 1 and ≥ 2 samples per subset; have \(subsets) subsets of min(\(subsetSize), \(real.shape[0]), \(generated.shape[0])) = \(m)")
    let D = real.shape[1]
    let x = real.converted(to: Double.self), y = generated.converted(to: Double.self)
    var rng = RandomGenerator(seed: seed)
    var values: [Double] = []
    let draws = m == x.shape[0] && m == y.shape[0] ? 1 : subsets       // whole sets: one value
    for _ in 0..<draws {
        let xs = rows(x, sampleWithoutReplacement(m, from: x.shape[0], &rng), D)
        let ys = rows(y, sampleWithoutReplacement(m, from: y.shape[0], &rng), D)
        let kxx = kernelSum(xs, xs, D), kyy = kernelSum(ys, ys, D), kxy = kernelSum(xs, ys, D)
        let M = Double(m)
        values.append((kxx.offDiagonal + kyy.offDiagonal) / (M * (M - 1)) - 2 * kxy.total / (M * M))
    }
    let mean = values.reduce(0, +) / Double(values.count)
    let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
    return KernelInceptionDistance(mean: mean, std: variance.squareRoot(), subsets: draws, subsetSize: m, values: values)
}

/// Σ_{i,j} k(aᵢ, bⱼ) and the same sum without the diagonal i = j (meaningful when a = b),
/// k(a, b) = (aᵀb/D + 1)³; a, b are [m, D].
func kernelSum(_ a: Tensor<Double>, _ b: Tensor<Double>, _ D: Int) -> (total: Double, offDiagonal: Double) {
    let m = a.shape[0], n = b.shape[0]
    let g = matmul(a, b, transposeB: true)              // Gram matrix aᵢᵀbⱼ [m, n]
    var total = 0.0, diagonal = 0.0
    for i in 0..<m {
        for j in 0..<n {
            let t = g.scalars[i * n + j] / Double(D) + 1
            let k = t * t * t
            total += k
            if i == j { diagonal += k }
        }
    }
    return (total, total - diagonal)
}

/// `count` distinct indices from 0..<n (partial Fisher–Yates), in draw order.
func sampleWithoutReplacement(_ count: Int, from n: Int, _ rng: inout RandomGenerator) -> [Int] {
    precondition(count <= n, "sampleWithoutReplacement: \(count) of \(n)")
    var pool = Array(0..<n)
    for i in 0..<count {
        // Uniform j in i..<n: the high word of a 64×64-bit product (bias < 2⁻⁴⁰ for n < 2²⁴;
        // written out so the sequence does not depend on the standard library's algorithm).
        let j = i + Int(UInt64(n - i).multipliedFullWidth(by: rng.next()).high)
        pool.swapAt(i, j)
    }
    return Array(pool[0..<count])
}

/// The rows `indices` of x [N, D] as a new [k, D] tensor.
func rows(_ x: Tensor<Double>, _ indices: [Int], _ D: Int) -> Tensor<Double> {
    var out = [Double]()
    out.reserveCapacity(indices.count * D)
    for i in indices { out += x.scalars[(i * D)..<((i + 1) * D)] }
    return Tensor(shape: [indices.count, D], scalars: out)
}
