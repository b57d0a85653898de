// Shape ops: reshape and permute. Both move no arithmetic, only where elements sit.
//
// reshape: y = x with a new shape of the same element count (storage is row-major and
//   contiguous, so the elements keep their order); dX = dY reshaped back.
// permute: y's axis i is x's axis π(i), i.e. y[i₀, …, i_{r−1}] = x[j] with j_{π(k)} = i_k;
//   dX = dY permuted by π⁻¹ (the inverse permutation undoes the move).
import DMD2Core

/// `x` with a new shape holding the same elements in the same (row-major) order.
/// One extent may be −1; it is inferred from the element count.
///
/// Linear; the backward pass reshapes the gradient back to `x`'s shape.
public func reshape<T>(_ x: Variable<T>, _ shape: [Int]) -> Variable<T> {
    let xShape = x.shape
    return Variable.record("reshape", x.value.reshaped(shape), parents: [x]) { dY, _ in
        [dY.reshaped(xShape)]
    }
}

/// `x` with its axes reordered: the result's axis i is `x`'s axis `permutation[i]`
/// (PyTorch's `x.permute(*permutation)`). Makes a new contiguous tensor.
///
/// Linear; the backward pass applies the inverse permutation to the gradient.
public func permute<T>(_ x: Variable<T>, _ permutation: [Int]) -> Variable<T> {
    precondition(permutation.sorted() == Array(0..<x.value.rank),
                 "permute: \(permutation) is not a permutation of the \(x.value.rank) axes of shape \(x.shape)")
    var inverse = [Int](repeating: 0, count: permutation.count)
    for (i, p) in permutation.enumerated() { inverse[p] = i }
    return Variable.record("permute", x.value.permuted(permutation), parents: [x]) { dY, _ in
        [dY.permuted(inverse)]
    }
}
