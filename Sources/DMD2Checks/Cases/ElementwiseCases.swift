import DMD2Core
import DMD2Ops

public enum ElementwiseCases {
    public static var all: [OpCase] {
        var cases: [OpCase] = []
        // Broadcasting binary ops: same shape, a bias-like [C,1,1] operand, and a scalar.
        let shapes: [([Int], [Int])] = [([2, 3, 2], [2, 3, 2]), ([2, 3, 2], [3, 1]), ([2, 3], [])]
        for (k, (sa, sb)) in shapes.enumerated() {
            let a = randn(sa, seed: 10 + UInt64(k)), b = randn(sb, seed: 20 + UInt64(k))
            let label = "\(sa) ⊕ \(sb)"
            cases.append(OpCase("add", label, inputs: [a, b], linearIn: [0, 1],
                                double: { add($0[0], $0[1]) }, float: { add($0[0], $0[1]) }))
            cases.append(OpCase("sub", label, inputs: [a, b], linearIn: [0, 1],
                                double: { sub($0[0], $0[1]) }, float: { sub($0[0], $0[1]) }))
            cases.append(OpCase("mul", label, inputs: [a, b], linearIn: [0, 1],
                                double: { mul($0[0], $0[1]) }, float: { mul($0[0], $0[1]) }))
            // Keep the divisor away from 0.
            let bPos = randn(sb, seed: 30 + UInt64(k), scale: 0.3, shift: 1.5)
            cases.append(OpCase("div", label, inputs: [a, bPos], linearIn: [0],
                                double: { div($0[0], $0[1]) }, float: { div($0[0], $0[1]) }))
        }
        let x = randn([2, 3, 4], seed: 40, scale: 2)
        let xPos = randn([2, 3, 4], seed: 41, scale: 0.3, shift: 1.5)
        // abs: keep |x| > 1e-3 so finite differences do not straddle the kink at 0.
        let xAway = Tensor(shape: x.shape, scalars: x.scalars.map { $0 + ($0 >= 0 ? 0.1 : -0.1) })
        cases.append(OpCase("addScalar", inputs: [x], linearIn: [0],
                            double: { addScalar($0[0], 0.7) }, float: { addScalar($0[0], 0.7) }))
        cases.append(OpCase("mulScalar", inputs: [x], linearIn: [0],
                            double: { mulScalar($0[0], -1.3) }, float: { mulScalar($0[0], -1.3) }))
        cases.append(OpCase("neg", inputs: [x], linearIn: [0], double: { neg($0[0]) }, float: { neg($0[0]) }))
        cases.append(OpCase("exp", inputs: [x], double: { exp($0[0]) }, float: { exp($0[0]) }))
        cases.append(OpCase("log", inputs: [xPos], double: { log($0[0]) }, float: { log($0[0]) }))
        cases.append(OpCase("sqrt", inputs: [xPos], double: { sqrt($0[0]) }, float: { sqrt($0[0]) }))
        cases.append(OpCase("square", inputs: [x], double: { square($0[0]) }, float: { square($0[0]) }))
        cases.append(OpCase("abs", inputs: [xAway], double: { abs($0[0]) }, float: { abs($0[0]) }))
        cases.append(OpCase("sigmoid", inputs: [x], double: { sigmoid($0[0]) }, float: { sigmoid($0[0]) }))
        cases.append(OpCase("silu", inputs: [x], double: { silu($0[0]) }, float: { silu($0[0]) }))
        cases.append(OpCase("softplus", inputs: [x], double: { softplus($0[0]) }, float: { softplus($0[0]) }))
        cases.append(OpCase("tanh", inputs: [x], double: { tanh($0[0]) }, float: { tanh($0[0]) }))
        // Large |x|: the stable forms must not overflow.
        let big = Tensor<Double>(shape: [4], scalars: [-80, -30, 30, 80])
        cases.append(OpCase("softplus", "large |x|", inputs: [big], double: { softplus($0[0]) }, float: { softplus($0[0]) }))
        // σ(30) = 1 − 9.4e-14: Double cannot represent its change over any step, so finite
        // differences cannot resolve σ' there (the plain sigmoid case checks σ' sharply).
        cases.append(OpCase("sigmoid", "large |x|", inputs: [big],
                            unresolvable: "σ(±30), σ(±80) saturate: their change over a step is below Double's resolution",
                            double: { sigmoid($0[0]) }, float: { sigmoid($0[0]) }))
        return cases
    }
}
