// DMD2's GAN classifier head on the fake critic's encoder bottleneck (docs/METHOD.md §2 "GAN branch").
//
// Letters: N batch, Cb bottleneck channels (the last encoder output of μ_fake: 768 at
// ImageNet-64, 64 for cpu64Tiny, 128 for cpu64Small), G GroupNorm groups.
//   features [N, Cb, 8, 8]
//   → Conv(Cb → Cb, k4, s2, p1)  [N, Cb, 4, 4]    cls_pred_branch.0
//   → GroupNorm(G) → SiLU                          cls_pred_branch.1 (2 is the SiLU)
//   → Conv(Cb → Cb, k4, s4, p0)  [N, Cb, 1, 1]    cls_pred_branch.3
//   → GroupNorm(G) → SiLU                          cls_pred_branch.4 (5 is the SiLU)
//   → Conv(Cb → 1, k1)           [N, 1, 1, 1]     cls_pred_branch.6
//   → one logit per image        [N]
// The parameter names are those of a PyTorch `nn.Sequential` called `cls_pred_branch` (index =
// position in the sequence; the SiLUs at 2 and 5 have no parameters), the interface of DMD2's
// head:
//   cls_pred_branch.0.weight [Cb, Cb, 4, 4]   cls_pred_branch.0.bias [Cb]
//   cls_pred_branch.1.weight [Cb] (γ)         cls_pred_branch.1.bias [Cb] (β)
//   cls_pred_branch.3.weight [Cb, Cb, 4, 4]   cls_pred_branch.3.bias [Cb]
//   cls_pred_branch.4.weight [Cb] (γ)         cls_pred_branch.4.bias [Cb] (β)
//   cls_pred_branch.6.weight [1, Cb, 1, 1]    cls_pred_branch.6.bias [1]
// The two strided convolutions need an 8×8 input (8 → 4 → 1); the init traps otherwise.
// Groups: ADM's rule min(32, Cb/4) (`admGroupCount`): 32 at full scale (docs/METHOD.md's
// GroupNorm(32) for Cb = 768), and at least 4 channels per group for the narrow CPU critics —
// with 1×1 maps after the second conv, a group of one channel would normalise every value to β.
// Initialisation (fresh, the head is not in the teacher): PyTorch's default for Conv2d,
// weights and biases U(−1/√fan_in, 1/√fan_in) with fan_in = Cin·k² (kaiming_uniform with
// a = √5), and GroupNorm γ = 1, β = 0; drawn in parameter order, element by element.
import DMD2Core
import DMD2Ops
import EDM
import Foundation
import SafeTensors

/// The classifier head D on μ_fake's encoder bottleneck (see the file header).
public struct GANHead<T: TensorScalar> {
    /// Cb, the bottleneck width.
    public let channels: Int
    /// GroupNorm groups (admGroupCount(Cb)).
    public let groups: Int
    public var parameters: ParameterStore<T>

    /// The spatial size the head reads (its two strided convolutions reduce 8 → 4 → 1).
    public static var inputResolution: Int { 8 }

    /// The head's parameters in order: name, shape and fan-in (0 for GroupNorm's γ and β).
    public static func parameterTable(channels Cb: Int) -> [(name: String, shape: [Int], fanIn: Int)] {
        let p = "cls_pred_branch"
        return [
            ("\(p).0.weight", [Cb, Cb, 4, 4], Cb * 16), ("\(p).0.bias", [Cb], Cb * 16),
            ("\(p).1.weight", [Cb], 0), ("\(p).1.bias", [Cb], 0),
            ("\(p).3.weight", [Cb, Cb, 4, 4], Cb * 16), ("\(p).3.bias", [Cb], Cb * 16),
            ("\(p).4.weight", [Cb], 0), ("\(p).4.bias", [Cb], 0),
            ("\(p).6.weight", [1, Cb, 1, 1], Cb), ("\(p).6.bias", [1], Cb),
        ]
    }

    /// A freshly initialised head for a `channels`-wide bottleneck, reproducible from `rng`.
    public init(channels: Int, rng: inout RandomGenerator) {
        var pairs: [(name: String, variable: Variable<T>)] = []
        for (name, shape, fanIn) in Self.parameterTable(channels: channels) {
            let value: Tensor<T>
            if fanIn > 0 {
                let bound = 1 / Double(fanIn).squareRoot()
                value = Tensor(shape: shape, scalars: (0..<shape.elementCount).map { _ in T(-bound + 2 * bound * rng.nextUniform()) })
            } else {
                value = name.hasSuffix(".weight") ? .ones(shape) : .zeros(shape)     // γ = 1, β = 0
            }
            pairs.append((name, Variable(value, requiresGrad: true, name: name)))
        }
        self.init(channels: channels, parameters: ParameterStore(pairs))
    }

