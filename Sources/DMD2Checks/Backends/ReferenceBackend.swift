// The reference backend: every primitive as plain loops over the ops' scalar formulas.
//
// No SIMD, no BLIS, no threads — slow, and meant to be read. It is the yardstick the fast CPU
// backend and any GPU adapter are compared with (the shadow backend and the conformance suite).
// The arithmetic of each elementwise, GroupNorm and softmax primitive is the op's `Formula`,
// written beside the op in DMD2Ops (Elementwise.swift, GroupNorm.swift, Softmax.swift); GEMM,
// reductions, layout, convolution lowering and resampling are their loops here.
import DMD2Core
import DMD2Ops

public final class ReferenceBackend: Backend {
    public let name = "reference"
    public init() {}

    // MARK: GEMM: C[i, j] = α·Σ_p op(A)[i, p]·op(B)[p, j] + β·C[i, j]

    public func gemm<T: TensorScalar>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: T, a: UnsafePointer<T>, lda: Int,
        b: UnsafePointer<T>, ldb: Int,
        beta: T, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var s: T = 0
                for p in 0..<k {
                    let aip = transA ? a[p * lda + i] : a[i * lda + p]
                    let bpj = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += aip * bpj
                }
                c[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * ldc + j])
            }
        }
    }

    // MARK: Elementwise

    public func unary<T: TensorScalar>(_ op: UnaryOp, _ x: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>) {
        for i in 0..<x.count { y[i] = Formula.unary(op, x[i]) }
    }

    public func binary<T: TensorScalar>(
        _ op: BinaryOp, _ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>
    ) {
        for i in 0..<a.count { y[i] = Formula.binary(op, a[i], b[i]) }
    }

    public func affine<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, scale: T, shift: T, _ y: UnsafeMutableBufferPointer<T>) {
        for i in 0..<x.count { y[i] = scale * x[i] + shift }
    }

    public func nanToNum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, nan: T, posInf: T, negInf: T, _ y: UnsafeMutableBufferPointer<T>) {
        for i in 0..<x.count {
            let v = x[i]
            y[i] = v.isNaN ? nan : (v == .infinity ? posInf : (v == -.infinity ? negInf : v))
        }
    }

    // MARK: Reductions

    public func sumAxis<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, outer: Int, reduced: Int, inner: Int, _ y: UnsafeMutableBufferPointer<T>) {
        for o in 0..<outer {
            for i in 0..<inner {
                var s: T = 0
                for r in 0..<reduced { s += x[(o * reduced + r) * inner + i] }
                y[o * inner + i] = s
            }
        }
    }

    public func sum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>) -> T { x.reduce(0, +) }

    public func dot<T: TensorScalar>(_ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>) -> T {
        var s: T = 0
        for i in 0..<a.count { s += a[i] * b[i] }
        return s
    }

    // MARK: Layout

    public func permute<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], permutation: [Int], _ y: UnsafeMutableBufferPointer<T>) {
        let inStrides = contiguousStrides(shape)
        let outShape = permutation.map { shape[$0] }
        for flat in 0..<outShape.elementCount {
            // Output multi-index → input offset.
            var rem = flat, src = 0
            for d in stride(from: outShape.count - 1, through: 0, by: -1) {
                src += (rem % outShape[d]) * inStrides[permutation[d]]
                rem /= outShape[d]
            }
            y[flat] = x[src]
        }
    }

    public func broadcast<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], to outShape: [Int], _ y: UnsafeMutableBufferPointer<T>) {
        let inStrides = contiguousStrides(shape)
        for flat in 0..<outShape.elementCount {
            var rem = flat, src = 0
            for d in stride(from: outShape.count - 1, through: 0, by: -1) {
                let i = rem % outShape[d]
                rem /= outShape[d]
                if shape[d] != 1 { src += i * inStrides[d] }
            }
            y[flat] = x[src]
        }
    }

    public func copyRows<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, xStride: Int, xOffset: Int,
        _ y: UnsafeMutableBufferPointer<T>, yStride: Int, yOffset: Int, rows: Int, count: Int
    ) {
        for r in 0..<rows {
            for j in 0..<count { y[r * yStride + yOffset + j] = x[r * xStride + xOffset + j] }
        }
    }

    // MARK: Convolution lowering

    public func im2col<T: TensorScalar>(
        _ x: UnsafePointer<T>, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ col: UnsafeMutablePointer<T>, ldcol: Int
    ) {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        for c in 0..<C { for u in 0..<k { for v in 0..<k { for i in 0..<Ho { for j in 0..<Wo {
            let h = i * s + u - p, w = j * s + v - p
            let inside = h >= 0 && h < H && w >= 0 && w < W
            col[((c * k + u) * k + v) * ldcol + i * Wo + j] = inside ? x[(c * H + h) * W + w] : 0
        } } } } }
    }

    public func col2im<T: TensorScalar>(
        _ col: UnsafePointer<T>, ldcol: Int, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ x: UnsafeMutablePointer<T>
    ) {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        for c in 0..<C { for u in 0..<k { for v in 0..<k { for i in 0..<Ho { for j in 0..<Wo {
            let h = i * s + u - p, w = j * s + v - p
            if h >= 0 && h < H && w >= 0 && w < W {
                x[(c * H + h) * W + w] += col[((c * k + u) * k + v) * ldcol + i * Wo + j]
            }
        } } } } }
    }

    /// y[n, o, i, j] = bias[o] + Σ_{c,u,v} w[o, c, u, v]·x[n, c, i·s + u − p, j·s + v − p], summed
    /// in (c, u, v) order after the bias.
    public func conv2dDirect<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel k: Int, stride s: Int, padding p: Int,
        bias: UnsafeBufferPointer<T>?, _ y: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        for n in 0..<N { for o in 0..<O { for i in 0..<Ho { for j in 0..<Wo {
            var acc: T = bias?[o] ?? 0
            for c in 0..<C { for u in 0..<k { for v in 0..<k {
                let h = i * s + u - p, w = j * s + v - p
                if h >= 0 && h < H && w >= 0 && w < W {
                    acc += weight[((o * C + c) * k + u) * k + v] * x[((n * C + c) * H + h) * W + w]
                }
            } } }
            y[((n * O + o) * Ho + i) * Wo + j] = acc
        } } } }
        return true
    }

    /// dX[n, c, h, w] = Σ_{o,u,v} w[o, c, u, v]·dY[n, o, i, j] over the (i, j) with
    /// i·s + u − p = h and j·s + v − p = w, summed in (o, u, v) order.
    public func conv2dDirectBackwardData<T: TensorScalar>(
        _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ dX: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        for n in 0..<N { for c in 0..<C { for h in 0..<H { for w in 0..<W {
            var acc: T = 0
            for o in 0..<O { for u in 0..<k { for v in 0..<k {
                let hi = h + p - u, wj = w + p - v
                guard hi >= 0, wj >= 0, hi % s == 0, wj % s == 0, hi / s < Ho, wj / s < Wo else { continue }
                acc += weight[((o * C + c) * k + u) * k + v] * dY[((n * O + o) * Ho + hi / s) * Wo + wj / s]
            } } }
            dX[((n * C + c) * H + h) * W + w] = acc
        } } } }
        return true
    }

    /// dW[o, c, u, v] = Σ_{n,i,j} dY[n, o, i, j]·x[n, c, i·s + u − p, j·s + v − p] (0 outside the
    /// image), summed in (n, i, j) order.
    public func conv2dDirectBackwardWeight<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        O: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ dWeight: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        for o in 0..<O { for c in 0..<C { for u in 0..<k { for v in 0..<k {
            var acc: T = 0
            for n in 0..<N { for i in 0..<Ho { for j in 0..<Wo {
                let h = i * s + u - p, w = j * s + v - p
                if h >= 0 && h < H && w >= 0 && w < W {
                    acc += dY[((n * O + o) * Ho + i) * Wo + j] * x[((n * C + c) * H + h) * W + w]
                }
            } } }
            dWeight[((o * C + c) * k + u) * k + v] = acc
        } } } }
        return true
    }

    // MARK: Resampling

    public func avgPool2x2<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        for q in 0..<P { for i in 0..<(H / 2) { for j in 0..<(W / 2) {
            var s: T = 0
            for a in 0..<2 { for b in 0..<2 { s += x[(q * H + 2 * i + a) * W + 2 * j + b] } }
            y[(q * (H / 2) + i) * (W / 2) + j] = s * T(0.25)
        } } }
    }

    public func avgPool2x2Backward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        for q in 0..<P { for h in 0..<H { for w in 0..<W {
            dx[(q * H + h) * W + w] = dy[(q * (H / 2) + h / 2) * (W / 2) + w / 2] * T(0.25)
        } } }
    }

    public func upsampleNearest2x<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        for q in 0..<P { for h in 0..<(2 * H) { for w in 0..<(2 * W) {
            y[(q * 2 * H + h) * 2 * W + w] = x[(q * H + h / 2) * W + w / 2]
        } } }
    }

    public func upsampleNearest2xBackward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        for q in 0..<P { for i in 0..<H { for j in 0..<W {
            var s: T = 0
            for a in 0..<2 { for b in 0..<2 { s += dy[(q * 2 * H + 2 * i + a) * 2 * W + 2 * j + b] } }
            dx[(q * H + i) * W + j] = s
        } } }
    }

    // MARK: GroupNorm: x̂ = (x − μ)/√(σ² + eps), y = γ·x̂ + β, per (n, group)

    public func groupNorm<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        gamma: UnsafeBufferPointer<T>?, beta: UnsafeBufferPointer<T>?,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        let Cg = C / G, M = Cg * L
        for n in 0..<N {
            for g in 0..<G {
                let base = (n * C + g * Cg) * L
                let (mu, r) = Formula.groupNormStatistics(UnsafeBufferPointer(rebasing: x[base..<(base + M)]), eps: eps)
                mean[n * G + g] = mu
                rstd[n * G + g] = r
                for cc in 0..<Cg {
                    let c = g * Cg + cc
                    for l in 0..<L {
                        let i = base + cc * L + l
                        y[i] = Formula.groupNormOutput(x[i], mean: mu, rstd: r, gamma: gamma?[c] ?? 1, beta: beta?[c] ?? 0)
                    }
                }
            }
        }
    }

    public func groupNormBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        gamma: UnsafeBufferPointer<T>?, mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>,
        dGamma: UnsafeMutableBufferPointer<T>?, dBeta: UnsafeMutableBufferPointer<T>?
    ) {
        let Cg = C / G, M = T(Cg * L)
        for c in 0..<C { dGamma?[c] = 0; dBeta?[c] = 0 }
        for n in 0..<N {
            for g in 0..<G {
                let mu = mean[n * G + g], r = rstd[n * G + g]
                // The group's mean(ĝ) and mean(ĝ·x̂), ĝ = γ·dy, then dx per element (Formula).
                var meanG: T = 0, meanGX: T = 0
                for cc in 0..<Cg {
                    let c = g * Cg + cc
                    for l in 0..<L {
                        let i = (n * C + c) * L + l
                        let gh = dy[i] * (gamma?[c] ?? 1)
                        meanG += gh
                        meanGX += gh * (x[i] - mu) * r
                        dGamma?[c] += dy[i] * (x[i] - mu) * r
                        dBeta?[c] += dy[i]
                    }
                }
                meanG /= M
                meanGX /= M
                for cc in 0..<Cg {
                    let c = g * Cg + cc
                    for l in 0..<L {
                        let i = (n * C + c) * L + l
                        dx[i] = Formula.groupNormInputGradient(gHat: dy[i] * (gamma?[c] ?? 1), xHat: (x[i] - mu) * r,
                                                               meanG: meanG, meanGX: meanGX, rstd: r)
                    }
                }
            }
        }
    }

    // MARK: GroupNorm + per-(n, c) affine + SiLU (FusedPrimitives), from the scalar formulas

    public func groupNormSiLU<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        let Cg = C / G, M = Cg * L
        for n in 0..<N {
            for g in 0..<G {
                let base = (n * C + g * Cg) * L
                let (mu, r) = Formula.groupNormStatistics(UnsafeBufferPointer(rebasing: x[base..<(base + M)]), eps: eps)
                mean[n * G + g] = mu
                rstd[n * G + g] = r
                for cc in 0..<Cg {
                    let nc = n * C + g * Cg + cc
                    for l in 0..<L {
                        let i = base + cc * L + l
                        y[i] = Formula.silu(Formula.groupNormOutput(x[i], mean: mu, rstd: r, gamma: scale[nc], beta: shift[nc]))
                    }
                }
            }
        }
    }

    public func groupNormSiLUBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>, dScale: UnsafeMutableBufferPointer<T>, dShift: UnsafeMutableBufferPointer<T>
    ) {
        let Cg = C / G, M = T(Cg * L)
        for n in 0..<N {
            for g in 0..<G {
                let mu = mean[n * G + g], r = rstd[n * G + g]
                // dz = SiLU'(z)·dy with z = x̂·scale + shift; the group's mean(ĝ), mean(ĝ·x̂), ĝ = scale·dz.
                func dz(_ i: Int, _ nc: Int) -> T {
                    Formula.siluBackward(Formula.groupNormOutput(x[i], mean: mu, rstd: r, gamma: scale[nc], beta: shift[nc]), dy[i])
                }
                var meanG: T = 0, meanGX: T = 0
                for cc in 0..<Cg {
                    let nc = n * C + g * Cg + cc
                    var sDz: T = 0, sDzXh: T = 0
                    for l in 0..<L {
                        let i = nc * L + l
                        let d = dz(i, nc), xh = (x[i] - mu) * r
                        sDz += d
                        sDzXh += d * xh
                        meanG += scale[nc] * d
                        meanGX += scale[nc] * d * xh
                    }
                    dShift[nc] = sDz
                    dScale[nc] = sDzXh
                }
                meanG /= M
                meanGX /= M
                for cc in 0..<Cg {
                    let nc = n * C + g * Cg + cc
                    for l in 0..<L {
                        let i = nc * L + l
                        dx[i] = Formula.groupNormInputGradient(gHat: scale[nc] * dz(i, nc), xHat: (x[i] - mu) * r,
                                                               meanG: meanG, meanGX: meanGX, rstd: r)
                    }
                }
            }
        }
    }

    // MARK: Softmax

    public func softmaxRows<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ y: UnsafeMutableBufferPointer<T>) {
        for r in 0..<rows {
            Formula.softmaxRow(UnsafeBufferPointer(rebasing: x[(r * cols)..<((r + 1) * cols)]),
                               UnsafeMutableBufferPointer(rebasing: y[(r * cols)..<((r + 1) * cols)]))
        }
    }

    public func softmaxRowsBackward<T: TensorScalar>(
        _ y: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ dx: UnsafeMutableBufferPointer<T>
    ) {
        for r in 0..<rows {
            let row = (r * cols)..<((r + 1) * cols)
            Formula.softmaxRowBackward(UnsafeBufferPointer(rebasing: y[row]), UnsafeBufferPointer(rebasing: dy[row]),
                                       UnsafeMutableBufferPointer(rebasing: dx[row]))
        }
    }
}
