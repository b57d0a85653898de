// Golden cases: what `dmd2 export-goldens` writes (docs/BACKENDS.md section 6), defined here in
// the checking library beside the conformance cases — the primitive goldens in
// Primitives/GoldenPrimitiveCases.swift, the op goldens in Cases/GoldenOpCases.swift — and
// written to safetensors by the `dmd2` tool. Each case is float64 with Float-exact inputs.
import DMD2Core
import Foundation

/// One golden case: parameters, named inputs/outputs/gradients (float64), and K.
public struct GoldenCase {
    public var name: String
    public var parameters: [String: Any] = [:]
    public var inputs: [(String, Tensor<Double>)] = []
    public var outputs: [(String, Tensor<Double>)] = []
    public var seeds: [(String, Tensor<Double>)] = []
    public var grads: [(String, Tensor<Double>)] = []
    public var reductionLength: Int

    public init(name: String, parameters: [String: Any] = [:], inputs: [(String, Tensor<Double>)] = [],
                outputs: [(String, Tensor<Double>)] = [], seeds: [(String, Tensor<Double>)] = [],
                grads: [(String, Tensor<Double>)] = [], reductionLength: Int) {
        self.name = name; self.parameters = parameters; self.inputs = inputs; self.outputs = outputs
        self.seeds = seeds; self.grads = grads; self.reductionLength = reductionLength
    }

    /// The case's JSON, stored as the file metadata under the case's name.
    public var metadataJSON: String {
        let object: [String: Any] = [
            "parameters": parameters,
            "inputs": inputs.map(\.0), "outputs": outputs.map(\.0),
            "seeds": seeds.map(\.0), "grads": grads.map(\.0),
            "reductionLength": reductionLength,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}

/// The golden files: `(name, cases)` per primitive (`primitives`) and per op (`ops`).
public enum GoldenCases {
    /// Seeded N(shift, std²) values, rounded through Float: every input is Float-exact, so a
    /// float32 runner starts from the same values and data movement stays bitwise comparable.
    public static func randn(_ shape: [Int], _ seed: UInt64, std: Double = 1, shift: Double = 0) -> Tensor<Double> {
        var rng = RandomGenerator(seed: seed)
        return floatExact(rng.normal(shape, mean: shift, std: std))
    }

    public static func floatExact(_ t: Tensor<Double>) -> Tensor<Double> { t.converted(to: Float.self).converted(to: Double.self) }

    /// A tensor's storage through `body` (primitives take buffers).
    public static func filled(_ shape: [Int], _ body: (UnsafeMutableBufferPointer<Double>) -> Void) -> Tensor<Double> {
        var t = Tensor<Double>.zeros(shape)
        t.withUnsafeMutableBufferPointer { body($0) }
        return t
    }
}
