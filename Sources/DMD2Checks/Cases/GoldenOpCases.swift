// The golden op cases `dmd2 export-goldens` writes (ops/<op>.safetensors): per op, inputs, the
// output, an upstream gradient `seed` and the input gradients ∂⟨seed, y⟩/∂input, float64 with
// Float-exact inputs. An op added to `OpCatalog.all` gets its gradient-check cases in this
// folder and its golden case here (export-goldens lists ops without one).
import DMD2Core
import DMD2Ops
import Foundation

extension GoldenCases {
    /// An op case: forward on the inputs, backward of ⟨seed, y⟩ into the differentiable inputs.
    public static func opCase(_ name: String, parameters: [String: Any] = [:], inputs: [(String, Tensor<Double>)],
                       differentiable: [Bool]? = nil, reductionLength: Int, seed: UInt64,
                       _ f: ([Variable<Double>]) -> Variable<Double>) -> GoldenCase {
        let needs = differentiable ?? inputs.map { _ in true }
        let vars = zip(inputs, needs).map { Variable($0.0.1, requiresGrad: $0.1) }
        let y = f(vars)
        var rng = RandomGenerator(seed: seed)
        let upstream = floatExact(rng.normal(y.shape))
        let wanted = zip(vars, needs).filter(\.1).map(\.0)
        let grads = gradients(of: y, withRespectTo: wanted, seed: upstream)
        let gradNames = zip(inputs, needs).filter(\.1).map(\.0.0)
        return GoldenCase(name: name, parameters: parameters, inputs: inputs, outputs: [("y", y.value)], seeds: [("y", upstream)],
                          grads: Array(zip(gradNames, grads)), reductionLength: reductionLength)
    }

