// ADM's residual block with embedding-driven scale/shift and optional self-attention
// (docs/ARCHITECTURE-ADM.md "UNetBlock"; EDM's `UNetBlock` with adaptive_scale, skip_scale 1).
//
// Letters: N batch, Cin/Cout widths, H×W resolution (after resampling), E embedding width.
//   x [N, Cin, H', W'], emb [N, E]
//   h = conv0(resample(SiLU(norm0(x))))                       [N, Cout, H, W]   3×3, pad 1
//   (scale, shift) = split(affine(emb))                      [N, Cout] each     Linear E → 2·Cout
//   h = SiLU(shift + norm1(h)·(scale + 1))                    GroupNorm + SiLU fused (groupNormSiLU)
//   h = conv1(dropout(h))                                    3×3, zero-initialised
//   h = h + skip(x)     skip = identity | resample | [resample then] 1×1 conv (when Cin ≠ Cout)
//   with attention (heads of Cout/heads channels):
//   h = h + proj(attention(qkv(norm2(h))))                  1×1 convs; proj zero-initialised
// GroupNorms use min(32, C/4) groups, eps 1e-5. Resampling: down = 2×2 average, up = nearest ×2.
import DMD2Core
import DMD2Ops

/// Dropout masks for one training forward pass, one per block (drawn on first use from a
/// seeded generator, or given). A pass that meets an existing mask reuses it, so running the
/// same forward twice with one `DropoutMasks` gives the same function (gradient checks).
public final class DropoutMasks<T: TensorScalar> {
    /// Probability of zeroing an element.
    public let p: Double
    /// Masks by block name (`enc.8x8_block0`, …), drawn or given.
    public private(set) var masks: [String: Tensor<T>]
    /// The generator new masks are drawn from; nil when masks are given.
    public private(set) var rng: RandomGenerator?

    /// Masks drawn from `rng` as blocks ask for them (in forward order).
    public init(p: Double, rng: RandomGenerator) {
        precondition((0...1).contains(p), "DropoutMasks: p = \(p) is not a probability")
        self.p = p
        self.masks = [:]
        self.rng = rng
    }

    /// Fixed masks (fixtures, tests); a block without one is an error.
    public init(p: Double, masks: [String: Tensor<T>]) {
        precondition((0...1).contains(p), "DropoutMasks: p = \(p) is not a probability")
        self.p = p
        self.masks = masks
        self.rng = nil
    }

    /// The mask of block `name` for an activation of `shape`.
    public func mask(block name: String, shape: [Int]) -> Tensor<T> {
        if let m = masks[name] {
            precondition(m.shape == shape, "DropoutMasks: mask for '\(name)' has shape \(m.shape), activation has \(shape)")
            return m
        }
        guard var generator = rng else { preconditionFailure("DropoutMasks: no mask given for block '\(name)'") }
        let m: Tensor<T> = dropoutMask(shape: shape, p: p, rng: &generator)
        rng = generator
        masks[name] = m
        return m
    }
}

extension UNetBlockSpec {
    /// The block applied to `x` [N, Cin, H', W'] with embedding `emb` [N, E]; parameters are
    /// looked up in `parameters` under `key(…)` names. `dropout` nil (or p = 0) means no dropout.
    public func callAsFunction<T>(
        _ x: Variable<T>, emb: Variable<T>, parameters: ParameterStore<T>, dropout: DropoutMasks<T>? = nil
    ) -> Variable<T> {
        precondition(x.value.rank == 4 && x.shape[1] == inChannels,
                     "UNetBlock \(name): input \(x.shape), expected [N, \(inChannels), H, W]")
        precondition(emb.value.rank == 2 && emb.shape == [x.shape[0], embChannels],
                     "UNetBlock \(name): embedding \(emb.shape), expected [\(x.shape[0]), \(embChannels)]")
        let p = { (suffix: String) in parameters[self.key(suffix)] }
        let N = x.shape[0], C = outChannels

        // Main path: norm0 → SiLU → resample → conv0 (GroupNorm and SiLU in one fused op).
        var h = groupNormSiLU(x, groups: admGroupCount(channels: inChannels),
                              weight: p("norm0.weight"), bias: p("norm0.bias"))
        h = conv2d(resampled(h), weight: p("conv0.weight"), bias: p("conv0.bias"), padding: 1)

        // Embedding → per-channel scale and shift: h = SiLU(shift + norm1(h)·(scale + 1)), with
        // norm1(h) = x̂·γ + β: one fused GroupNorm + SiLU whose per-(n, c) affine is
        // γ·(1 + scale) and β·(1 + scale) + shift (computed on [N, C], not on the activation).
        let params = reshape(linear(emb, weight: p("affine.weight"), bias: p("affine.bias")), [N, 2 * C])
        let scale = slice(params, axis: 1, range: 0 ..< C) + T(1), shift = slice(params, axis: 1, range: C ..< 2 * C)
        let gamma = reshape(p("norm1.weight"), [1, C]), beta = reshape(p("norm1.bias"), [1, C])
        h = groupNormSiLU(h, groups: admGroupCount(channels: C), scale: gamma * scale, shift: beta * scale + shift)

        if let dropout, dropout.p > 0 {
            h = DMD2Ops.dropout(h, mask: dropout.mask(block: name, shape: h.shape), p: dropout.p)
        }
        h = conv2d(h, weight: p("conv1.weight"), bias: p("conv1.bias"), padding: 1)

        // Skip path: resample (down/up blocks), then a 1×1 conv when the width changes.
        var skip = resampled(x)
        if hasSkipConv { skip = conv2d(skip, weight: p("skip.weight"), bias: p("skip.bias"), padding: 0) }
        h = h + skip

        // Self-attention with a residual: h + proj(attention(qkv(norm2(h)))).
        if attention {
            let normed = groupNorm(h, groups: admGroupCount(channels: C), weight: p("norm2.weight"), bias: p("norm2.bias"))
            let qkv = conv2d(normed, weight: p("qkv.weight"), bias: p("qkv.bias"), padding: 0)
            let a = DMD2Ops.attention(qkv: qkv, heads: heads)
            h = h + conv2d(a, weight: p("proj.weight"), bias: p("proj.bias"), padding: 0)
        }
        return h
    }

    /// This block's resampling (identity, 2×2 average pool or nearest ×2).
    func resampled<T>(_ x: Variable<T>) -> Variable<T> {
        switch resample {
        case .none: x
        case .down: avgPool2x2(x)
        case .up: upsampleNearest2x(x)
        }
    }

    /// The block's parameters, freshly initialised (for tests of a single block).
    public func initialParameters<T>(rng: inout RandomGenerator, as: T.Type = T.self) -> ParameterStore<T> {
        ParameterStore(entries: stateEntries, rng: &rng)
    }
}
