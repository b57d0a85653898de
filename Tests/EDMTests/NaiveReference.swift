// An independent, deliberately naive Double implementation of ADM's pieces, written from
// docs/ARCHITECTURE-ADM.md with plain loops (no DMD2Ops): the network's block and embedding are
// checked against it, which pins down the orderings that a gradient check cannot see
// (scale before shift and `scale + 1`, cos before sin, q/k/v interleave, concat order).
import DMD2Core
import EDM

enum Naive {
    typealias T4 = Tensor<Double>

    static func silu(_ x: T4) -> T4 { Tensor(shape: x.shape, scalars: x.scalars.map { $0 / (1 + Double.exp(-$0)) }) }

    /// GroupNorm over [N, C, H, W] with min(32, C/4) contiguous groups, biased variance, eps 1e-5.
    static func groupNorm(_ x: T4, _ gamma: T4, _ beta: T4) -> T4 {
        let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let G = min(32, C / 4), per = C / G
        var y = x
        for n in 0..<N {
            for g in 0..<G {
                var values: [Double] = []
                for c in g * per ..< (g + 1) * per { for i in 0..<H { for j in 0..<W { values.append(x[n, c, i, j]) } } }
                let mean = values.reduce(0, +) / Double(values.count)
                let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
                for c in g * per ..< (g + 1) * per {
                    for i in 0..<H { for j in 0..<W {
                        y[n, c, i, j] = (x[n, c, i, j] - mean) / (variance + 1e-5).squareRoot() * gamma[c] + beta[c]
                    } }
                }
            }
        }
        return y
    }

    /// Conv2d, stride 1, zero padding k/2, weight [O, C, k, k].
    static func conv(_ x: T4, _ w: T4, _ b: T4) -> T4 {
        let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let O = w.shape[0], k = w.shape[2], pad = k / 2
        var y = T4.zeros([N, O, H, W])
        for n in 0..<N { for o in 0..<O { for i in 0..<H { for j in 0..<W {
            var s = b[o]
            for c in 0..<C { for u in 0..<k { for v in 0..<k {
                let (ii, jj) = (i + u - pad, j + v - pad)
                if ii >= 0 && ii < H && jj >= 0 && jj < W { s += w[o, c, u, v] * x[n, c, ii, jj] }
            } } }
            y[n, o, i, j] = s
        } } } }
        return y
    }

    static func resample(_ x: T4, _ r: Resample) -> T4 {
        let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        switch r {
        case .none: return x
        case .down:
            var y = T4.zeros([N, C, H / 2, W / 2])
            for n in 0..<N { for c in 0..<C { for i in 0..<H / 2 { for j in 0..<W / 2 {
                y[n, c, i, j] = (x[n, c, 2 * i, 2 * j] + x[n, c, 2 * i + 1, 2 * j] + x[n, c, 2 * i, 2 * j + 1] + x[n, c, 2 * i + 1, 2 * j + 1]) / 4
            } } } }
            return y
        case .up:
            var y = T4.zeros([N, C, 2 * H, 2 * W])
            for n in 0..<N { for c in 0..<C { for i in 0..<2 * H { for j in 0..<2 * W { y[n, c, i, j] = x[n, c, i / 2, j / 2] } } } }
            return y
        }
    }

    /// y = x·Wᵀ (+ b), x [N, in], W [out, in].
    static func linear(_ x: T4, _ w: T4, _ b: T4?) -> T4 {
        let (N, I, O) = (x.shape[0], x.shape[1], w.shape[0])
        var y = T4.zeros([N, O])
        for n in 0..<N { for o in 0..<O {
            var s = b?[o] ?? 0
            for i in 0..<I { s += w[o, i] * x[n, i] }
            y[n, o] = s
        } }
        return y
    }

    /// ADM attention: qkv channel head·3d + c·3 + s (s = 0 q, 1 k, 2 v); output channel head·d + c.
    static func attention(_ qkv: T4, heads: Int) -> T4 {
        let (N, C3, H, W) = (qkv.shape[0], qkv.shape[1], qkv.shape[2], qkv.shape[3])
        let C = C3 / 3, d = C / heads, L = H * W
        var y = T4.zeros([N, C, H, W])
        func at(_ n: Int, _ ch: Int, _ l: Int) -> Double { qkv[n, ch, l / W, l % W] }
        for n in 0..<N { for h in 0..<heads {
            for i in 0..<L {
                var logits = [Double](repeating: 0, count: L)
                for j in 0..<L {
                    for c in 0..<d { logits[j] += at(n, h * 3 * d + c * 3 + 0, i) * at(n, h * 3 * d + c * 3 + 1, j) }
                    logits[j] /= Double(d).squareRoot()
                }
                let m = logits.max()!
                let e = logits.map { Double.exp($0 - m) }, z = e.reduce(0, +)
                for c in 0..<d {
                    var s = 0.0
                    for j in 0..<L { s += e[j] / z * at(n, h * 3 * d + c * 3 + 2, j) }
                    y[n, h * d + c, i / W, i % W] = s
                }
            }
        } }
        return y
    }

