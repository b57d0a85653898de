// Named parameters: an ordered list of `Variable<T>` leaves keyed by their checkpoint names
// (`model.enc.64x64_conv.weight`, …), the single place a network's weights live.
//
// Networks are plain descriptions (UNetLayout) applied to a ParameterStore, so the same code
// runs the teacher, the fake critic and the generator (three stores of the same layout), and a
// gradient check can pass its own Variables in as parameters.
import DMD2Core

/// Parameters by name, in a fixed order (EDM's state-dict order for a UNet).
///
/// A struct holding references: copying the store shares the Variables (use `copy()` for
/// independent weights). Every parameter is a leaf with `requiresGrad = true` unless frozen.
public struct ParameterStore<T: TensorScalar> {
    /// The names, in order.
    public private(set) var names: [String]
    /// The leaves, in the order of `names`.
    public private(set) var variables: [Variable<T>]
    private var index: [String: Int]

    /// A store of the given (name, leaf) pairs; names must be unique.
    public init(_ entries: [(name: String, variable: Variable<T>)]) {
        names = entries.map(\.name)
        variables = entries.map(\.variable)
        index = [:]
        for (i, name) in names.enumerated() {
            precondition(index[name] == nil, "ParameterStore: duplicate parameter name '\(name)'")
            index[name] = i
        }
    }

    /// The parameter named `name` (traps with the name when absent: a network asked for a
    /// parameter its layout does not have).
    public subscript(name: String) -> Variable<T> {
        guard let i = index[name] else {
            preconditionFailure("ParameterStore: no parameter '\(name)' among \(names.count) parameters")
        }
        return variables[i]
    }

    /// The parameter named `name`, or nil.
    public func parameter(_ name: String) -> Variable<T>? { index[name].map { variables[$0] } }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// Number of tensors.
    public var count: Int { names.count }

    /// Number of scalars over all tensors.
    public var scalarCount: Int { variables.map(\.value.count).reduce(0, +) }

    /// (name, value) pairs in order.
    public var namedTensors: [(name: String, value: Tensor<T>)] { zip(names, variables).map { ($0, $1.value) } }

    /// Independent leaves holding the same values (the teacher copied into a student).
    public func copy(requiresGrad: Bool = true) -> ParameterStore<T> {
        ParameterStore(zip(names, variables).map { ($0, Variable($1.value, requiresGrad: requiresGrad, name: $0)) })
    }

    /// The same values in another scalar type (new leaves).
    public func converted<U: TensorScalar>(to: U.Type = U.self, requiresGrad: Bool = true) -> ParameterStore<U> {
        ParameterStore<U>(zip(names, variables).map {
            ($0, Variable($1.value.converted(to: U.self), requiresGrad: requiresGrad, name: $0))
        })
    }

    /// Freeze or unfreeze every parameter.
    public func setRequiresGrad(_ flag: Bool) { for v in variables { v.requiresGrad = flag } }

    /// Drop every accumulated gradient.
    public func zeroGrad() { for v in variables { v.zeroGrad() } }

    /// Replace a parameter's value (same shape).
    public func assign(_ name: String, _ value: Tensor<T>) {
        let v = self[name]
        precondition(v.shape == value.shape, "ParameterStore.assign: '\(name)' has shape \(v.shape), new value has \(value.shape)")
        v.value = value
    }
}

extension ParameterStore {
    /// Parameters for `entries`, initialised as `ParameterInit` says, drawing from `rng` in
    /// entry order (element by element, row-major). Buffers (`resample_filter`) are skipped.
    public init(entries: [StateEntry], rng: inout RandomGenerator) {
        var pairs: [(name: String, variable: Variable<T>)] = []
        for entry in entries {
            guard case .parameter(let initialiser) = entry.kind else { continue }
            let value: Tensor<T>
            switch initialiser {
            case .uniform(let fanIn):
                // U(−b, b) = −b + 2b·u, u ~ U[0, 1), drawn in a plain loop: the generic
                // `RandomGenerator.uniform` costs ~250 ns per element, and ImageNet-64 has 296 M.
                let bound = 1 / Double(fanIn).squareRoot()
                var scalars = [T]()
                scalars.reserveCapacity(entry.shape.elementCount)
                for _ in 0..<entry.shape.elementCount { scalars.append(T(-bound + 2 * bound * rng.nextUniform())) }
                value = Tensor(shape: entry.shape, scalars: scalars)
            case .zeros: value = .zeros(entry.shape)
            case .ones: value = .ones(entry.shape)
            case .standardNormal: value = rng.normal(entry.shape)
            }
            pairs.append((entry.name, Variable(value, requiresGrad: true, name: entry.name)))
        }
        self.init(pairs)
    }
}

extension UNetConfig {
    /// Random parameters that leave no layer at zero, for fixtures, goldens and conformance
    /// checks (the training initialisation's zero conv1/proj/out_conv would hide every layer in
    /// front of them): weights N(0, 1/fan_in), GroupNorm γ 1 + 0.2·N(0, 1) and β 0.2·N(0, 1),
    /// biases N(0, 1/fan_in) (0.2·N(0, 1) for the zero-initialised layers), map_label N(0, 1).
    /// Drawn in Float, in parameter order, so the Float and Double networks hold the same values.
    public func randomNonZeroParameters<T: TensorScalar>(rng: inout RandomGenerator, as: T.Type = T.self) -> ParameterStore<T> {
        ParameterStore(layout.parameterEntries.map { e in
            let value: Tensor<Float>
            switch e.kind {
            case .parameter(.ones): value = rng.normal(e.shape, mean: 1, std: 0.2)
            case .parameter(.uniform(let fanIn)): value = rng.normal(e.shape, std: 1 / Double(fanIn).squareRoot())
            case .parameter(.standardNormal): value = rng.normal(e.shape)
            default:
                value = e.shape.count == 4 ? rng.normal(e.shape, std: 1 / Double(e.shape[1...].reduce(1, *)).squareRoot())
                                           : rng.normal(e.shape, std: 0.2)
            }
            return (e.name, Variable(value.converted(to: T.self), requiresGrad: true, name: e.name))
        })
    }
}
