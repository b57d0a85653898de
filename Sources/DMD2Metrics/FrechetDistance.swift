// The Fréchet distance between two Gaussians (Dowson & Landau 1982), which is FID when the
// Gaussians are fitted to Inception features (Heusel et al. 2017):
//
//   d²(N(μ₁, Σ₁), N(μ₂, Σ₂)) = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)
//
// The trace of the matrix square root is the sum of the square roots of the eigenvalues of
// Σ₁^½ Σ₂ Σ₁^½ (symmetric, positive semi-definite). With Σ₁ = V Λ Vᵀ (orthogonal V),
//   Σ₁^½ Σ₂ Σ₁^½ = V Λ^½ (Vᵀ Σ₂ V) Λ^½ Vᵀ,
// which has the eigenvalues of M = Λ^½ (Vᵀ Σ₂ V) Λ^½, i.e. M_ij = √λᵢ (Vᵀ Σ₂ V)_ij √λⱼ.
// So: one symmetric eigen-decomposition of Σ₁ (vectors), two GEMMs, one of M (values only),
// all in Double with LAPACK's divide-and-conquer solver `dsyevd`.
//
// Singular covariances (fewer samples than dimensions, common in small CPU runs) have eigenvalues
// that are 0 in exact arithmetic but come out as ±(a few ε)·λ_max; their square roots (~10⁻⁸·√λ_max
// each, hundreds of them) would add a visible bias. So, in both decompositions, eigenvalues
// below D·ε·λ_max — numpy's `matrix_rank` threshold, where rounding noise cannot be told from
// signal — count as 0.
//
// EDM (and pytorch-fid) compute the same number with scipy.linalg.sqrtm(Σ₁Σ₂), a general
// (Schur) square root of a non-symmetric product; the symmetric route gives the same value
// without complex parts to discard.
import CLAPACK
import DMD2Core

/// The Fréchet distance between N(a.mu, a.sigma) and N(b.mu, b.sigma) (FID for Inception
/// statistics). Symmetric in a and b, 0 for equal statistics, ≥ 0 up to rounding.
public func frechetDistance(_ a: FeatureStatistics, _ b: FeatureStatistics) -> Double {
    precondition(a.dimension == b.dimension,
                 "frechetDistance: dimensions differ (\(a.dimension) vs \(b.dimension))")
    precondition(a.mu.isFinite && a.sigma.isFinite && b.mu.isFinite && b.sigma.isFinite,
                 "frechetDistance: statistics contain NaN or infinity")
    let D = a.dimension
    let meanTerm = (a.mu - b.mu).dot(a.mu - b.mu)
    var traceA = 0.0, traceB = 0.0
    for i in 0..<D { traceA += a.sigma.scalars[i * D + i]; traceB += b.sigma.scalars[i * D + i] }

    // Σ₁ = V Λ Vᵀ; rows of `vt` are the eigenvectors (vt = Vᵀ).
    let (lambda, vt) = SymmetricEigen.decompose(a.sigma)
    // Vᵀ Σ₂ V = vt · Σ₂ · vtᵀ.
    let projected = matmul(matmul(vt, b.sigma), vt, transposeB: true)
    let root = lambda.map { $0 > noiseFloor(lambda) ? $0.squareRoot() : 0 }
    var m = projected.scalars
    for i in 0..<D {
        for j in 0..<D {
            // Average the two triangles: the GEMMs leave M symmetric only up to rounding.
            m[i * D + j] = root[i] * 0.5 * (projected.scalars[i * D + j] + projected.scalars[j * D + i]) * root[j]
        }
    }
    let mu = SymmetricEigen.eigenvalues(Tensor(shape: [D, D], scalars: m))
    let floor = noiseFloor(mu)
    let traceRoot = mu.reduce(0) { $0 + ($1 > floor ? $1.squareRoot() : 0) }
    return meanTerm + traceA + traceB - 2 * traceRoot
}

/// D·ε·max|λ| for the eigenvalues λ of a D×D symmetric matrix: smaller ones are rounding noise.
private func noiseFloor(_ eigenvalues: [Double]) -> Double {
    Double(eigenvalues.count) * Double.ulpOfOne * eigenvalues.reduce(0) { max($0, abs($1)) }
}

/// C [m, n] = A [m, k] · B (B [k, n], or Bᵀ with B [n, k]), in Double through the backend's GEMM.
func matmul(_ a: Tensor<Double>, _ b: Tensor<Double>, transposeB: Bool = false) -> Tensor<Double> {
    let (m, k) = (a.shape[0], a.shape[1])
    let n = transposeB ? b.shape[0] : b.shape[1]
    precondition(a.rank == 2 && b.rank == 2 && (transposeB ? b.shape[1] : b.shape[0]) == k,
                 "matmul: \(a.shape) · \(b.shape)\(transposeB ? "ᵀ" : "") do not fit")
    var c = Tensor<Double>.zeros([m, n])
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                Compute.backend.gemm(transA: false, transB: transposeB, m: m, n: n, k: k,
                                     alpha: 1, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: transposeB ? k : n,
                                     beta: 0, c: pc.baseAddress!, ldc: n)
            }
        }
    }
    return c
}

/// Eigen-decomposition of a real symmetric matrix with LAPACK's `dsyevd` (divide and conquer).
public enum SymmetricEigen {
    /// Eigenvalues (ascending) and eigenvectors of symmetric S [n, n] (only its upper triangle is
    /// read): `vectorRows[k, :]` is the unit eigenvector of `values[k]`, so
    /// S = vectorRowsᵀ · diag(values) · vectorRows.
    public static func decompose(_ s: Tensor<Double>) -> (values: [Double], vectorRows: Tensor<Double>) {
        let (values, a) = run(s, vectors: true)
        // Column-major output: eigenvector k is column k, i.e. row k of our row-major buffer.
        return (values, Tensor(shape: s.shape, scalars: a))
    }

    /// Eigenvalues (ascending) of symmetric S [n, n].
    public static func eigenvalues(_ s: Tensor<Double>) -> [Double] { run(s, vectors: false).values }

    private static func run(_ s: Tensor<Double>, vectors: Bool) -> (values: [Double], matrix: [Double]) {
        precondition(s.rank == 2 && s.shape[0] == s.shape[1], "SymmetricEigen: expected a square matrix, got \(s.shape)")
        let n = s.shape[0]
        guard n > 0 else { return ([], []) }
        // A symmetric matrix reads the same in column-major order; we pass 'L' for the
        // column-major lower triangle, which is the row-major upper one.
        var a = s.scalars
        var w = [Double](repeating: 0, count: n)
        let info = a.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in
                LAPACKE_dsyevd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: vectors ? "V" : "N")), CChar(UInt8(ascii: "L")),
                               Int32(n), pa.baseAddress, Int32(n), pw.baseAddress)
            }
        }
        precondition(info == 0, info < 0
            ? "SymmetricEigen: dsyevd rejected argument \(-info)"
            : "SymmetricEigen: dsyevd did not converge (\(info) eigenvalues failed) for a \(n)×\(n) matrix")
        return (w, a)
    }
}