    static func add(_ a: T4, _ b: T4) -> T4 { Tensor(shape: a.shape, scalars: zip(a.scalars, b.scalars).map(+)) }

    /// One UNetBlock, from the doc's steps 1–6.
    static func block(_ spec: UNetBlockSpec, _ x: T4, emb: T4, _ p: (String) -> T4) -> T4 {
        func q(_ suffix: String) -> T4 { p(spec.key(suffix)) }
        let N = x.shape[0], C = spec.outChannels
        var h = conv(resample(silu(groupNorm(x, q("norm0.weight"), q("norm0.bias"))), spec.resample), q("conv0.weight"), q("conv0.bias"))
        let params = linear(emb, q("affine.weight"), q("affine.bias"))       // [N, 2C]
        let normed = groupNorm(h, q("norm1.weight"), q("norm1.bias"))
        for n in 0..<N { for c in 0..<C { for i in 0..<h.shape[2] { for j in 0..<h.shape[3] {
            let scale = params[n, c], shift = params[n, C + c]
            let v = shift + normed[n, c, i, j] * (scale + 1)
            h[n, c, i, j] = v / (1 + Double.exp(-v))
        } } } }
        h = conv(h, q("conv1.weight"), q("conv1.bias"))
        var skip = resample(x, spec.resample)
        if spec.hasSkipConv { skip = conv(skip, q("skip.weight"), q("skip.bias")) }
        h = add(h, skip)
        if spec.attention {
            let a = attention(conv(groupNorm(h, q("norm2.weight"), q("norm2.bias")), q("qkv.weight"), q("qkv.bias")), heads: spec.heads)
            h = add(h, conv(a, q("proj.weight"), q("proj.bias")))
        }
        return h
    }

    /// The embedding: cos-first sinusoids of c_noise (M channels, divisor M/2), map_layer0,
    /// SiLU, map_layer1, + map_label(y) without bias, SiLU.
    static func embedding(_ cNoise: [Double], labels y: T4?, modelChannels M: Int, _ p: (String) -> T4) -> T4 {
        let half = M / 2
        var pe = T4.zeros([cNoise.count, M])
        for (n, c) in cNoise.enumerated() {
            for j in 0..<half {
                let f = Double.pow(1.0 / 10000, Double(j) / Double(half))
                pe[n, j] = Double.cos(c * f)
                pe[n, half + j] = Double.sin(c * f)
            }
        }
        var e = linear(silu(linear(pe, p("model.map_layer0.weight"), p("model.map_layer0.bias"))),
                       p("model.map_layer1.weight"), p("model.map_layer1.bias"))
        if let y { e = add(e, linear(y, p("model.map_label.weight"), nil)) }
        return silu(e)
    }

    /// The whole UNet F, walking the layout (skip stack, concat with x first).
    static func unet(_ layout: UNetLayout, _ x: T4, cNoise: [Double], labels: T4?, _ p: (String) -> T4) -> T4 {
        let emb = embedding(cNoise, labels: labels, modelChannels: layout.config.modelChannels, p)
        var h = conv(x, p("model.\(layout.inputConvName).weight"), p("model.\(layout.inputConvName).bias"))
        var skips = [h]
        for spec in layout.encoder { h = block(spec, h, emb: emb, p); skips.append(h) }
        for step in layout.decoder {
            if step.popsSkip {
                let s = skips.removeLast()
                let (N, C1, C2, H, W) = (h.shape[0], h.shape[1], s.shape[1], h.shape[2], h.shape[3])
                var cat = T4.zeros([N, C1 + C2, H, W])
                for n in 0..<N { for i in 0..<H { for j in 0..<W {
                    for c in 0..<C1 { cat[n, c, i, j] = h[n, c, i, j] }
                    for c in 0..<C2 { cat[n, C1 + c, i, j] = s[n, c, i, j] }
                } } }
                h = cat
            }
            h = block(step.block, h, emb: emb, p)
        }
        return conv(silu(groupNorm(h, p("model.out_norm.weight"), p("model.out_norm.bias"))),
                    p("model.out_conv.weight"), p("model.out_conv.bias"))
    }
}