    /// One file per op of `OpCatalog.all`, computed on `Compute.backend`.
    public static func ops(seed: UInt64) -> [(name: String, cases: [GoldenCase])] {
        var s = seed &* 1000 &+ 500
        func next() -> UInt64 { s &+= 1; return s }
        var files: [(String, [GoldenCase])] = []
        func file(_ name: String, _ cases: [GoldenCase]) { files.append((name, cases)) }

        // Binary ops broadcast [2, 3, 4] with [3, 1] (numpy rules).
        let a = randn([2, 3, 4], next()), bb = randn([3, 1], next())
        let positive = randn([3, 1], next()).scalars.map { Double(Float(Swift.abs($0) + 0.5)) }
        file("add", [opCase("c0", inputs: [("a", a), ("b", bb)], reductionLength: 8, seed: next()) { add($0[0], $0[1]) }])
        file("sub", [opCase("c0", inputs: [("a", a), ("b", bb)], reductionLength: 8, seed: next()) { sub($0[0], $0[1]) }])
        file("mul", [opCase("c0", inputs: [("a", a), ("b", bb)], reductionLength: 8, seed: next()) { mul($0[0], $0[1]) }])
        file("div", [opCase("c0", inputs: [("a", a), ("b", Tensor(shape: [3, 1], scalars: positive))], reductionLength: 8, seed: next()) { div($0[0], $0[1]) }])
        let x = randn([3, 4], next(), std: 1.5)
        let xPositive = Tensor(shape: [3, 4], scalars: x.scalars.map { Double(Float(Swift.abs($0) + 0.1)) })
        file("addScalar", [opCase("c0", parameters: ["c": 0.75], inputs: [("x", x)], reductionLength: 1, seed: next()) { addScalar($0[0], 0.75) }])
        file("mulScalar", [opCase("c0", parameters: ["c": -1.5], inputs: [("x", x)], reductionLength: 1, seed: next()) { mulScalar($0[0], -1.5) }])
        let unaryOps: [(String, (Variable<Double>) -> Variable<Double>)] = [
            ("neg", neg), ("exp", exp), ("square", square), ("abs", abs),
            ("sigmoid", sigmoid), ("silu", silu), ("softplus", softplus), ("tanh", tanh),
        ]
        for (name, op) in unaryOps {
            file(name, [opCase("c0", inputs: [("x", x)], reductionLength: 1, seed: next()) { op($0[0]) }])
        }
        file("log", [opCase("c0", inputs: [("x", xPositive)], reductionLength: 1, seed: next()) { log($0[0]) }])
        file("sqrt", [opCase("c0", inputs: [("x", xPositive)], reductionLength: 1, seed: next()) { sqrt($0[0]) }])

        let r = randn([2, 3, 4], next())
        file("sum", [
            opCase("axes1", parameters: ["axes": [1], "keepingDims": false], inputs: [("x", r)], reductionLength: 3, seed: next()) { sum($0[0], axes: [1]) },
            opCase("all", parameters: ["axes": NSNull(), "keepingDims": false], inputs: [("x", r)], reductionLength: 24, seed: next()) { sum($0[0]) },
        ])
        file("mean", [opCase("axes02", parameters: ["axes": [0, 2], "keepingDims": true], inputs: [("x", r)], reductionLength: 8, seed: next()) {
            mean($0[0], axes: [0, 2], keepingDims: true)
        }])
        file("matmul", [opCase("c0", inputs: [("a", randn([3, 4], next())), ("b", randn([4, 5], next()))], reductionLength: 5, seed: next()) { matmul($0[0], $0[1]) }])
        file("linear", [opCase("c0", inputs: [("x", randn([3, 4], next())), ("weight", randn([5, 4], next())), ("bias", randn([5], next()))],
                               reductionLength: 5, seed: next()) { linear($0[0], weight: $0[1], bias: $0[2]) }])

        var conv: [GoldenCase] = []
        for (name, xShape, cout, k, st, p) in [("k3s1p1", [2, 3, 5, 5], 4, 3, 1, 1), ("k4s2p1", [2, 2, 6, 4], 3, 4, 2, 1), ("k1s1p0", [2, 3, 4, 4], 5, 1, 1, 0)] {
            let cin = xShape[1]
            let L = ((xShape[2] + 2 * p - k) / st + 1) * ((xShape[3] + 2 * p - k) / st + 1)
            conv.append(opCase(name, parameters: ["stride": st, "padding": p],
                               inputs: [("x", randn(xShape, next())), ("weight", randn([cout, cin, k, k], next(), std: 1 / Double(cin * k * k).squareRoot())),
                                        ("bias", randn([cout], next()))],
                               reductionLength: max(cin * k * k, xShape[0] * L, cout * k * k), seed: next()) {
                conv2d($0[0], weight: $0[1], bias: $0[2], stride: st, padding: p)
            })
        }
        file("conv2d", conv)
        file("avgPool2x2", [opCase("c0", inputs: [("x", randn([2, 3, 4, 6], next()))], reductionLength: 4, seed: next()) { avgPool2x2($0[0]) }])
        file("upsampleNearest2x", [opCase("c0", inputs: [("x", randn([2, 3, 2, 3], next()))], reductionLength: 4, seed: next()) { upsampleNearest2x($0[0]) }])
        file("groupNorm", [opCase("c0", parameters: ["groups": 4, "eps": 1e-5],
                                  inputs: [("x", randn([2, 8, 3, 3], next(), std: 2, shift: 0.5)), ("weight", randn([8], next(), std: 0.2, shift: 1)),
                                           ("bias", randn([8], next(), std: 0.2))],
                                  reductionLength: 18, seed: next()) { groupNorm($0[0], groups: 4, weight: $0[1], bias: $0[2], eps: 1e-5) }])
        file("softmax", [
            opCase("last", parameters: ["axis": -1], inputs: [("x", randn([3, 5], next(), std: 2))], reductionLength: 5, seed: next()) { softmax($0[0], axis: -1) },
            opCase("axis1", parameters: ["axis": 1], inputs: [("x", randn([2, 3, 4], next(), std: 2))], reductionLength: 3, seed: next()) { softmax($0[0], axis: 1) },
        ])
        file("attention", [opCase("h2d4", parameters: ["heads": 2], inputs: [("qkv", randn([2, 24, 2, 3], next()))], reductionLength: 6, seed: next()) {
            attention(qkv: $0[0], heads: 2)
        }])
        let t = randn([2, 3, 4], next())
        file("reshape", [opCase("c0", parameters: ["shape": [4, 6]], inputs: [("x", t)], reductionLength: 0, seed: next()) { reshape($0[0], [4, 6]) }])
        file("permute", [opCase("c0", parameters: ["permutation": [1, 2, 0]], inputs: [("x", t)], reductionLength: 0, seed: next()) { permute($0[0], [1, 2, 0]) }])
        file("concat", [opCase("c0", parameters: ["axis": 1], inputs: [("a", t), ("b", randn([2, 1, 4], next()))], reductionLength: 0, seed: next()) {
            concat([$0[0], $0[1]], axis: 1)
        }])
        file("slice", [opCase("c0", parameters: ["axis": 2, "start": 1, "end": 3], inputs: [("x", t)], reductionLength: 0, seed: next()) {
            slice($0[0], axis: 2, range: 1 ..< 3)
        }])
        file("sinusoidalEmbedding", [opCase("c0", parameters: ["channels": 8, "maxPeriod": 10000.0],
                                            inputs: [("c", Tensor(shape: [3], scalars: [0.5, -1.25, 2.75]))], reductionLength: 4, seed: next()) {
            sinusoidalEmbedding($0[0], channels: 8, maxPeriod: 10000)
        }])
        var maskRng = RandomGenerator(seed: next())
        let mask: Tensor<Double> = dropoutMask(shape: [3, 4], p: 0.25, rng: &maskRng)
        file("dropout", [opCase("c0", parameters: ["p": 0.25], inputs: [("x", x), ("mask", mask)], differentiable: [true, false],
                                reductionLength: 1, seed: next()) { dropout($0[0], mask: $0[1].value, p: 0.25) }])
        let nonFinite = Tensor<Double>(shape: [6], scalars: [1.5, .nan, .infinity, -.infinity, -0.25, 3])
        file("nanToNum", [opCase("c0", parameters: ["nan": 0.5, "posInf": 5.0, "negInf": -5.0], inputs: [("x", nonFinite)], reductionLength: 0, seed: next()) {
            nanToNum($0[0], nan: 0.5, posInf: 5, negInf: -5)
        }])
        let pred = randn([2, 3, 2, 2], next()), target = randn([2, 3, 2, 2], next())
        file("mseLoss", [opCase("c0", inputs: [("x", pred), ("target", target)], reductionLength: 24, seed: next()) { mseLoss($0[0], $0[1]) }])
        file("weightedMSELoss", [opCase("c0", inputs: [("x", pred), ("target", target), ("weight", Tensor(shape: [2, 1, 1, 1], scalars: [0.5, 2.0]))],
                                        reductionLength: 24, seed: next()) { weightedMSELoss($0[0], $0[1], weight: $0[2]) }])
        file("softplusLoss", [opCase("c0", inputs: [("x", randn([4, 3], next(), std: 3))], reductionLength: 12, seed: next()) { softplusLoss($0[0]) }])
        let labels = [2, 0, 4]
        file("softmaxCrossEntropy", [opCase("c0", parameters: ["labels": labels], inputs: [("logits", randn([3, 5], next(), std: 2))],
                                            reductionLength: 15, seed: next()) { softmaxCrossEntropy(logits: $0[0], labels: labels) }])
        // Last, so the cases above keep their seeds.
        file("groupNormSiLU", [opCase("c0", parameters: ["groups": 4, "eps": 1e-5],
                                      inputs: [("x", randn([2, 8, 3, 3], next(), std: 2, shift: 0.5)), ("scale", randn([2, 8], next(), std: 0.6, shift: 0.5)),
                                               ("shift", randn([2, 8], next(), std: 0.8))],
                                      reductionLength: 18, seed: next()) { groupNormSiLU($0[0], groups: 4, scale: $0[1], shift: $0[2], eps: 1e-5) }])
        return files
    }
}
