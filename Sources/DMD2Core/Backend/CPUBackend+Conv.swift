// CPU convolution lowering (im2col / col2im) and the ADM resampling kernels.
//
// Letters: C channels, H×W input, k kernel, s stride, p zero padding, Ho×Wo output,
// P = N·C independent planes.

extension CPUBackend {
    public func im2col<T: TensorScalar>(
        _ x: UnsafePointer<T>, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ col: UnsafeMutablePointer<T>
    ) {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        let L = Ho * Wo
        let box = UncheckedSendable((x, col))
        // One row of `col` per (c, u, v): the input plane c shifted by (u − p, v − p).
        parallelFor(C * k * k, minChunk: Swift.max(1, 8192 / Swift.max(1, L))) { row in
            let (x, col) = box.value
            let c = row / (k * k), u = (row / k) % k, v = row % k
            let plane = x + c * H * W
            let out = col + row * L
            for i in 0..<Ho {
                let h = i * s + u - p
                let dst = out + i * Wo
                guard h >= 0 && h < H else { dst.update(repeating: 0, count: Wo); continue }
                let src = plane + h * W
                // Output columns j whose input column w = j·s + v − p lies inside [0, W).
                let jLo = Swift.max(0, (p - v + s - 1) / s)
                let jHi = Swift.min(Wo, (W - 1 + p - v) / s + 1)
                if jLo >= jHi { dst.update(repeating: 0, count: Wo); continue }
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

    public func col2im<T: TensorScalar>(
        _ col: UnsafePointer<T>, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ x: UnsafeMutablePointer<T>
    ) {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        let L = Ho * Wo
        let box = UncheckedSendable((col, x))
        // Parallel over channels: every row that reads plane c is summed by one thread, in a
        // fixed (u, v, i, j) order, so the result is deterministic.
        parallelFor(C) { c in
            let (col, x) = box.value
            let plane = x + c * H * W
            for u in 0..<k {
                for v in 0..<k {
                    let src = col + ((c * k + u) * k + v) * L
                    let jLo = Swift.max(0, (p - v + s - 1) / s)
                    let jHi = Swift.min(Wo, (W - 1 + p - v) / s + 1)
                    guard jLo < jHi else { continue }
                    for i in 0..<Ho {
                        let h = i * s + u - p
                        guard h >= 0 && h < H else { continue }
                        let dst = plane + h * W, row = src + i * Wo
                        for j in jLo..<jHi { dst[j * s + v - p] += row[j] }
                    }
                }
            }
        }
    }

    public func avgPool2x2<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(H % 2 == 0 && W % 2 == 0, "avgPool2x2: extents \(H)×\(W) must be even")
        precondition(x.count == P * H * W && y.count == P * H * W / 4, "avgPool2x2: buffer sizes do not match [\(P), \(H), \(W)]")
        let box = UncheckedSendable((x.baseAddress!, y.baseAddress!))
        let Ho = H / 2, Wo = W / 2
        parallelFor(P * Ho, minChunk: 64) { r in
            let (xs, ys) = box.value
            let plane = r / Ho, i = r % Ho
            let top = xs + plane * H * W + 2 * i * W, bottom = top + W
            let out = ys + r * Wo
            for j in 0..<Wo {
                out[j] = (top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1]) * T(0.25)
            }
        }
    }

    public func avgPool2x2Backward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        precondition(dx.count == P * H * W && dy.count == P * H * W / 4, "avgPool2x2Backward: buffer sizes do not match [\(P), \(H), \(W)]")
        let box = UncheckedSendable((dy.baseAddress!, dx.baseAddress!))
        let Wo = W / 2
        parallelFor(P * H, minChunk: 64) { r in
            let (dys, dxs) = box.value
            let plane = r / H, h = r % H
            let src = dys + (plane * (H / 2) + h / 2) * Wo, dst = dxs + r * W
            for w in 0..<W { dst[w] = src[w / 2] * T(0.25) }
        }
    }

    public func upsampleNearest2x<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == P * H * W && y.count == P * H * W * 4, "upsampleNearest2x: buffer sizes do not match [\(P), \(H), \(W)]")
        let box = UncheckedSendable((x.baseAddress!, y.baseAddress!))
        parallelFor(P * 2 * H, minChunk: 64) { r in
            let (xs, ys) = box.value
            let plane = r / (2 * H), h = r % (2 * H)
            let src = xs + (plane * H + h / 2) * W, dst = ys + r * 2 * W
            for w in 0..<(2 * W) { dst[w] = src[w / 2] }
        }
    }

    public func upsampleNearest2xBackward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        precondition(dx.count == P * H * W && dy.count == P * H * W * 4, "upsampleNearest2xBackward: buffer sizes do not match [\(P), \(H), \(W)]")
        let box = UncheckedSendable((dy.baseAddress!, dx.baseAddress!))
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
