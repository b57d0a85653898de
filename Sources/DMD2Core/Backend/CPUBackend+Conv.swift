// CPU convolution lowering (im2col / col2im) and the ADM resampling kernels.
//
// Letters: C channels, H×W input, k kernel, s stride, p zero padding, Ho×Wo output,
// P = N·C independent planes.
//
// Ops reach these methods through `any Backend`, where Swift cannot specialise a generic
// method: the body would run with every `+` and every load dispatched through T's witness
// table, ~10× slower than plain Float code. So each public method only hands its pointers,
// viewed as Float or Double, to a kernel below; at that call the type is concrete and the
// kernel compiles to ordinary (vectorised) loops.

extension CPUBackend {
    public func im2col<T: TensorScalar>(
        _ x: UnsafePointer<T>, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ col: UnsafeMutablePointer<T>, ldcol: Int
    ) {
        Self.checkColumnStride(ldcol, H: H, W: W, k: k, s: s, p: p, "im2col")
        if T.self == Float.self {
            Self.im2colKernel(x.viewed(as: Float.self), C: C, H: H, W: W, k: k, s: s, p: p,
                              col.viewed(as: Float.self), ldcol: ldcol)
        } else if T.self == Double.self {
            Self.im2colKernel(x.viewed(as: Double.self), C: C, H: H, W: W, k: k, s: s, p: p,
                              col.viewed(as: Double.self), ldcol: ldcol)
        } else {
            Self.im2colKernel(x, C: C, H: H, W: W, k: k, s: s, p: p, col, ldcol: ldcol)
        }
    }

    public func col2im<T: TensorScalar>(
        _ col: UnsafePointer<T>, ldcol: Int, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ x: UnsafeMutablePointer<T>
    ) {
        Self.checkColumnStride(ldcol, H: H, W: W, k: k, s: s, p: p, "col2im")
        if T.self == Float.self {
            Self.col2imKernel(col.viewed(as: Float.self), ldcol: ldcol, C: C, H: H, W: W, k: k, s: s, p: p,
                              x.viewed(as: Float.self))
        } else if T.self == Double.self {
            Self.col2imKernel(col.viewed(as: Double.self), ldcol: ldcol, C: C, H: H, W: W, k: k, s: s, p: p,
                              x.viewed(as: Double.self))
        } else {
            Self.col2imKernel(col, ldcol: ldcol, C: C, H: H, W: W, k: k, s: s, p: p, x)
        }
    }

    /// A row of col must hold at least one image's Ho·Wo output positions.
    private static func checkColumnStride(_ ldcol: Int, H: Int, W: Int, k: Int, s: Int, p: Int, _ op: String) {
        let L = ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1)
        precondition(ldcol >= L, "\(op): ldcol \(ldcol) is shorter than one image's \(L) output positions (input \(H)×\(W), kernel \(k), stride \(s), padding \(p))")
    }

    public func avgPool2x2<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(H % 2 == 0 && W % 2 == 0, "avgPool2x2: extents \(H)×\(W) must be even")
        precondition(x.count == P * H * W && y.count == P * H * W / 4, "avgPool2x2: buffer sizes do not match [\(P), \(H), \(W)]")
        guard let xs = x.baseAddress, let ys = y.baseAddress else { return }
        if T.self == Float.self {
            Self.avgPoolKernel(xs.viewed(as: Float.self), P: P, H: H, W: W, ys.viewed(as: Float.self))
        } else if T.self == Double.self {
            Self.avgPoolKernel(xs.viewed(as: Double.self), P: P, H: H, W: W, ys.viewed(as: Double.self))
        } else {
            Self.avgPoolKernel(xs, P: P, H: H, W: W, ys)
        }
    }

    public func avgPool2x2Backward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        precondition(dx.count == P * H * W && dy.count == P * H * W / 4, "avgPool2x2Backward: buffer sizes do not match [\(P), \(H), \(W)]")
        guard let dys = dy.baseAddress, let dxs = dx.baseAddress else { return }
        if T.self == Float.self {
            Self.avgPoolBackwardKernel(dys.viewed(as: Float.self), P: P, H: H, W: W, dxs.viewed(as: Float.self))
        } else if T.self == Double.self {
            Self.avgPoolBackwardKernel(dys.viewed(as: Double.self), P: P, H: H, W: W, dxs.viewed(as: Double.self))
        } else {
            Self.avgPoolBackwardKernel(dys, P: P, H: H, W: W, dxs)
        }
    }

    public func upsampleNearest2x<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == P * H * W && y.count == P * H * W * 4, "upsampleNearest2x: buffer sizes do not match [\(P), \(H), \(W)]")
        guard let xs = x.baseAddress, let ys = y.baseAddress else { return }
        if T.self == Float.self {
            Self.upsampleKernel(xs.viewed(as: Float.self), P: P, H: H, W: W, ys.viewed(as: Float.self))
        } else if T.self == Double.self {
            Self.upsampleKernel(xs.viewed(as: Double.self), P: P, H: H, W: W, ys.viewed(as: Double.self))
        } else {
            Self.upsampleKernel(xs, P: P, H: H, W: W, ys)
        }
    }

    public func upsampleNearest2xBackward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        precondition(dx.count == P * H * W && dy.count == P * H * W * 4, "upsampleNearest2xBackward: buffer sizes do not match [\(P), \(H), \(W)]")
        guard let dys = dy.baseAddress, let dxs = dx.baseAddress else { return }
        if T.self == Float.self {
            Self.upsampleBackwardKernel(dys.viewed(as: Float.self), P: P, H: H, W: W, dxs.viewed(as: Float.self))
        } else if T.self == Double.self {
            Self.upsampleBackwardKernel(dys.viewed(as: Double.self), P: P, H: H, W: W, dxs.viewed(as: Double.self))
        } else {
            Self.upsampleBackwardKernel(dys, P: P, H: H, W: W, dxs)
        }
    }
}

