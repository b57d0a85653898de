import RealModule
// CPU GroupNorm and row softmax: optimised forms of Formula.groupNormStatistics, groupNormOutput,
// groupNormInputGradient, softmaxRow and softmaxRowBackward (DMD2Ops/GroupNorm.swift, Softmax.swift),
// checked against the reference backend (which calls those formulas) by the conformance suite.
//
// GroupNorm (Wu & He 2018) as ADM uses it: x is [N, C, L] (L = H·W), G contiguous groups of
// C/G channels; statistics per (n, g) over C/G·L values, biased variance, then a per-channel
// affine γ, β. Statistics are accumulated in Double for both element types, so Float results
// do not drift with the group size.
//
// Speed: ops call these through `any Backend`, where a plain generic method runs unspecialised
// (every `+` on T goes through a witness table, ~10–30× slower). `@_specialize` compiles a Float
// and a Double copy of each kernel and makes the generic entry point jump to them.

extension CPUBackend {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func groupNorm<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        gamma: UnsafeBufferPointer<T>?, beta: UnsafeBufferPointer<T>?,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        precondition(C % G == 0, "groupNorm: \(C) channels do not split into \(G) groups")
        precondition(x.count == N * C * L && y.count == x.count && mean.count == N * G && rstd.count == N * G,
                     "groupNorm: buffer sizes do not match [N=\(N), C=\(C), L=\(L)], G=\(G)")
        guard x.count > 0 else { return }
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

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func groupNormBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        gamma: UnsafeBufferPointer<T>?, mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>,
        dGamma: UnsafeMutableBufferPointer<T>?, dBeta: UnsafeMutableBufferPointer<T>?
    ) {
        let Cg = C / G, M = Cg * L
        precondition(x.count == N * C * L && dy.count == x.count && dx.count == x.count,
                     "groupNormBackward: buffer sizes do not match [N=\(N), C=\(C), L=\(L)]")
        guard x.count > 0 else {
            for c in 0..<C { dGamma?[c] = 0; dBeta?[c] = 0 }
            return
        }
        // One pass computes, per (n, c), the sums over l of dy and of dy·x̂ (x̂ = (x − μ)·r):
        //   sumDy[n, c] = Σ_l dy,  sumDyXh[n, c] = Σ_l dy·x̂.
        // They give both the group means of ĝ = γ·dy and ĝ·x̂ needed by dx, and the parameter
        // gradients dβ_c = Σ_n sumDy[n, c], dγ_c = Σ_n sumDyXh[n, c]. A second pass writes
        //   dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)).
        var sumDy = [Double](repeating: 0, count: N * C), sumDyXh = [Double](repeating: 0, count: N * C)
        sumDy.withUnsafeMutableBufferPointer { sdy in
            sumDyXh.withUnsafeMutableBufferPointer { sdx in
                let box = UncheckedSendable((x.baseAddress!, dy.baseAddress!, dx.baseAddress!, mean.baseAddress!,
                                             rstd.baseAddress!, gamma?.baseAddress, sdy.baseAddress!, sdx.baseAddress!))
                parallelFor(N * G) { ng in
                    let (xs, dys, dxs, means, rstds, gp, sumDy, sumDyXh) = box.value
                    let base = ng * M, n = ng / G, g = ng % G
                    let mu = means[ng], r = rstds[ng]
                    var sumG = 0.0, sumGX = 0.0                  // Σ ĝ, Σ ĝ·x̂ over the group
                    for cc in 0..<Cg {
                        let c = g * Cg + cc, row = base + cc * L
                        var a = 0.0, b = 0.0
                        for l in 0..<L {
                            let d = dys[row + l]
                            a += Double(d)
                            b += Double(d * ((xs[row + l] - mu) * r))
                        }
                        sumDy[n * C + c] = a; sumDyXh[n * C + c] = b
                        let gam = Double(gp?[c] ?? 1)
                        sumG += gam * a; sumGX += gam * b
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
            }
        }
        // Parameter gradients: Σ over n of the per-(n, c) sums, in a fixed order.
        for c in 0..<C {
            var sg = 0.0, sb = 0.0
            for n in 0..<N { sg += sumDyXh[n * C + c]; sb += sumDy[n * C + c] }
            dGamma?[c] = T(sg); dBeta?[c] = T(sb)
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func softmaxRows<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == rows * cols && y.count == x.count, "softmaxRows: buffers do not match [\(rows), \(cols)]")
        guard x.count > 0 else { return }
        let box = UncheckedSendable((x.baseAddress!, y.baseAddress!))
        parallelFor(rows, minChunk: Swift.max(1, 2048 / Swift.max(1, cols))) { r in
            let (xs, ys) = box.value
            let src = xs + r * cols, dst = ys + r * cols
            let m = Self.rowMax(src, cols)
            // dst = exp(src − m), s = Σ dst. (libm exp; SIMDMath.exp could serve Float once it is faster.)
            var s: T = 0
            for j in 0..<cols { let e = T.exp(src[j] - m); dst[j] = e; s += e }
            let inv = 1 / s
            for j in 0..<cols { dst[j] *= inv }
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func softmaxRowsBackward<T: TensorScalar>(
        _ y: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ dx: UnsafeMutableBufferPointer<T>
    ) {
        precondition(y.count == rows * cols && dy.count == y.count && dx.count == y.count,
                     "softmaxRowsBackward: buffers do not match [\(rows), \(cols)]")
        guard y.count > 0 else { return }
        let box = UncheckedSendable((y.baseAddress!, dy.baseAddress!, dx.baseAddress!))
        parallelFor(rows, minChunk: Swift.max(1, 2048 / Swift.max(1, cols))) { r in
            let (ys, dys, dxs) = box.value
            let yr = ys + r * cols, gr = dys + r * cols, out = dxs + r * cols
            // d = Σ_k dy·y (eight partial sums, combined in a fixed order), then dx = y·(dy − d).
            var acc = SIMD8<T>(repeating: 0)
            var j = 0
            while j + 8 <= cols {
                acc += UnsafeRawPointer(yr + j).loadUnaligned(as: SIMD8<T>.self)
                    * UnsafeRawPointer(gr + j).loadUnaligned(as: SIMD8<T>.self)
                j += 8
            }
            var d = acc.sum()
            while j < cols { d += yr[j] * gr[j]; j += 1 }
            for j in 0..<cols { out[j] = yr[j] * (gr[j] - d) }
        }
    }

    /// max_j x[j] of one row (x[0] for a row of one; −∞ for an empty row).
    @inlinable
    static func rowMax<T: TensorScalar>(_ x: UnsafePointer<T>, _ n: Int) -> T {
        var m = SIMD8<T>(repeating: -T.infinity)
        var j = 0
        while j + 8 <= n {
            m = pointwiseMax(m, UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<T>.self))
            j += 8
        }
        var result = m.max()
        while j < n { result = Swift.max(result, x[j]); j += 1 }
        return result
    }
}
