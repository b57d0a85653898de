// Gradient checks for conv2d (every kernel/stride/padding DMD2 uses) and the ADM resampling ops.
import DMD2Core
import DMD2Ops

public enum ConvCases {
    public static var all: [OpCase] {
        // label, x shape [N, Cin, H, W], Cout, kernel, stride, padding, bias.
        // Shapes are tiny so the full Jacobian runs for every case (nIn·nOut ≤ 40 000), and
        // some are non-square or odd-sized to exercise the border arithmetic.
        let geometries: [(String, [Int], Int, Int, Int, Int, Bool)] = [
            ("k1s1p0 (ADM skip, qkv)", [2, 2, 3, 4], 3, 1, 1, 0, true),
            ("k3s1p1 (ADM conv)", [2, 2, 4, 4], 3, 3, 1, 1, true),
            ("k3s1p1 odd 3×5", [1, 3, 3, 5], 2, 3, 1, 1, true),
            ("k3s1p1 no bias", [2, 2, 4, 4], 3, 3, 1, 1, false),
            ("k3s2p1", [2, 2, 5, 4], 3, 3, 2, 1, true),
            ("k4s2p1 (GAN head)", [2, 2, 4, 6], 3, 4, 2, 1, true),
            // A 2-wide input: kernel taps v = 3 fall wholly in the padding.
            ("k4s2p1 on 2×2", [2, 2, 2, 2], 3, 4, 2, 1, true),
            ("k4s4p0 (GAN head)", [2, 2, 8, 8], 3, 4, 4, 0, true),
        ]
        var cases: [OpCase] = []
        for (index, (label, xShape, cout, k, s, p, hasBias)) in geometries.enumerated() {
            let seed = 100 + 10 * UInt64(index)
            let cin = xShape[1]
            let x = randn(xShape, seed: seed)
            let w = randn([cout, cin, k, k], seed: seed + 1, scale: 1 / Double(cin * k * k).squareRoot())
            let b = randn([cout], seed: seed + 2)
            let (H, W) = (xShape[2], xShape[3])
            let L = ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1)
            // The longest sum behind one value: y sums Cin·k·k products, dWeight sums N·Ho·Wo,
            // dX at most Cout·k·k.
            let reduction = max(cin * k * k, xShape[0] * L, cout * k * k)
            if hasBias {
                cases.append(OpCase(
                    "conv2d", label, inputs: [x, w, b], linearIn: [0, 1, 2], reductionLength: reduction,
                    double: { conv2d($0[0], weight: $0[1], bias: $0[2], stride: s, padding: p) },
                    float: { conv2d($0[0], weight: $0[1], bias: $0[2], stride: s, padding: p) }))
            } else {
                cases.append(OpCase(
                    "conv2d", label, inputs: [x, w], linearIn: [0, 1], reductionLength: reduction,
                    double: { conv2d($0[0], weight: $0[1], bias: nil, stride: s, padding: p) },
                    float: { conv2d($0[0], weight: $0[1], bias: nil, stride: s, padding: p) }))
            }
        }
        // Resampling: each output (or input gradient) sums 4 values.
        let down = randn([2, 3, 4, 6], seed: 200)
        cases.append(OpCase("avgPool2x2", "[2, 3, 4, 6]", inputs: [down], linearIn: [0], reductionLength: 4,
                            double: { avgPool2x2($0[0]) }, float: { avgPool2x2($0[0]) }))
        let up = randn([2, 3, 2, 3], seed: 201)
        cases.append(OpCase("upsampleNearest2x", "[2, 3, 2, 3]", inputs: [up], linearIn: [0], reductionLength: 4,
                            double: { upsampleNearest2x($0[0]) }, float: { upsampleNearest2x($0[0]) }))
        return cases
    }
}
