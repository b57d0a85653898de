// The inference-only layers the FID Inception-v3 needs beyond DMD2Ops, on Tensor<Float>.
//
// Letters: N images, C channels, H×W input, O output channels, kh×kw kernel, s stride,
// (ph, pw) zero padding of rows and columns, Ho×Wo output, P = N·C planes, L = Ho·Wo.
//
// DMD2Ops' `Conv2D` (the training conv, with a backward pass) takes square k×k kernels with the
// same padding on both axes. Inception-v3 also has 1×7, 7×1, 1×3 and 3×1 kernels padded along one
// axis only ((0, 3), (3, 0), …). So convolution here has its own rectangular im2col; like
// `Conv2D` it unfolds several images side by side and runs one GEMM per group
// (`Compute.backend.gemm`), with the group sized by a column budget (`colBudget`) instead of
// `Conv2D`'s column target, and it adds the bias and applies ReLU while scattering the GEMM's
// output, with no backward pass. It is checked against a direct loop and, on square kernels,
// against `Conv2D`.
// Pooling is max 3×3 (stride 2, or stride 1 with −∞ padding) and average
// 3×3 / stride 1 / padding 1 *excluding the padding from the count* (PyTorch's
// count_include_pad=False, TF's "SAME" average pool), which no backend primitive covers; the
// resize is TF's legacy bilinear. These are plain loops here: they are inference-only (no
// backward), Float-only, and each is tested against a direct formula and, through the whole
// network, against reference/inception_numpy.py.
import DMD2Core

public enum InceptionOps {
    // MARK: Convolution

    /// Unfolded-image budget (floats) for one GEMM: images are grouped until col reaches it.
    public static let colBudget = 4 << 20

