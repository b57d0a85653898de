// ADM's self-attention core with interleaved q, k, v (docs/ARCHITECTURE-ADM.md, UNetBlock item 6).
//
// Letters: N batch, heads, d head dim, C = heads·d, L = H·W positions, B = N·heads, b = (n, head).
// Input qkv [N, 3C, H, W]: channel head·3d + c·3 + s holds q (s = 0), k (s = 1) or v (s = 2) of
// channel c of that head, i.e. qkv viewed as [N, heads, d, 3, L]. Per b, with q, k, v [d, L]:
//   S = qᵀk/√d          [L, L]   S[i, j] = Σ_c q[c, i]·k[c, j] / √d   (query i, key j)
//   W = softmax_j(S)    [L, L]   rows sum to 1
//   A = v·Wᵀ            [d, L]   A[c, i] = Σ_j W[i, j]·v[c, j]
// Output [N, C, H, W] with channel head·d + c — exactly A for b = 0..<B laid end to end.
// Backward, given dA [d, L]:
//   dv = dA·W           [d, L]   dv[c, j] = Σ_i dA[c, i]·W[i, j]
//   dW = dAᵀ·v          [L, L]   dW[i, j] = Σ_c dA[c, i]·v[c, j]
//   dS = softmax VJP    [L, L]   dS[i, j] = W[i, j]·(dW[i, j] − Σ_k dW[i, k]·W[i, k])
//   dq = k·dSᵀ/√d       [d, L]   dq[c, i] = Σ_j k[c, j]·dS[i, j] / √d
//   dk = q·dS/√d        [d, L]   dk[c, j] = Σ_i q[c, i]·dS[i, j] / √d
// and dq, dk, dv are interleaved back into dqkv.
//
// Layout: one permutation de-interleaves qkv into [3, B, d, L] (q block, k block, v block; each
// b's [d, L] matrix contiguous), so every product is a plain GEMM on contiguous matrices. The loop
// over b is sequential; each GEMM and softmax call is itself multi-threaded.
//
// Memory: when a gradient will be needed, the forward keeps every W ([B, L, L]) for the backward
// instead of recomputing it (saves one GEMM and one exp pass per b). At the largest ADM attention
// level (N = 8, heads = 6, 32×32 → L = 1024) that is 8·6·1024²·4 B ≈ 200 MB in Float per
// attention layer, freed with the graph. Without gradients (inference, NoGrad) a single [L, L]
// buffer is reused for every b.
import DMD2Core

