import DMD2Core
import DMD2Ops

public enum ReduceCases {
    public static var all: [OpCase] {
        let x = randn([2, 3, 4], seed: 50)
        var cases: [OpCase] = []
        for axes in [nil, [1], [0, 2]] as [[Int]?] {
            for keep in [false, true] {
                let label = "axes \(axes.map { "\($0)" } ?? "all") keep \(keep)"
                cases.append(OpCase("sum", label, inputs: [x], linearIn: [0], reductionLength: 24,
                                    double: { sum($0[0], axes: axes, keepingDims: keep) },
                                    float: { sum($0[0], axes: axes, keepingDims: keep) }))
                cases.append(OpCase("mean", label, inputs: [x], linearIn: [0], reductionLength: 24,
                                    double: { mean($0[0], axes: axes, keepingDims: keep) },
                                    float: { mean($0[0], axes: axes, keepingDims: keep) }))
            }
        }
        return cases
    }
}

public enum MatmulCases {
    public static var all: [OpCase] {
        let a = randn([3, 5], seed: 60), b = randn([5, 4], seed: 61)
        let x = randn([3, 5], seed: 62), w = randn([4, 5], seed: 63), bias = randn([4], seed: 64)
        return [
            OpCase("matmul", "3×5 · 5×4", inputs: [a, b], linearIn: [0, 1], reductionLength: 5,
                   double: { matmul($0[0], $0[1]) }, float: { matmul($0[0], $0[1]) }),
            OpCase("linear", "with bias", inputs: [x, w, bias], linearIn: [0, 1, 2], reductionLength: 5,
                   double: { linear($0[0], weight: $0[1], bias: $0[2]) },
                   float: { linear($0[0], weight: $0[1], bias: $0[2]) }),
            OpCase("linear", "no bias", inputs: [x, w], linearIn: [0, 1], reductionLength: 5,
                   double: { linear($0[0], weight: $0[1], bias: nil) },
                   float: { linear($0[0], weight: $0[1], bias: nil) }),
        ]
    }
}
