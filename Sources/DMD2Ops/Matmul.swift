// Matrix products through BLIS: matmul and the fully connected layer.
//
// matmul: Y[m×n] = A[m×k]·B[k×n];  dA = dY·Bᵀ, dB = Aᵀ·dY.
// linear (PyTorch's convention, weight W is [out, in]): y = x·Wᵀ + b for x [N, in];
//   dx = dy·W, dW = dyᵀ·x, db = Σ_n dy.
import DMD2Core

/// C = op(A)·op(B) into a new [m, n] tensor.
@inlinable
func gemm<T>(_ a: Tensor<T>, transA: Bool = false, _ b: Tensor<T>, transB: Bool = false) -> Tensor<T> {
    precondition(a.rank == 2 && b.rank == 2, "matmul: operands must be matrices, got \(a.shape) and \(b.shape)")
    let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
    let kb = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
    precondition(k == kb, "matmul: inner dimensions differ: \(a.shape)\(transA ? "ᵀ" : "") · \(b.shape)\(transB ? "ᵀ" : "")")
    return Tensor(shape: [m, n]) { c in
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                Compute.backend.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                                     a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                                     beta: 0, c: c.baseAddress!, ldc: n)
            }
        }
    }
}

/// A·B for matrices A [m, k], B [k, n].
public func matmul<T>(_ a: Variable<T>, _ b: Variable<T>) -> Variable<T> {
    let y = gemm(a.value, b.value)
    return Variable.record("matmul", y, parents: [a, b]) { dY, needed in
        [needed[0] ? gemm(dY, b.value, transB: true) : nil,      // dA = dY·Bᵀ
         needed[1] ? gemm(a.value, transA: true, dY) : nil]      // dB = Aᵀ·dY
    }
}

/// y = x·Wᵀ + b, x [N, in], weight [out, in], bias [out].
public func linear<T>(_ x: Variable<T>, weight: Variable<T>, bias: Variable<T>?) -> Variable<T> {
    precondition(x.value.rank == 2 && weight.value.rank == 2 && x.shape[1] == weight.shape[1],
                 "linear: input \(x.shape) does not match weight \(weight.shape) ([out, in])")
    if let bias { precondition(bias.shape == [weight.shape[0]], "linear: bias \(bias.shape) for weight \(weight.shape)") }
    var y = gemm(x.value, weight.value, transB: true)
    if let bias { y = y + bias.value.broadcast(to: y.shape) }
    let parents = [x, weight] + (bias.map { [$0] } ?? [])
    return Variable.record("linear", y, parents: parents) { dY, needed in
        var grads: [Tensor<T>?] = [
            needed[0] ? gemm(dY, weight.value) : nil,               // dx = dy·W
            needed[1] ? gemm(dY, transA: true, x.value) : nil,      // dW = dyᵀ·x
        ]
        if bias != nil { grads.append(needed[2] ? dY.sum(axis: 0) : nil) }   // db = Σ_n dy
        return grads
    }
}
