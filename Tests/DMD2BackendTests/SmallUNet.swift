// The small UNet the backend suite runs end to end: EDM's `small16` config (16×16 RGB, 10
// classes, 64 channels × [1, 2], attention at 8×8 with 2 heads — 3.3 M parameters) with random,
// non-zero weights (the training initialisation's zero conv1/proj/out_conv would hide every
// layer in front of them), batch 2, one labelled image and one without a label.
//
// One "step" = the forward F(x, c_noise, y) and the backward of ⟨seed, F⟩ into x and every
// parameter: the outputs are F, dx and one gradient per parameter, in the store's order.
import DMD2Core
import DMD2Ops
import EDM

enum SmallUNet {
    static let config = UNetConfig.small16
    static let batch = 2

    /// Random non-zero weights (`UNetConfig.randomNonZeroParameters`), drawn in Float so the
    /// Float and Double networks hold the same values.
    static func parameters(seed: UInt64 = 2024) -> ParameterStore<Double> {
        var rng = RandomGenerator(seed: seed)
        return config.randomNonZeroParameters(rng: &rng)
    }

    /// Inputs: x [2, 3, 16, 16] ~ N(0, 1), c_noise = ln(σ)/4 for σ = 2.5 and 0.05, labels (class
    /// 3, none), and the seed ⟨seed, F⟩ of the backward pass; all Float-exact.
    struct Inputs {
        var x: Tensor<Double>
        var noiseLabels: Tensor<Double>
        var classLabels: Tensor<Double>
        var seed: Tensor<Double>
    }

    static func inputs(seed: UInt64 = 7) -> Inputs {
        var rng = RandomGenerator(seed: seed)
        let round = { (t: Tensor<Double>) in t.converted(to: Float.self).converted(to: Double.self) }
        let x: Tensor<Double> = round(rng.normal([batch, config.inChannels, config.resolution, config.resolution]))
        let noise = round(Tensor(shape: [batch], scalars: [Double.log(2.5) / 4, Double.log(0.05) / 4]))
        var labels = Tensor<Double>.zeros([batch, config.labelDim])
        labels[0, 3] = 1
        let s: Tensor<Double> = round(rng.normal([batch, config.outChannels, config.resolution, config.resolution]))
        return Inputs(x: x, noiseLabels: noise, classLabels: labels, seed: s)
    }

    /// The names of a step's outputs, in order: "F", "grad.x", "grad.<parameter>"….
    static func outputNames(_ parameters: ParameterStore<Double>) -> [String] {
        ["F", "grad.x"] + parameters.names.map { "grad.\($0)" }
    }

    /// Forward and backward in precision T on the current backend; outputs widened to Double.
    static func step<T: TensorScalar>(_: T.Type, parameters: ParameterStore<Double>, inputs: Inputs) -> [Tensor<Double>] {
        let store = parameters.converted(to: T.self, requiresGrad: true)
        let net = UNet<T>(config: config, parameters: store)
        let x = Variable(inputs.x.converted(to: T.self), requiresGrad: true)
        let F = net(x, noiseLabels: inputs.noiseLabels.converted(to: T.self), classLabels: inputs.classLabels.converted(to: T.self))
        let grads = gradients(of: F, withRespectTo: [x] + store.variables, seed: inputs.seed.converted(to: T.self))
        return ([F.value] + grads).map { $0.converted(to: Double.self) }
    }

    /// The longest sum behind any output of the step (for the tolerance): the widest conv's
    /// C·k·k — dec.8x8_block0's conv0 reads 128 + 128 (skip) = 256 channels, 256·9 = 2304 —
    /// longer than the weight-gradient sums N·H·W = 512, dX's Cout·k·k = 1152 and attention's L = 64.
    static let reductionLength = 2304
}
