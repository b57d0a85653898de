// Gradient checks of DMD2's GAN classifier head (DMD2/GANHead.swift): conv k4s2p1 → GroupNorm →
// SiLU → conv k4s4p0 → GroupNorm → SiLU → conv 1×1, on random non-zero parameters. Small enough
// (Cb = 8, batch 2) for the full Jacobian in the features and every parameter, plus vᵀJu and
// Float vs Double (GradCheck.all).
import DMD2
import DMD2Core
import DMD2Ops
import EDM

public enum GANHeadChecks {
    public static var all: [Check] {
        [Check(family: "gan-head", op: "GANHead", name: "GANHead Cb=8 (2 groups), batch 2: features and every parameter") {
            try GradCheck.all(headCase(channels: 8, batch: 2, seed: 40))
        }]
    }

    /// Features [N, Cb, 8, 8] ~ N(0, 1), then every parameter of the head: weights
    /// N(0, 1/fanIn), γ ~ 1 + 0.2·N(0, 1), biases and β ~ 0.2·N(0, 1).
    public static func headCase(channels Cb: Int, batch N: Int, seed: UInt64) -> OpCase {
        var rng = RandomGenerator(seed: seed)
        let R = GANHead<Double>.inputResolution
        let features: Tensor<Double> = rng.normal([N, Cb, R, R])
        let table = GANHead<Double>.parameterTable(channels: Cb)
        let params: [Tensor<Double>] = table.map { name, shape, fanIn in
            if fanIn > 0 && shape.count == 4 { return rng.normal(shape, std: 1 / Double(fanIn).squareRoot()) }
            if name.hasSuffix(".weight") { return rng.normal(shape, mean: 1, std: 0.2) }     // γ
            return rng.normal(shape, std: 0.2)                                                // conv biases, β
        }
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            let store = ParameterStore(zip(table, v[1...]).map { (name: $0.0.name, variable: $0.1) })
            return GANHead(channels: Cb, parameters: store)(v[0])
        }
        return OpCase("GANHead", "Cb=\(Cb), N=\(N)", inputs: [features] + params, reductionLength: Cb * 16,
                      double: { run($0) }, float: { run($0) })
    }
}