    /// y = ReLU(conv(x, weight) + bias), x [N, C, H, W], weight [O, C, kh, kw], bias [O],
    /// zero padding `padding.h` rows above and below, `padding.w` columns left and right:
    ///   y[n, o, i, j] = max(0, bias[o] + Σ_{c,u,v} weight[o, c, u, v]·x[n, c, i·s + u − ph, j·s + v − pw]).
    ///
    /// Lowered to GEMM over a group of g images at once, as DMD2Ops' `Conv2D` does:
    /// col [K = C·kh·kw, g·L] holds image n's unfolding in columns n·L ..< (n+1)·L, one GEMM gives
    /// Y [O, g·L] = W [O, K]·col, and bias and ReLU are applied while copying Y to [g, O, L].
    /// At 17×17 and 8×8 a single image's GEMM is small (L = 289 or 64 columns); grouping makes
    /// fewer, larger GEMMs. On one thread that costs the same (≈ 0.25 CPU-s per image either
    /// way); with several threads each GEMM ends in a barrier where all threads wait for the
    /// slowest, and on a busy machine fewer barriers measured 1.2–2× faster. g is as large as
    /// keeps col within `colBudget` floats (16 MB): 1 image for the 147×147 stem, 2–3 at 35×35,
    /// about 12 at 17×17, 16–32 at 8×8.
    public static func convReLU(
        _ x: Tensor<Float>, weight: Tensor<Float>, bias: Tensor<Float>, stride s: Int, padding: (h: Int, w: Int),
        relu: Bool = true
    ) -> Tensor<Float> {
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[1],
                     "convReLU: input \(x.shape) and weight \(weight.shape) must be [N, C, H, W] and [O, C, kh, kw]")
        let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (O, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (ph, pw) = padding
        precondition(bias.shape == [O], "convReLU: bias \(bias.shape) for weight \(weight.shape)")
        precondition(s >= 1 && ph >= 0 && pw >= 0 && H + 2 * ph >= kh && W + 2 * pw >= kw,
                     "convReLU: kernel \(kh)×\(kw), stride \(s), padding \(padding) does not fit input \(x.shape)")
        let Ho = (H + 2 * ph - kh) / s + 1, Wo = (W + 2 * pw - kw) / s + 1
        let L = Ho * Wo, K = C * kh * kw
        let group = max(1, min(N, colBudget / max(1, K * L)))
        var col = [Float](repeating: 0, count: K * group * L)
        var product = [Float](repeating: 0, count: O * group * L)
        return Tensor(shape: [N, O, Ho, Wo]) { y in
            x.withUnsafeBufferPointer { xs in
                weight.withUnsafeBufferPointer { ws in
                    bias.withUnsafeBufferPointer { bs in
                        col.withUnsafeMutableBufferPointer { cs in
                            product.withUnsafeMutableBufferPointer { ps in
                                for n0 in stride(from: 0, to: N, by: group) {
                                    let g = min(group, N - n0)
                                    for i in 0..<g {
                                        im2col(xs.baseAddress! + (n0 + i) * C * H * W, C: C, H: H, W: W, kh: kh, kw: kw,
                                               stride: s, ph: ph, pw: pw, cs.baseAddress! + i * L, rowStride: g * L)
                                    }
                                    // Y [O, g·L] = W [O, K] · col [K, g·L]
                                    Compute.backend.gemm(
                                        transA: false, transB: false, m: O, n: g * L, k: K,
                                        alpha: 1, a: ws.baseAddress!, lda: K, b: cs.baseAddress!, ldb: g * L,
                                        beta: 0, c: ps.baseAddress!, ldc: g * L)
                                    scatterBiasReLU(ps.baseAddress!, bias: bs.baseAddress!, O: O, g: g, L: L,
                                                    relu: relu, y.baseAddress! + n0 * O * L)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// col[(c·kh + u)·kw + v, i·Wo + j] = x[c, i·s + u − ph, j·s + v − pw] (0 outside the image)
    /// for one image x [C, H, W]; col rows are `rowStride` apart (≥ Ho·Wo, so several images'
    /// unfoldings can sit side by side).
    static func im2col(
        _ x: UnsafePointer<Float>, C: Int, H: Int, W: Int, kh: Int, kw: Int, stride s: Int, ph: Int, pw: Int,
        _ col: UnsafeMutablePointer<Float>, rowStride: Int
    ) {
        let Ho = (H + 2 * ph - kh) / s + 1, Wo = (W + 2 * pw - kw) / s + 1
        let L = Ho * Wo
        let box = Shared((x, col))
        parallelFor(C * kh * kw, minChunk: max(1, 8192 / max(1, L))) { row in
            let (x, col) = box.value
            let c = row / (kh * kw), u = (row / kw) % kh, v = row % kw
            let plane = x + c * H * W
            let out = col + row * rowStride
            // Output columns j whose input column w = j·s + v − pw lies in [0, W).
            let jLo = min(Wo, max(0, (pw - v + s - 1) / s))
            let jHi = max(jLo, min(Wo, W - 1 + pw - v < 0 ? 0 : (W - 1 + pw - v) / s + 1))
            for i in 0..<Ho {
                let h = i * s + u - ph
                let dst = out + i * Wo
                guard h >= 0 && h < H && jLo < jHi else { dst.update(repeating: 0, count: Wo); continue }
                let src = plane + h * W + v - pw
                if jLo > 0 { dst.update(repeating: 0, count: jLo) }
                if s == 1 {
                    (dst + jLo).update(from: src + jLo, count: jHi - jLo)
                } else {
                    for j in jLo..<jHi { dst[j] = src[j * s] }
                }
                if jHi < Wo { (dst + jHi).update(repeating: 0, count: Wo - jHi) }
            }
        }
    }

    /// y[n, o, l] = f(Y[o, n·L + l] + bias[o]) for n < g, f = ReLU or identity; Y is [O, g·L].
    static func scatterBiasReLU(
        _ product: UnsafePointer<Float>, bias: UnsafePointer<Float>, O: Int, g: Int, L: Int, relu: Bool,
        _ y: UnsafeMutablePointer<Float>
    ) {
        let box = Shared((product, bias, y))
        parallelFor(g * O, minChunk: max(1, 8192 / max(1, L))) { row in
            let (product, bias, y) = box.value
            let n = row / O, o = row % O
            let src = product + o * g * L + n * L, dst = y + row * L
            let b = bias[o]
            if relu {
                for l in 0..<L { dst[l] = max(src[l] + b, 0) }
            } else {
                for l in 0..<L { dst[l] = src[l] + b }
            }
        }
    }

    // MARK: Pooling

    /// Max over k×k windows with stride s; padding p counts as −∞ (never the maximum).
    /// x [N, C, H, W] → [N, C, Ho, Wo], Ho = (H + 2p − k)/s + 1.
    public static func maxPool(_ x: Tensor<Float>, kernel k: Int, stride s: Int, padding p: Int) -> Tensor<Float> {
        precondition(x.rank == 4 && p < k && x.shape[2] + 2 * p >= k && x.shape[3] + 2 * p >= k,
                     "maxPool: \(k)×\(k) window, padding \(p) does not fit input \(x.shape)")
        let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        return Tensor(shape: [N, C, Ho, Wo]) { out in
            x.withUnsafeBufferPointer { xs in
                let box = Shared((xs.baseAddress!, out.baseAddress!))
                parallelFor(N * C) { plane in
                    let src = box.value.0 + plane * H * W, dst = box.value.1 + plane * Ho * Wo
                    for i in 0..<Ho {
                        let h0 = max(i * s - p, 0), h1 = min(i * s - p + k, H)
                        for j in 0..<Wo {
                            let w0 = max(j * s - p, 0), w1 = min(j * s - p + k, W)
                            var m = -Float.infinity
                            for h in h0..<h1 { for w in w0..<w1 { m = max(m, src[h * W + w]) } }
                            dst[i * Wo + j] = m
                        }
                    }
                }
            }
        }
    }

    /// 3×3 average, stride 1, padding 1, dividing each sum by the number of window taps inside
    /// the image (9 inside, 6 on an edge, 4 in a corner). x [N, C, H, W] → same shape.
    public static func avgPool3x3ExcludingPadding(_ x: Tensor<Float>) -> Tensor<Float> {
        precondition(x.rank == 4, "avgPool3x3ExcludingPadding: expected [N, C, H, W], got \(x.shape)")
        let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xs in
                let box = Shared((xs.baseAddress!, out.baseAddress!))
                parallelFor(N * C) { plane in
                    let src = box.value.0 + plane * H * W, dst = box.value.1 + plane * H * W
                    for i in 0..<H {
                        let h0 = max(i - 1, 0), h1 = min(i + 2, H)
                        for j in 0..<W {
                            let w0 = max(j - 1, 0), w1 = min(j + 2, W)
                            var sum: Float = 0
                            for h in h0..<h1 { for w in w0..<w1 { sum += src[h * W + w] } }
                            dst[i * W + j] = sum / Float((h1 - h0) * (w1 - w0))
                        }
                    }
                }
            }
        }
    }

    /// The mean over H×W: x [N, C, H, W] → [N, C].
    public static func spatialMean(_ x: Tensor<Float>) -> Tensor<Float> {
        precondition(x.rank == 4, "spatialMean: expected [N, C, H, W], got \(x.shape)")
        let (N, C, L) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        return x.reshaped([N * C, L]).sum(axis: 1).reshaped([N, C]) * (1 / Float(L))
    }

    // MARK: Channels

    /// Concatenation along the channel axis: [N, C₁, H, W], [N, C₂, H, W], … → [N, ΣCᵢ, H, W].
    public static func concatChannels(_ parts: [Tensor<Float>]) -> Tensor<Float> {
        precondition(!parts.isEmpty, "concatChannels: nothing to concatenate")
        let (N, H, W) = (parts[0].shape[0], parts[0].shape[2], parts[0].shape[3])
        for p in parts {
            precondition(p.rank == 4 && p.shape[0] == N && p.shape[2] == H && p.shape[3] == W,
                         "concatChannels: part \(p.shape) does not match [\(N), ·, \(H), \(W)]")
        }
        let total = parts.reduce(0) { $0 + $1.shape[1] }
        var y = Tensor<Float>(shape: [N, total, H, W]) { _ in }
        var offset = 0
        y.withUnsafeMutableBufferPointer { ys in
            for p in parts {
                let size = p.shape[1] * H * W
                p.withUnsafeBufferPointer { ps in
                    // Row n of part p (C_p·H·W values) goes to image n at channel `offset`.
                    Compute.backend.copyRows(ps, xStride: size, xOffset: 0, ys, yStride: total * H * W,
                                             yOffset: offset * H * W, rows: N, count: size)
                }
                offset += p.shape[1]
            }
        }
        return y
    }

    // MARK: Resize

    /// Bilinear resize of planes [P, H, W] → [P, Ho, Wo] the way TensorFlow's legacy
    /// `ResizeBilinear` (align_corners=False, no half-pixel centres) does it, which is what the
    /// 2015 FID graph and StyleGAN/EDM's detector (affine_grid + grid_sample, border padding)
    /// compute: output row i samples input row y = i·H/Ho, between y₀ = ⌊y⌋ and
    /// y₁ = min(y₀ + 1, H − 1) with weights (1 − t, t), t = y − y₀; columns likewise.
    /// Equal sizes give the identity. Rows are resized first, then columns.
    public static func resizeBilinearTF(_ x: Tensor<Float>, height Ho: Int, width Wo: Int) -> Tensor<Float> {
        precondition(x.rank >= 2 && Ho >= 1 && Wo >= 1, "resizeBilinearTF: input \(x.shape) to \(Ho)×\(Wo)")
        let H = x.shape[x.rank - 2], W = x.shape[x.rank - 1]
        let P = x.count / max(1, H * W)
        let rows = taps(input: H, output: Ho), cols = taps(input: W, output: Wo)
        var mid = [Float](repeating: 0, count: P * H * Wo)         // columns resized: [P, H, Wo]
        let outShape = Array(x.shape.dropLast(2)) + [Ho, Wo]
        return Tensor(shape: outShape) { out in
            x.withUnsafeBufferPointer { xs in
                mid.withUnsafeMutableBufferPointer { ms in
                    let box = Shared((xs.baseAddress!, ms.baseAddress!, out.baseAddress!))
                    parallelFor(P) { plane in
                        let (xp, mp, op) = box.value
                        let src = xp + plane * H * W, m = mp + plane * H * Wo, dst = op + plane * Ho * Wo
                        for h in 0..<H {
                            for (j, tap) in cols.enumerated() {
                                m[h * Wo + j] = src[h * W + tap.i0] * tap.w0 + src[h * W + tap.i1] * tap.w1
                            }
                        }
                        for (i, tap) in rows.enumerated() {
                            for j in 0..<Wo {
                                dst[i * Wo + j] = m[tap.i0 * Wo + j] * tap.w0 + m[tap.i1 * Wo + j] * tap.w1
                            }
                        }
                    }
                }
            }
        }
    }

    /// For each output index: the two input indices and their weights (positions in Double).
    static func taps(input n: Int, output m: Int) -> [(i0: Int, i1: Int, w0: Float, w1: Float)] {
        (0..<m).map { i in
            let position = Double(i) * Double(n) / Double(m)
            let i0 = min(Int(position.rounded(.down)), n - 1)
            let t = position - Double(i0)
            return (i0, min(i0 + 1, n - 1), Float(1 - t), Float(t))
        }
    }
}

/// Carries pointers into `parallelFor` bodies, whose chunks read shared inputs and write
/// disjoint outputs.
struct Shared<V>: @unchecked Sendable {
    let value: V
    init(_ value: V) { self.value = value }
}
