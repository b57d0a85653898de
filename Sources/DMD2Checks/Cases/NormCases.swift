import DMD2Core
import DMD2Ops

/// Gradient checks for GroupNorm.swift, Softmax.swift and Attention.swift.
public enum NormCases {
    public static var all: [OpCase] { groupNormCases + groupNormSiLUCases + softmaxCases + attentionCases }

    // GroupNorm: groups 1, 2 and C, with and without the affine, ranks 3 and 4. Inputs have a
    // non-zero mean and non-unit scale so the normalisation does something; groups hold ≥ 4
    // values so the variance is well away from 0.
    // GroupNorm + per-(n, c) affine + SiLU, fused: groups 1, 2 and C, ranks 3 and 4, scales of
    // both signs and shifts that move z across SiLU's bend; and the γ/β form ADM's blocks use.
    public static var groupNormSiLUCases: [OpCase] {
        var cases: [OpCase] = []
        let configs: [(shape: [Int], groups: Int)] = [([2, 4, 2, 2], 2), ([2, 4, 3], 1), ([1, 4, 3, 2], 4), ([2, 6, 5], 3)]
        for (k, cfg) in configs.enumerated() {
            let N = cfg.shape[0], C = cfg.shape[1], G = cfg.groups
            let x = randn(cfg.shape, seed: 140 + UInt64(k), scale: 2, shift: 0.5)
            let scale = randn([N, C], seed: 150 + UInt64(k), scale: 0.6, shift: 0.5)
            let shift = randn([N, C], seed: 160 + UInt64(k), scale: 0.8)
            let reduction = C / G * cfg.shape[2...].reduce(1, *)
            cases.append(OpCase("groupNormSiLU", "\(cfg.shape) G=\(G)", inputs: [x, scale, shift], reductionLength: reduction,
                                double: { groupNormSiLU($0[0], groups: G, scale: $0[1], shift: $0[2]) },
                                float: { groupNormSiLU($0[0], groups: G, scale: $0[1], shift: $0[2]) }))
        }
        let x = randn([2, 4, 2, 2], seed: 170, scale: 2, shift: 0.5)
        let w = randn([4], seed: 171, scale: 0.3, shift: 1), b = randn([4], seed: 172, scale: 0.3)
        cases.append(OpCase("groupNormSiLU", "[2, 4, 2, 2] G=2 weight, bias", inputs: [x, w, b], reductionLength: 8,
                            double: { groupNormSiLU($0[0], groups: 2, weight: $0[1], bias: $0[2]) },
                            float: { groupNormSiLU($0[0], groups: 2, weight: $0[1], bias: $0[2]) }))
        return cases
    }

