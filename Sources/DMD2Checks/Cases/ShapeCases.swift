// Gradient checks and value tests for the shape, channel, embedding, dropout and nanToNum ops
// (Shape.swift, Channels.swift, Embedding.swift, Dropout.swift, NanToNum.swift).
import DMD2Core
import DMD2Ops

public enum ShapeCases {
    public static var all: [OpCase] {
        var cases: [OpCase] = []
        let x = randn([2, 3, 4], seed: 70)

        // reshape, permute: pure data movement, linear.
        cases.append(OpCase("reshape", "[2,3,4] → [4,-1]", inputs: [x], linearIn: [0],
                            double: { reshape($0[0], [4, -1]) }, float: { reshape($0[0], [4, -1]) }))
        cases.append(OpCase("permute", "[2,3,4] by [2,0,1]", inputs: [x], linearIn: [0],
                            double: { permute($0[0], [2, 0, 1]) }, float: { permute($0[0], [2, 0, 1]) }))
        let nchw = randn([2, 3, 2, 2], seed: 71)
        cases.append(OpCase("permute", "NCHW → NHWC", inputs: [nchw], linearIn: [0],
                            double: { permute($0[0], [0, 2, 3, 1]) }, float: { permute($0[0], [0, 2, 3, 1]) }))

        // concat: 2 and 3 inputs on the channel axis (ADM's skip join) and on axis 0.
        let concatShapes: [(Int, [[Int]])] = [
            (1, [[2, 3, 2], [2, 1, 2]]),
            (1, [[2, 1, 2, 2], [2, 2, 2, 2], [2, 3, 2, 2]]),
            (0, [[1, 3], [2, 3]]),
            (0, [[1, 2, 2], [2, 2, 2], [3, 2, 2]]),
        ]
        for (k, (axis, shapes)) in concatShapes.enumerated() {
            let inputs = shapes.enumerated().map { i, s in randn(s, seed: 80 + UInt64(10 * k + i)) }
            cases.append(OpCase("concat", "\(shapes.count) inputs on axis \(axis): \(shapes)", inputs: inputs,
                                linearIn: Array(inputs.indices),
                                double: { concat($0, axis: axis) }, float: { concat($0, axis: axis) }))
        }

        // slice: a middle block on each axis, including the first and the last.
        let s = randn([3, 4, 5], seed: 90)
        for (axis, range) in [(0, 1 ..< 3), (1, 1 ..< 3), (2, 0 ..< 2), (2, 3 ..< 5)] {
            cases.append(OpCase("slice", "[3,4,5] axis \(axis) \(range)", inputs: [s], linearIn: [0],
                                double: { slice($0[0], axis: axis, range: range) },
                                float: { slice($0[0], axis: axis, range: range) }))
        }

        // sinusoidalEmbedding: c = ln(σ)/4 lies in about [−1.2, 1.2] for EDM's σ range.
        let c = Tensor<Double>(shape: [3], scalars: [-1.1, 0.3, 0.9])
        cases.append(OpCase("sinusoidalEmbedding", "N 3, 8 channels", inputs: [c], reductionLength: 4,
                            double: { sinusoidalEmbedding($0[0], channels: 8) },
                            float: { sinusoidalEmbedding($0[0], channels: 8) }))
        cases.append(OpCase("sinusoidalEmbedding", "N 3, 6 channels, maxPeriod 50", inputs: [c], reductionLength: 3,
                            double: { sinusoidalEmbedding($0[0], channels: 6, maxPeriod: 50) },
                            float: { sinusoidalEmbedding($0[0], channels: 6, maxPeriod: 50) }))

        // dropout: the mask is an input that is not differentiated.
        var rng = RandomGenerator(seed: 7)
        let mask: Tensor<Double> = dropoutMask(shape: x.shape, p: 0.3, rng: &rng)
        cases.append(OpCase("dropout", "p 0.3", inputs: [x, mask], differentiable: [true, false], linearIn: [0],
                            double: { dropout($0[0], mask: $0[1].value, p: 0.3) },
                            float: { dropout($0[0], mask: $0[1].value, p: 0.3) }))

        // nanToNum on finite inputs is the identity (non-finite inputs: NanToNumTests below).
        cases.append(OpCase("nanToNum", "finite input", inputs: [x], linearIn: [0],
                            double: { nanToNum($0[0]) }, float: { nanToNum($0[0]) }))
        return cases
    }
}
