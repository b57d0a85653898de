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

// MARK: - GroupNorm + per-(n, c) affine + SiLU, fused (FusedPrimitives)
//
// One pass for the statistics (two sweeps of a group that sits in cache), one that writes y;
// the backward pass reads x and dy twice and writes dx once, keeping dz = dy·SiLU'(z) in dx
// between its two sweeps. The unfused composition it must equal is the default implementation
// in Backend.swift; the scalar formulas are Formula.groupNormStatistics, groupNormOutput,
// silu, siluBackward and groupNormInputGradient (DMD2Ops), which the reference backend calls.
// Statistics and the per-(n, c) sums are accumulated per row in eight SIMD lanes and across rows
// in Double, in a fixed order (each (n, g) is one chunk), so results do not depend on threads.

extension CPUBackend {
    public func groupNormSiLU<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        precondition(G >= 1 && C % G == 0, "groupNormSiLU: \(C) channels do not split into \(G) groups")
        precondition(x.count == N * C * L && y.count == x.count && mean.count == N * G && rstd.count == N * G
                     && scale.count == N * C && shift.count == N * C,
                     "groupNormSiLU: buffer sizes do not match [N=\(N), C=\(C), L=\(L)], G=\(G)")
        guard x.count > 0 else { return }
        if T.self == Float.self {
            Self.groupNormSiLUKernel(x.raw(Float.self), N: N, C: C, L: L, G: G, eps: Float(Double(eps)),
                                     scale.raw(Float.self), shift.raw(Float.self), y.raw(Float.self),
                                     mean.raw(Float.self), rstd.raw(Float.self),
                                     silu: { $0 * SIMDMath.sigmoid($0) })
        } else if T.self == Double.self {
            Self.groupNormSiLUKernel(x.raw(Double.self), N: N, C: C, L: L, G: G, eps: Double(eps),
                                     scale.raw(Double.self), shift.raw(Double.self), y.raw(Double.self),
                                     mean.raw(Double.self), rstd.raw(Double.self),
                                     silu: { z in var r = z; for i in 0..<8 { r[i] = z[i] * Scalars.sigmoid(z[i]) }; return r })
        } else {
            preconditionFailure("groupNormSiLU: Float and Double only, not \(T.self)")
        }
    }

    public func groupNormSiLUBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>, dScale: UnsafeMutableBufferPointer<T>, dShift: UnsafeMutableBufferPointer<T>
    ) {
        precondition(G >= 1 && C % G == 0, "groupNormSiLUBackward: \(C) channels do not split into \(G) groups")
        precondition(x.count == N * C * L && dy.count == x.count && dx.count == x.count && mean.count == N * G
                     && rstd.count == N * G && scale.count == N * C && shift.count == N * C
                     && dScale.count == N * C && dShift.count == N * C,
                     "groupNormSiLUBackward: buffer sizes do not match [N=\(N), C=\(C), L=\(L)], G=\(G)")
        if L == 0 { for i in 0..<(N * C) { dScale[i] = 0; dShift[i] = 0 } }
        guard x.count > 0 else { return }
        if T.self == Float.self {
            Self.groupNormSiLUBackwardKernel(
                x.raw(Float.self), dy.raw(Float.self), N: N, C: C, L: L, G: G,
                scale.raw(Float.self), shift.raw(Float.self), mean.raw(Float.self), rstd.raw(Float.self),
                dx.raw(Float.self), dScale.raw(Float.self), dShift.raw(Float.self),
                siluBackward: { z, g in g * SIMDMath.sigmoid(z) * (1 + z * SIMDMath.sigmoid(-z)) })
        } else if T.self == Double.self {
            Self.groupNormSiLUBackwardKernel(
                x.raw(Double.self), dy.raw(Double.self), N: N, C: C, L: L, G: G,
                scale.raw(Double.self), shift.raw(Double.self), mean.raw(Double.self), rstd.raw(Double.self),
                dx.raw(Double.self), dScale.raw(Double.self), dShift.raw(Double.self),
                siluBackward: { z, g in
                    var r = z
                    for i in 0..<8 { r[i] = g[i] * Scalars.sigmoid(z[i]) * (1 + z[i] * Scalars.sigmoid(-z[i])) }
                    return r
                })
        } else {
            preconditionFailure("groupNormSiLUBackward: Float and Double only, not \(T.self)")
        }
    }

    /// Eight lanes of x[i..<i+8], zero past `end` (a row's tail).
    @inline(__always)
    static func lanes<S: TensorScalar>(_ p: UnsafePointer<S>, _ i: Int, _ end: Int) -> SIMD8<S> {
        if i + 8 <= end { return UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<S>.self) }
        var v = SIMD8<S>(repeating: 0)
        for j in i..<end { v[j - i] = p[j] }
        return v
    }

    /// Store the first `end − i` lanes of v at p + i.
    @inline(__always)
    static func store<S: TensorScalar>(_ v: SIMD8<S>, _ p: UnsafeMutablePointer<S>, _ i: Int, _ end: Int) {
        if i + 8 <= end { UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<S>.self); return }
        for j in i..<end { p[j] = v[j - i] }
    }

    /// Lanes i..<i+8 that lie before `end`.
    @inline(__always)
    static func inside<S: TensorScalar>(_ i: Int, _ end: Int, _: S.Type) -> SIMDMask<SIMD8<S>.MaskStorage> {
        var m = SIMDMask<SIMD8<S>.MaskStorage>(repeating: true)
        if i + 8 > end { for j in 0..<8 where i + j >= end { m[j] = false } }
        return m
    }

    /// Mean and rstd of the group at `p` (Cg rows of L): Σx, then Σ(x − μ)², per row in eight
    /// lanes and across rows in Double (Formula.groupNormStatistics' two passes).
    @inline(__always)
    static func groupStatistics<S: TensorScalar>(_ p: UnsafePointer<S>, rows: Int, L: Int, eps: S) -> (S, S) {
        let M = Double(rows * L)
        var s = 0.0
        for r in 0..<rows {
            var acc = SIMD8<S>(repeating: 0)
            var i = 0
            while i < L { acc += lanes(p + r * L, i, L); i += 8 }
            s += Double(acc.sum())
        }
        let mu = s / M
        let m = SIMD8<S>(repeating: S(mu))
        var v = 0.0
        for r in 0..<rows {
            var acc = SIMD8<S>(repeating: 0)
            var i = 0
            while i < L {
                let d = (lanes(p + r * L, i, L) - m).replacing(with: 0, where: .!inside(i, L, S.self))
                acc = acc.addingProduct(d, d)
                i += 8
            }
            v += Double(acc.sum())
        }
        return (S(mu), S(1 / (v / M + Double(eps)).squareRoot()))
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func groupNormSiLUKernel<S: TensorScalar>(
        _ x: UnsafePointer<S>, N: Int, C: Int, L: Int, G: Int, eps: S,
        _ scale: UnsafePointer<S>, _ shift: UnsafePointer<S>, _ y: UnsafeMutablePointer<S>,
        _ mean: UnsafeMutablePointer<S>, _ rstd: UnsafeMutablePointer<S>,
        silu: (SIMD8<S>) -> SIMD8<S>
    ) {
        let Cg = C / G, M = Cg * L
        let box = UncheckedSendable((x, scale, shift, y, mean, rstd))
        parallelFor(N * G) { ng in
            let (x, scale, shift, y, mean, rstd) = box.value
            let n = ng / G, g = ng % G, base = ng * M
            let (mu, r) = groupStatistics(x + base, rows: Cg, L: L, eps: eps)
            mean[ng] = mu; rstd[ng] = r
            for cc in 0..<Cg {
                // z = (x − μ)·r·scale + shift = x·a + b
                let nc = n * C + g * Cg + cc
                let a = r * scale[nc], b = shift[nc] - mu * a
                let va = SIMD8<S>(repeating: a), vb = SIMD8<S>(repeating: b)
                let src = x + base + cc * L, dst = y + base + cc * L
                var i = 0
                while i < L {
                    store(silu(lanes(src, i, L) * va + vb), dst, i, L)
                    i += 8
                }
            }
        }
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    static func groupNormSiLUBackwardKernel<S: TensorScalar>(
        _ x: UnsafePointer<S>, _ dy: UnsafePointer<S>, N: Int, C: Int, L: Int, G: Int,
        _ scale: UnsafePointer<S>, _ shift: UnsafePointer<S>, _ mean: UnsafePointer<S>, _ rstd: UnsafePointer<S>,
        _ dx: UnsafeMutablePointer<S>, _ dScale: UnsafeMutablePointer<S>, _ dShift: UnsafeMutablePointer<S>,
        siluBackward: (SIMD8<S>, SIMD8<S>) -> SIMD8<S>
    ) {
        let Cg = C / G, M = Cg * L
        let box = UncheckedSendable((x, dy, scale, shift, mean, rstd, dx, dScale, dShift))
        parallelFor(N * G) { ng in
            let (x, dy, scale, shift, mean, rstd, dx, dScale, dShift) = box.value
            let n = ng / G, g = ng % G, base = ng * M
            let mu = mean[ng], r = rstd[ng]
            let vmu = SIMD8<S>(repeating: mu), vr = SIMD8<S>(repeating: r)
            // Sweep 1: dz = SiLU'(z)·dy into dx; per row Σ dz and Σ dz·x̂ (dShift, dScale), and
            // the group's Σ ĝ, Σ ĝ·x̂ with ĝ = scale·dz.
            var sumG = 0.0, sumGX = 0.0
            for cc in 0..<Cg {
                let nc = n * C + g * Cg + cc, row = base + cc * L
                let a = r * scale[nc], b = shift[nc] - mu * a
                let va = SIMD8<S>(repeating: a), vb = SIMD8<S>(repeating: b)
                var accDz = SIMD8<S>(repeating: 0), accDzXh = SIMD8<S>(repeating: 0)
                var i = 0
                while i < L {
                    let xv = lanes(x + row, i, L)
                    let dz = siluBackward(xv * va + vb, lanes(dy + row, i, L)).replacing(with: 0, where: .!inside(i, L, S.self))
                    store(dz, dx + row, i, L)
                    accDz += dz
                    accDzXh = accDzXh.addingProduct(dz, (xv - vmu) * vr)
                    i += 8
                }
                let sDz = Double(accDz.sum()), sDzXh = Double(accDzXh.sum())
                dShift[nc] = S(sDz); dScale[nc] = S(sDzXh)
                sumG += Double(scale[nc]) * sDz; sumGX += Double(scale[nc]) * sDzXh
            }
            // Sweep 2: dx = r·(ĝ − mean ĝ − x̂·mean(ĝ·x̂)) (Formula.groupNormInputGradient).
            let mG = SIMD8<S>(repeating: S(sumG / Double(M))), mGX = SIMD8<S>(repeating: S(sumGX / Double(M)))
            for cc in 0..<Cg {
                let nc = n * C + g * Cg + cc, row = base + cc * L
                let vs = SIMD8<S>(repeating: scale[nc])
                var i = 0
                while i < L {
                    let xh = (lanes(x + row, i, L) - vmu) * vr
                    store(vr * (lanes(UnsafePointer(dx + row), i, L) * vs - mG - xh * mGX), dx + row, i, L)
                    i += 8
                }
            }
        }
    }
}

extension UnsafeBufferPointer where Element: TensorScalar {
    /// The base address seen as its concrete element type (only called where Element is U).
    @inline(__always)
    fileprivate func raw<U: TensorScalar>(_: U.Type) -> UnsafePointer<U> {
        UnsafeRawPointer(baseAddress!).assumingMemoryBound(to: U.self)
    }
}

extension UnsafeMutableBufferPointer where Element: TensorScalar {
    @inline(__always)
    fileprivate func raw<U: TensorScalar>(_: U.Type) -> UnsafeMutablePointer<U> {
        UnsafeMutableRawPointer(baseAddress!).assumingMemoryBound(to: U.self)
    }
}