    public static var groupNormCases: [OpCase] {
        var cases: [OpCase] = []
        let configs: [(shape: [Int], groups: Int, affine: Bool)] = [
            ([2, 4, 2, 2], 2, true),
            ([2, 4, 2, 2], 1, true),
            ([1, 4, 3, 2], 4, true),      // G = C: one channel per group
            ([2, 4, 3], 2, false),        // [N, C, L], no affine
            ([2, 6, 2, 2], 6, false),
        ]
        for (k, cfg) in configs.enumerated() {
            let C = cfg.shape[1], G = cfg.groups
            let x = randn(cfg.shape, seed: 100 + UInt64(k), scale: 2, shift: 0.5)
            let reduction = C / G * cfg.shape[2...].reduce(1, *)
            let label = "\(cfg.shape) G=\(G)\(cfg.affine ? " affine" : "")"
            if cfg.affine {
                let w = randn([C], seed: 110 + UInt64(k), scale: 0.3, shift: 1)
                let b = randn([C], seed: 120 + UInt64(k), scale: 0.3)
                cases.append(OpCase("groupNorm", label, inputs: [x, w, b], linearIn: [1, 2], reductionLength: reduction,
                                    double: { groupNorm($0[0], groups: G, weight: $0[1], bias: $0[2]) },
                                    float: { groupNorm($0[0], groups: G, weight: $0[1], bias: $0[2]) }))
            } else {
                cases.append(OpCase("groupNorm", label, inputs: [x], reductionLength: reduction,
                                    double: { groupNorm($0[0], groups: G, weight: nil, bias: nil) },
                                    float: { groupNorm($0[0], groups: G, weight: nil, bias: nil) }))
            }
        }
        // Weight without bias and bias without weight: the parent slots shift.
        let x = randn([2, 4, 2, 2], seed: 130, scale: 1.5, shift: -0.7)
        let w = randn([4], seed: 131, scale: 0.3, shift: 1), b = randn([4], seed: 132, scale: 0.3)
        cases.append(OpCase("groupNorm", "[2, 4, 2, 2] G=2 weight only", inputs: [x, w], linearIn: [1], reductionLength: 8,
                            double: { groupNorm($0[0], groups: 2, weight: $0[1], bias: nil) },
                            float: { groupNorm($0[0], groups: 2, weight: $0[1], bias: nil) }))
        cases.append(OpCase("groupNorm", "[2, 4, 2, 2] G=2 bias only", inputs: [x, b], linearIn: [1], reductionLength: 8,
                            double: { groupNorm($0[0], groups: 2, weight: nil, bias: $0[1]) },
                            float: { groupNorm($0[0], groups: 2, weight: nil, bias: $0[1]) }))
        return cases
    }

    // Softmax over the last axis, over a middle axis, and on large-magnitude rows where exp would
    // overflow (Float overflows above ~88) without the max subtraction.
    public static var softmaxCases: [OpCase] {
        let x = randn([3, 5], seed: 200, scale: 2)
        let x3 = randn([2, 3, 4], seed: 201, scale: 1.5)
        // Exactly representable in Float, so the Float-vs-Double check sees only kernel rounding.
        let big = Tensor<Double>(shape: [3, 4], scalars: [
            1000, 999.5, 1001, -1000,
            -500, -501, -499.25, -502,
            120, 119, 118.5, 121.75,
        ])
        return [
            OpCase("softmax", "[3, 5] last axis", inputs: [x], reductionLength: 5,
                   double: { softmax($0[0]) }, float: { softmax($0[0]) }),
            OpCase("softmax", "[2, 3, 4] axis 1", inputs: [x3], reductionLength: 3,
                   double: { softmax($0[0], axis: 1) }, float: { softmax($0[0], axis: 1) }),
            OpCase("softmax", "[2, 3, 4] axis 0", inputs: [x3], reductionLength: 2,
                   double: { softmax($0[0], axis: 0) }, float: { softmax($0[0], axis: 0) }),
            OpCase("softmax", "large magnitude", inputs: [big], reductionLength: 4,
                   double: { softmax($0[0]) }, float: { softmax($0[0]) }),
        ]
    }

    // Attention: heads 1 and 2, head dims 2–4, tiny H×W. The first three run the full Jacobian
    // (nIn·nOut ≤ 40000); the last is a random-direction check on a larger shape.
    public static var attentionCases: [OpCase] {
        let configs: [(N: Int, heads: Int, d: Int, H: Int, W: Int)] = [
            (1, 1, 2, 2, 2),
            (2, 1, 3, 1, 3),
            (2, 2, 3, 2, 3),
            (1, 2, 4, 3, 3),
            (2, 2, 4, 4, 4),
        ]
        return configs.enumerated().map { k, cfg in
            let qkv = randn([cfg.N, 3 * cfg.heads * cfg.d, cfg.H, cfg.W], seed: 300 + UInt64(k), scale: 1.5)
            let heads = cfg.heads
            return OpCase("attention", "N=\(cfg.N) heads=\(heads) d=\(cfg.d) \(cfg.H)×\(cfg.W)",
                          inputs: [qkv], reductionLength: cfg.d + cfg.H * cfg.W,
                          double: { attention(qkv: $0[0], heads: heads) },
                          float: { attention(qkv: $0[0], heads: heads) })
        }
    }
}