    /// A head with the given parameters, which must be exactly the table's (names, order, shapes).
    public init(channels: Int, parameters: ParameterStore<T>) {
        precondition(channels >= 4, "GANHead: bottleneck width \(channels) must be ≥ 4 (GroupNorm groups of ≥ 4 channels)")
        let table = Self.parameterTable(channels: channels)
        precondition(parameters.names == table.map(\.name),
                     "GANHead: parameters \(parameters.names) differ from the head's \(table.map(\.name))")
        for (entry, v) in zip(table, parameters.variables) {
            precondition(v.shape == entry.shape, "GANHead: parameter '\(entry.name)' has shape \(v.shape), expected \(entry.shape)")
        }
        self.channels = channels
        self.groups = admGroupCount(channels: channels)
        self.parameters = parameters
    }

    /// Logits [N] for bottleneck features [N, Cb, 8, 8].
    public func callAsFunction(_ features: Variable<T>) -> Variable<T> {
        let s = features.shape, Cb = channels, R = Self.inputResolution
        precondition(s.count == 4 && s[1] == Cb && s[2] == R && s[3] == R,
                     "GANHead: features \(s), expected [N, \(Cb), \(R), \(R)] (the critic's encoder bottleneck at 8×8)")
        let p = { (name: String) in parameters["cls_pred_branch.\(name)"] }
        var h = conv2d(features, weight: p("0.weight"), bias: p("0.bias"), stride: 2, padding: 1)     // [N, Cb, 4, 4]
        h = groupNormSiLU(h, groups: groups, weight: p("1.weight"), bias: p("1.bias"))
        h = conv2d(h, weight: p("3.weight"), bias: p("3.bias"), stride: 4, padding: 0)               // [N, Cb, 1, 1]
        h = groupNormSiLU(h, groups: groups, weight: p("4.weight"), bias: p("4.bias"))
        h = conv2d(h, weight: p("6.weight"), bias: p("6.bias"), padding: 0)                          // [N, 1, 1, 1]
        return reshape(h, [s[0]])
    }

    /// The same values as leaves that do not require grad (used where the head must get no
    /// parameter gradient: the generator's GAN loss).
    public func frozen() -> GANHead<T> {
        GANHead(channels: channels, parameters: parameters.copy(requiresGrad: false))
    }

    // MARK: File

    public static var format: String { "swift-dmd2.gan-head" }

    /// The head as a safetensors file: its parameters under their names; metadata format,
    /// format_version "1", channels, groups, step (when given).
    public func file(step: Int? = nil) -> SafeTensorsFile {
        var metadata = ["format": Self.format, "format_version": "1", "channels": String(channels), "groups": String(groups)]
        if let step { metadata["step"] = String(step) }
        var file = SafeTensorsFile(metadata: metadata)
        for (name, value) in parameters.namedTensors { file[name] = value.safeTensor() }
        return file
    }

    /// A head from a file written by `file(step:)`, strictly checked (every key with its
    /// shape, no other key).
    public static func load(from url: URL) throws -> GANHead<T> {
        let file = try SafeTensorsFile(contentsOf: url)
        func fail(_ m: String) -> DistillError { .badCheckpoint("\(url.path): \(m)") }
        guard file.metadata["format"] == format else { throw fail("metadata 'format' is \(file.metadata["format"] ?? "absent"), expected \(format)") }
        guard let c = file.metadata["channels"], let channels = Int(c), channels >= 4 else { throw fail("metadata 'channels' missing or invalid") }
        let table = parameterTable(channels: channels)
        let known = Set(table.map(\.name))
        for key in file.tensors.keys.sorted() where !known.contains(key) { throw fail("unexpected key '\(key)'") }
        var pairs: [(name: String, variable: Variable<T>)] = []
        for (name, shape, _) in table {
            guard let record = file[name] else { throw fail("missing key '\(name)' (shape \(shape))") }
            guard record.shape == shape else { throw fail("key '\(name)' has shape \(record.shape), expected \(shape)") }
            let value = try Tensor<T>(record)
            do { try CheckpointError.checkFinite(value, key: name) } catch { throw fail("\(error)") }
            pairs.append((name, Variable(value, requiresGrad: true, name: name)))
        }
        return GANHead(channels: channels, parameters: ParameterStore(pairs))
    }
}
