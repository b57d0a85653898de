import RealModule
// CPU GroupNorm and row softmax.
//
// GroupNorm (Wu & He 2018) as ADM uses it: x is [N, C, L] (L = H·W), G contiguous groups of
// C/G channels; statistics per (n, g) over C/G·L values, biased variance, then a per-channel
// affine γ, β. Statistics are accumulated in Double for both element types, so Float results
// do not drift with the group size.

extension CPUBackend {
    public func groupNorm<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        gamma: UnsafeBufferPointer<T>?, beta: UnsafeBufferPointer<T>?,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        precondition(C % G == 0, "groupNorm: \(C) channels do not split into \(G) groups")
        precondition(x.count == N * C * L && y.count == x.count && mean.count == N * G && rstd.count == N * G,
                     "groupNorm: buffer sizes do not match [N=\(N), C=\(C), L=\(L)], G=\(G)")
        let Cg = C / G, M = Cg * L
        let box = UncheckedSendable((x.baseAddress!, y.baseAddress!, mean.baseAddress!, rstd.baseAddress!,
                                     gamma?.baseAddress, beta?.baseAddress))
        parallelFor(N * G) { ng in
            let (xs, ys, means, rstds, gp, bp) = box.value
            let base = ng * M
            var s = 0.0, ss = 0.0
            for i in 0..<M { let v = Double(xs[base + i]); s += v; ss += v * v }
            let mu = s / Double(M)
            let variance = Swift.max(0, ss / Double(M) - mu * mu)
            let r = 1 / (variance + Double(eps)).squareRoot()
            means[ng] = T(mu); rstds[ng] = T(r)
            let g = ng % G
            for cc in 0..<Cg {
                let c = g * Cg + cc
                let scale = T(r) * (gp?[c] ?? 1)
                let shift = (bp?[c] ?? 0) - T(mu) * scale
                let row = base + cc * L
                for l in 0..<L { ys[row + l] = xs[row + l] * scale + shift }
            }
        }
    }

    public func groupNormBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        gamma: UnsafeBufferPointer<T>?, mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>,
        dGamma: UnsafeMutableBufferPointer<T>?, dBeta: UnsafeMutableBufferPointer<T>?
    ) {
        let Cg = C / G, M = Cg * L
        precondition(x.count == N * C * L && dy.count == x.count && dx.count == x.count,
                     "groupNormBackward: buffer sizes do not match [N=\(N), C=\(C), L=\(L)]")
        let box = UncheckedSendable((x.baseAddress!, dy.baseAddress!, dx.baseAddress!, mean.baseAddress!,
                                     rstd.baseAddress!, gamma?.baseAddress))
        // With x̂ = (x − μ)·r and ĝ = γ·dy: dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) per group.
        parallelFor(N * G) { ng in
            let (xs, dys, dxs, means, rstds, gp) = box.value
            let base = ng * M, g = ng % G
            let mu = means[ng], r = rstds[ng]
            var sumG = 0.0, sumGX = 0.0
            for cc in 0..<Cg {
                let gam = gp?[g * Cg + cc] ?? 1
                let row = base + cc * L
                for l in 0..<L {
                    let gh = Double(dys[row + l] * gam)
                    sumG += gh
                    sumGX += gh * Double((xs[row + l] - mu) * r)
                }
            }
            let mG = T(sumG / Double(M)), mGX = T(sumGX / Double(M))
            for cc in 0..<Cg {
                let gam = gp?[g * Cg + cc] ?? 1
                let row = base + cc * L
                for l in 0..<L {
                    let xh = (xs[row + l] - mu) * r
                    dxs[row + l] = r * (dys[row + l] * gam - mG - xh * mGX)
                }
            }
        }
        // Parameter gradients: per channel, sums over n and l (parallel over channels).
        if dGamma != nil || dBeta != nil {
            let pbox = UncheckedSendable((dGamma?.baseAddress, dBeta?.baseAddress))
            parallelFor(C) { c in
                let (xs, dys, _, means, rstds, _) = box.value
                let (dgp, dbp) = pbox.value
                let g = c / Cg
                var sg = 0.0, sb = 0.0
                for n in 0..<N {
                    let mu = means[n * G + g], r = rstds[n * G + g]
                    let row = (n * C + c) * L
                    for l in 0..<L {
                        sb += Double(dys[row + l])
                        sg += Double(dys[row + l] * (xs[row + l] - mu) * r)
                    }
                }
                dgp?[c] = T(sg); dbp?[c] = T(sb)
            }
        }
    }

    public func softmaxRows<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == rows * cols && y.count == x.count, "softmaxRows: buffers do not match [\(rows), \(cols)]")
        let box = UncheckedSendable((x.baseAddress!, y.baseAddress!))
        parallelFor(rows, minChunk: Swift.max(1, 2048 / Swift.max(1, cols))) { r in
            let (xs, ys) = box.value
            let src = xs + r * cols, dst = ys + r * cols
            var m = -T.infinity
            for j in 0..<cols { m = Swift.max(m, src[j]) }
            var s: T = 0
            for j in 0..<cols { let e = T.exp(src[j] - m); dst[j] = e; s += e }
            let inv = 1 / s
            for j in 0..<cols { dst[j] *= inv }
        }
    }

    public func softmaxRowsBackward<T: TensorScalar>(
        _ y: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ dx: UnsafeMutableBufferPointer<T>
    ) {
        precondition(y.count == rows * cols && dy.count == y.count && dx.count == y.count,
                     "softmaxRowsBackward: buffers do not match [\(rows), \(cols)]")
        let box = UncheckedSendable((y.baseAddress!, dy.baseAddress!, dx.baseAddress!))
        parallelFor(rows, minChunk: Swift.max(1, 2048 / Swift.max(1, cols))) { r in
            let (ys, dys, dxs) = box.value
            let yr = ys + r * cols, gr = dys + r * cols, out = dxs + r * cols
            var d: T = 0
            for j in 0..<cols { d += yr[j] * gr[j] }
            for j in 0..<cols { out[j] = yr[j] * (gr[j] - d) }
        }
    }
}
