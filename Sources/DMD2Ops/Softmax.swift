// Softmax along one axis.
//
// For each row r (every index of the other axes) of x, over the J entries of the axis:
//   y[r, j] = exp(x[r, j] − m_r) / Σ_k exp(x[r, k] − m_r),  m_r = max_k x[r, k]
// (subtracting the row maximum changes nothing mathematically and keeps exp from overflowing).
// Backward (the Jacobian is diag(y) − y·yᵀ per row):
//   dx[r, j] = y[r, j]·(dy[r, j] − Σ_k dy[r, k]·y[r, k]).
// The backend primitive works on rows of the last axis; another axis is moved last by a
// permutation, and moved back afterwards (the backward does the same to dy and dx).
import DMD2Core
import RealModule

/// Softmax of `x` along `axis` (default: the last axis; negative axes count from the end).
///
/// Mathematical properties: every slice along `axis` of the result is positive and sums to 1;
/// adding a constant to a slice of x does not change the result (so dx sums to 0 along `axis`).
public func softmax<T>(_ x: Variable<T>, axis: Int = -1) -> Variable<T> {
    let rank = x.value.rank
    precondition(rank >= 1, "softmax: input must have at least one axis, got shape \(x.shape)")
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < rank, "softmax: axis \(axis) out of range for shape \(x.shape)")

    // Move `a` last: toLast[i] is the source axis of axis i; fromLast undoes it.
    let toLast = (0..<rank).filter { $0 != a } + [a]
    let fromLast = (0..<rank).map { i in toLast.firstIndex(of: i)! }
    let moves = a != rank - 1
    let xLast = moves ? x.value.permuted(toLast) : x.value          // [R…, J]
    let J = xLast.shape[rank - 1], R = xLast.count / Swift.max(1, J)

    let yLast = Tensor<T>(shape: xLast.shape) { yp in                 // [R…, J]
        xLast.withUnsafeBufferPointer { xp in Compute.backend.softmaxRows(xp, rows: R, cols: J, yp) }
    }
    let y = moves ? yLast.permuted(fromLast) : yLast                  // x's shape
    return Variable.record("softmax", y, parents: [x]) { dY, _ in
        let dYLast = moves ? dY.permuted(toLast) : dY                 // [R…, J]
        let dXLast = Tensor<T>(shape: yLast.shape) { dxp in
            yLast.withUnsafeBufferPointer { yp in
                dYLast.withUnsafeBufferPointer { dyp in
                    Compute.backend.softmaxRowsBackward(yp, dyp, rows: R, cols: J, dxp)
                }
            }
        }
        return [moves ? dXLast.permuted(fromLast) : dXLast]           // x's shape
    }
}

// MARK: Scalar formulas (the `softmaxRows` and `softmaxRowsBackward` primitives)

extension Formula {
    /// One row: y_j = exp(x_j − m)/Σ_k exp(x_k − m) with m = max_k x_k.
    @inlinable public static func softmaxRow<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>) {
        var m = -T.infinity
        for v in x { m = Swift.max(m, v) }
        var s: T = 0
        for v in x { s += T.exp(v - m) }
        for j in 0..<x.count { y[j] = T.exp(x[j] - m) / s }
    }

    /// One row: dx_j = y_j·(dy_j − Σ_k dy_k·y_k).
    @inlinable public static func softmaxRowBackward<T: TensorScalar>(
        _ y: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, _ dx: UnsafeMutableBufferPointer<T>
    ) {
        var d: T = 0
        for j in 0..<y.count { d += dy[j] * y[j] }
        for j in 0..<y.count { dx[j] = y[j] * (dy[j] - d) }
    }
}