// MARK: - Kernels

extension CPUBackend {
    /// The output columns j ∈ jLo..<jHi whose input column w = j·s + v − p lies inside [0, W)
    /// (an empty range when none does). Both bounds use floor/ceil division: Swift's `/`
    /// truncates toward zero, which would admit w = W when W − 1 + p − v < 0 (e.g. a 4×4
    /// kernel, stride 2, padding 1 on a 2-wide input).
    static func validColumns(W: Int, Wo: Int, v: Int, stride s: Int, padding p: Int) -> (Int, Int) {
        let first = p - v                 // j·s ≥ p − v
        let last = W - 1 + p - v          // j·s ≤ W − 1 + p − v
        guard last >= 0 else { return (0, 0) }
        let jLo = first <= 0 ? 0 : (first + s - 1) / s
        let jHi = Swift.min(Wo, last / s + 1)
        return (jLo, Swift.max(jLo, jHi))
    }

    /// col[(c·k + u)·k + v, i·Wo + j] = x[c, i·s + u − p, j·s + v − p], 0 outside the image;
    /// col's rows are `ldcol` apart.
    static func im2colKernel<S: TensorScalar>(
        _ x: UnsafePointer<S>, C: Int, H: Int, W: Int, k: Int, s: Int, p: Int,
        _ col: UnsafeMutablePointer<S>, ldcol: Int
    ) {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        let L = Ho * Wo
        let box = UncheckedSendable((x, col))
        // One row of `col` per (c, u, v): the input plane c shifted by (u − p, v − p).
        parallelFor(C * k * k, minChunk: Swift.max(1, 8192 / Swift.max(1, L))) { row in
            let (x, col) = box.value
            let c = row / (k * k), u = (row / k) % k, v = row % k
            let plane = x + c * H * W
            let out = col + row * ldcol
            let (jLo, jHi) = validColumns(W: W, Wo: Wo, v: v, stride: s, padding: p)
            for i in 0..<Ho {
                let h = i * s + u - p
                let dst = out + i * Wo
                guard h >= 0 && h < H && jLo < jHi else { dst.update(repeating: 0, count: Wo); continue }
                let src = plane + h * W
                if jLo > 0 { dst.update(repeating: 0, count: jLo) }
                if s == 1 {
                    dst.advanced(by: jLo).update(from: src + (jLo + v - p), count: jHi - jLo)
                } else {
                    for j in jLo..<jHi { dst[j] = src[j * s + v - p] }
                }
                if jHi < Wo { dst.advanced(by: jHi).update(repeating: 0, count: Wo - jHi) }
            }
        }
    }

    /// The adjoint of `im2colKernel`: x[c, …] += every col entry that was read from it.
    static func col2imKernel<S: TensorScalar>(
        _ col: UnsafePointer<S>, ldcol: Int, C: Int, H: Int, W: Int, k: Int, s: Int, p: Int,
        _ x: UnsafeMutablePointer<S>
    ) {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        let L = Ho * Wo
        let box = UncheckedSendable((col, x))
        // Parallel over channels: every row that reads plane c is summed by one thread, in a
        // fixed (u, v, i, j) order, so the result is deterministic. Tiny planes stay on one
        // thread (same grain as im2col).
        parallelFor(C, minChunk: Swift.max(1, 8192 / Swift.max(1, k * k * L))) { c in
            let (col, x) = box.value
            let plane = x + c * H * W
            for u in 0..<k {
                for v in 0..<k {
                    let src = col + ((c * k + u) * k + v) * ldcol
                    let (jLo, jHi) = validColumns(W: W, Wo: Wo, v: v, stride: s, padding: p)
                    guard jLo < jHi else { continue }
                    for i in 0..<Ho {
                        let h = i * s + u - p
                        guard h >= 0 && h < H else { continue }
                        let dst = plane + h * W, row = src + i * Wo
                        if s == 1 {
                            accumulate(row + jLo, into: dst + (jLo + v - p), count: jHi - jLo)
                        } else {
                            for j in jLo..<jHi { dst[j * s + v - p] += row[j] }
                        }
                    }
                }
            }
        }
    }