/// ADM's attention core: softmax(qᵀk/√d)-weighted sums of v, per head, for qkv [N, 3·C, H, W]
/// with q, k, v interleaved per channel (channel head·3d + c·3 + s, s = 0 q, 1 k, 2 v); returns
/// [N, C, H, W] with channel head·d + c. `C` must split into `heads` heads of d = C/heads channels.
///
/// This is only the core: ADM applies GroupNorm and the 1×1 `qkv` conv before it and the 1×1
/// `proj` conv and residual after it.
public func attention<T>(qkv: Variable<T>, heads: Int) -> Variable<T> {
    let shape = qkv.shape
    precondition(shape.count == 4 && shape.allSatisfy { $0 > 0 },
                 "attention: qkv must be a non-empty [N, 3·C, H, W], got \(shape)")
    let N = shape[0], C3 = shape[1], H = shape[2], Wd = shape[3]
    precondition(heads >= 1 && C3 % (3 * heads) == 0,
                 "attention: \(C3) qkv channels of \(shape) do not split into \(heads) heads × 3 × d")
    let C = C3 / 3, d = C / heads, L = H * Wd, B = N * heads
    let scale = 1 / T(d).squareRoot()                                  // 1/√d
    let dL = d * L, LL = L * L

    // De-interleave: [N, heads, d, 3, L] → [3, N, heads, d, L] = [3, B, d, L].
    let qkvT = qkv.value.reshaped([N, heads, d, 3, L]).permuted([3, 0, 1, 2, 4])
    let (qOffset, kOffset, vOffset) = (0, B * dL, 2 * B * dL)       // q, k, v blocks of qkvT

    // All W [B, L, L] when the backward will need them, else one reused [L, L] buffer. Each W_b
    // is written in full by softmaxRows, so the buffer is not zero-filled first.
    let keepWeights = NoGrad.isRecording && qkv.requiresGrad
    let wStride = keepWeights ? LL : 0
    var logits = Tensor<T>.zeros([L, L])                               // S for the current b
    var output: Tensor<T>?

    let weights = Tensor<T>(shape: [keepWeights ? B : 1, L, L]) { w in  // W [B or 1, L, L]
        output = Tensor<T>(shape: [N, C, H, Wd]) { a in                // A [B, d, L]
            qkvT.withUnsafeBufferPointer { t in
                logits.withUnsafeMutableBufferPointer { s in
                    let t = t.baseAddress!, a = a.baseAddress!
                    let s = s                                          // (the closure's buffer is inout)
                    for b in 0..<B {
                        let q = t + qOffset + b * dL, k = t + kOffset + b * dL, v = t + vOffset + b * dL   // [d, L] each
                        let wb = UnsafeMutableBufferPointer(rebasing: w[(b * wStride)..<(b * wStride + LL)])  // [L, L]
                        // S = qᵀ·k / √d: [L, d]·[d, L].
                        Compute.backend.gemm(transA: true, transB: false, m: L, n: L, k: d, alpha: scale,
                                             a: q, lda: L, b: k, ldb: L, beta: 0, c: s.baseAddress!, ldc: L)
                        // W = softmax over keys j (rows of S).
                        Compute.backend.softmaxRows(UnsafeBufferPointer(s), rows: L, cols: L, wb)
                        // A = v·Wᵀ: [d, L]·[L, L]ᵀ.
                        Compute.backend.gemm(transA: false, transB: true, m: d, n: L, k: L, alpha: 1,
                                             a: v, lda: L, b: UnsafePointer(wb.baseAddress!), ldb: L,
                                             beta: 0, c: a + b * dL, ldc: L)
                    }
                }
            }
        }
    }
    let y = output!                                                    // [N, C, H, W]

    return Variable.record("attention", y, parents: [qkv]) { dA, _ in
        // dqkvᵀ [3, B, d, L], and dW, dS [L, L]: scratch for the current b (written in full per b).
        let grads = Tensor<T>.withBuffers(reading: [qkvT, weights, dA], writing: [[3, N, heads, d, L], [L, L], [L, L]]) { i, o in
            let t = i[0]!.baseAddress!, w = i[1]!, da = i[2]!.baseAddress!                  // W [B, L, L]
            let g = o[0].baseAddress!, dw = o[1], ds = o[2]
            for b in 0..<B {
                let q = t + qOffset + b * dL, k = t + kOffset + b * dL, v = t + vOffset + b * dL  // [d, L]
                let dq = g + qOffset + b * dL, dk = g + kOffset + b * dL, dv = g + vOffset + b * dL  // [d, L]
                let dAb = da + b * dL                                         // [d, L]
                let wb = UnsafeBufferPointer(rebasing: w[(b * LL)..<((b + 1) * LL)])  // [L, L]
                // dv = dA·W: [d, L]·[L, L].
                Compute.backend.gemm(transA: false, transB: false, m: d, n: L, k: L, alpha: 1,
                                     a: dAb, lda: L, b: wb.baseAddress!, ldb: L,
                                     beta: 0, c: dv, ldc: L)
                // dW = dAᵀ·v: [L, d]·[d, L].
                Compute.backend.gemm(transA: true, transB: false, m: L, n: L, k: d, alpha: 1,
                                     a: dAb, lda: L, b: v, ldb: L,
                                     beta: 0, c: dw.baseAddress!, ldc: L)
                // dS = softmax VJP of the rows of W.
                Compute.backend.softmaxRowsBackward(wb, UnsafeBufferPointer(dw), rows: L, cols: L, ds)
                // dq = k·dSᵀ/√d: [d, L]·[L, L]ᵀ.
                Compute.backend.gemm(transA: false, transB: true, m: d, n: L, k: L, alpha: scale,
                                     a: k, lda: L, b: UnsafePointer(ds.baseAddress!), ldb: L,
                                     beta: 0, c: dq, ldc: L)
                // dk = q·dS/√d: [d, L]·[L, L].
                Compute.backend.gemm(transA: false, transB: false, m: d, n: L, k: L, alpha: scale,
                                     a: q, lda: L, b: UnsafePointer(ds.baseAddress!), ldb: L,
                                     beta: 0, c: dk, ldc: L)
            }
        }
        let dqkvT = grads[0]
        // Re-interleave: [3, N, heads, d, L] → [N, heads, d, 3, L] = [N, 3C, H, W].
        return [dqkvT.permuted([1, 2, 3, 0, 4]).reshaped(shape)]
    }
}