    /// dst[j] += src[j] for j < count, eight at a time. (The plain loop compiles to scalar adds
    /// with overflow checks on the index: it was the slowest part of a conv's backward pass.)
    @inline(__always)
    static func accumulate<S: TensorScalar>(_ src: UnsafePointer<S>, into dst: UnsafeMutablePointer<S>, count: Int) {
        var j = 0
        while j + 8 <= count {
            let sum = UnsafeRawPointer(dst + j).loadUnaligned(as: SIMD8<S>.self)
                + UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<S>.self)
            UnsafeMutableRawPointer(dst + j).storeBytes(of: sum, as: SIMD8<S>.self)
            j += 8
        }
        while j < count { dst[j] += src[j]; j += 1 }
    }

    /// y[p, i, j] = ¼·(x[p, 2i, 2j] + x[p, 2i, 2j+1] + x[p, 2i+1, 2j] + x[p, 2i+1, 2j+1]).
    static func avgPoolKernel<S: TensorScalar>(_ x: UnsafePointer<S>, P: Int, H: Int, W: Int, _ y: UnsafeMutablePointer<S>) {
        let box = UncheckedSendable((x, y))
        let Ho = H / 2, Wo = W / 2
        parallelFor(P * Ho, minChunk: 64) { r in
            let (xs, ys) = box.value
            let plane = r / Ho, i = r % Ho
            let top = xs + plane * H * W + 2 * i * W, bottom = top + W
            let out = ys + r * Wo
            for j in 0..<Wo {
                out[j] = (top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1]) * 0.25
            }
        }
    }

    /// dx[p, h, w] = ¼·dy[p, h/2, w/2].
    static func avgPoolBackwardKernel<S: TensorScalar>(_ dy: UnsafePointer<S>, P: Int, H: Int, W: Int, _ dx: UnsafeMutablePointer<S>) {
        let box = UncheckedSendable((dy, dx))
        let Wo = W / 2
        parallelFor(P * H, minChunk: 64) { r in
            let (dys, dxs) = box.value
            let plane = r / H, h = r % H
            let src = dys + (plane * (H / 2) + h / 2) * Wo, dst = dxs + r * W
            for w in 0..<W { dst[w] = src[w / 2] * 0.25 }
        }
    }

    /// y[p, i, j] = x[p, i/2, j/2].
    static func upsampleKernel<S: TensorScalar>(_ x: UnsafePointer<S>, P: Int, H: Int, W: Int, _ y: UnsafeMutablePointer<S>) {
        let box = UncheckedSendable((x, y))
        parallelFor(P * 2 * H, minChunk: 64) { r in
            let (xs, ys) = box.value
            let plane = r / (2 * H), h = r % (2 * H)
            let src = xs + (plane * H + h / 2) * W, dst = ys + r * 2 * W
            for w in 0..<(2 * W) { dst[w] = src[w / 2] }
        }
    }

    /// dx[p, i, j] = Σ_{a,b∈{0,1}} dy[p, 2i+a, 2j+b].
    static func upsampleBackwardKernel<S: TensorScalar>(_ dy: UnsafePointer<S>, P: Int, H: Int, W: Int, _ dx: UnsafeMutablePointer<S>) {
        let box = UncheckedSendable((dy, dx))
        parallelFor(P * H, minChunk: 64) { r in
            let (dys, dxs) = box.value
            let plane = r / H, i = r % H
            let top = dys + (plane * 2 * H + 2 * i) * 2 * W, bottom = top + 2 * W
            let out = dxs + r * W
            for j in 0..<W {
                out[j] = top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1]
            }
        }
    }
}

// The same memory seen as its concrete element type; only called where T is that type.
extension UnsafePointer where Pointee: TensorScalar {
    @inline(__always)
    fileprivate func viewed<U: TensorScalar>(as _: U.Type) -> UnsafePointer<U> {
        UnsafeRawPointer(self).assumingMemoryBound(to: U.self)
    }
}

extension UnsafeMutablePointer where Pointee: TensorScalar {
    @inline(__always)
    fileprivate func viewed<U: TensorScalar>(as _: U.Type) -> UnsafeMutablePointer<U> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: U.self)
    }
}
