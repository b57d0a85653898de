// Reverse-mode automatic differentiation: Variables recorded on an implicit tape.
//
// A `Variable` wraps a Tensor. A leaf is made by the user (a parameter, an input); every op
// applied to Variables returns a new Variable that remembers its parents and a closure computing
// the vector-Jacobian product (VJP) — the op's backward pass, defined right next to its forward
// in DMD2Ops. `backward()` walks the graph in reverse topological order.
//
// Rules, chosen for DMD2 (where the same networks are trained and, in another loss, frozen):
// - Gradients *accumulate* into `leaf.grad` (`+=`) until `zeroGrad()`.
// - `requiresGrad = false` freezes a leaf: no gradient is computed for it.
// - `backward(to: [x])` restricts the pass to the given leaves and leaves every other leaf's
//   `.grad` untouched: DMD2's generator GAN loss flows through the critic into the image without
//   touching the critic's parameters, even though they require grad for the critic's own loss.
// - `NoGrad.run { … }` records nothing (inference, EMA updates, the teacher's forward);
//   `x.detached()` is an explicit stop-gradient.
// - Intermediate gradients live only during one `backward` call and are freed as soon as their
//   node has been processed.

public final class Variable<T: TensorScalar> {
    /// The forward value.
    public var value: Tensor<T>
    /// The accumulated gradient of a leaf (nil until a backward pass reaches it).
    public var grad: Tensor<T>?
    /// Whether a leaf takes part in differentiation. Ops set it to "any parent requires grad".
    public var requiresGrad: Bool
    /// A name for reports (a parameter's checkpoint key, an op's name).
    public var name: String

    /// Inputs this value was computed from (empty for leaves and for constants).
    let parents: [Variable<T>]
    /// dY → one gradient per parent (nil where `needed[i]` is false or the input is not differentiable).
    let vjp: ((_ dY: Tensor<T>, _ needed: [Bool]) -> [Tensor<T>?])?

    /// A leaf.
    public init(_ value: Tensor<T>, requiresGrad: Bool = false, name: String = "") {
        self.value = value
        self.requiresGrad = requiresGrad
        self.name = name
        self.parents = []
        self.vjp = nil
    }

    init(value: Tensor<T>, name: String, parents: [Variable<T>],
         vjp: @escaping (_ dY: Tensor<T>, _ needed: [Bool]) -> [Tensor<T>?]) {
        self.value = value
        self.requiresGrad = true
        self.name = name
        self.parents = parents
        self.vjp = vjp
    }

    public var shape: [Int] { value.shape }
    public var isLeaf: Bool { vjp == nil }

    /// The result of an op. Records the VJP only when gradients are enabled and some parent
    /// requires them; otherwise returns a constant (no parents, nothing retained).
    public static func record(
        _ name: String, _ value: Tensor<T>, parents: [Variable<T>],
        vjp: @escaping (_ dY: Tensor<T>, _ needed: [Bool]) -> [Tensor<T>?]
    ) -> Variable<T> {
        if NoGrad.isRecording && parents.contains(where: \.requiresGrad) {
            return Variable(value: value, name: name, parents: parents, vjp: vjp)
        }
        return Variable(value, requiresGrad: false, name: name)
    }

    /// The same value cut from the graph (stop-gradient, `sg(·)` in the paper).
    public func detached() -> Variable<T> { Variable(value, requiresGrad: false, name: name) }

    /// Forget the accumulated gradient.
    public func zeroGrad() { grad = nil }

    /// Back-propagate from this value. `seed` is dL/d(self) (default: ones, i.e. self is the
    /// loss, summed if not a scalar). Gradients accumulate into the `.grad` of every leaf that
    /// requires grad — or, when `targets` is given, of those leaves only.
    public func backward(seed: Tensor<T>? = nil, to targets: [Variable<T>]? = nil) {
        let seedValue = seed ?? Tensor.ones(value.shape)
        precondition(seedValue.shape == value.shape,
                     "backward: seed shape \(seedValue.shape) differs from value shape \(value.shape) of '\(name)'")
        let order = topologicalOrder()
        let targetIDs = targets.map { Set($0.map(ObjectIdentifier.init)) }

        // A node needs a gradient iff a wanted leaf is reachable from it.
        var reaches = Set<ObjectIdentifier>()
        for node in order {                       // parents come before children
            let id = ObjectIdentifier(node)
            if node.isLeaf {
                let wanted = targetIDs.map { $0.contains(id) } ?? node.requiresGrad
                if wanted && node.requiresGrad { reaches.insert(id) }
            } else if node.parents.contains(where: { reaches.contains(ObjectIdentifier($0)) }) {
                reaches.insert(id)
            }
        }
        guard reaches.contains(ObjectIdentifier(self)) else { return }

        var grads: [ObjectIdentifier: Tensor<T>] = [ObjectIdentifier(self): seedValue]
        for node in order.reversed() {
            let id = ObjectIdentifier(node)
            guard let g = grads.removeValue(forKey: id) else { continue }
            guard let vjp = node.vjp else {
                node.grad = node.grad.map { $0 + g } ?? g
                continue
            }
            let needed = node.parents.map { reaches.contains(ObjectIdentifier($0)) }
            let parentGrads = NoGrad.run { vjp(g, needed) }
            precondition(parentGrads.count == node.parents.count, "op '\(node.name)': VJP returned \(parentGrads.count) gradients for \(node.parents.count) inputs")
            for (i, parent) in node.parents.enumerated() where needed[i] {
                guard let pg = parentGrads[i] else { continue }
                precondition(pg.shape == parent.value.shape,
                             "op '\(node.name)': gradient for input \(i) has shape \(pg.shape), input has \(parent.value.shape)")
                let pid = ObjectIdentifier(parent)
                grads[pid] = grads[pid].map { $0 + pg } ?? pg
            }
        }
    }

    /// Every node reachable from self, parents before children (iterative DFS).
    func topologicalOrder() -> [Variable<T>] {
        var order: [Variable<T>] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Variable<T>, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            let id = ObjectIdentifier(node)
            if visited.contains(id) { continue }
            visited.insert(id)
            stack.append((node, true))
            for p in node.parents where !visited.contains(ObjectIdentifier(p)) { stack.append((p, false)) }
        }
        return order
    }
}

/// Gradients of `output` (seeded by `seed`, default ones) with respect to `inputs`, returned
/// without touching any `.grad` (zeros for an input the output does not depend on, or one that
/// did not require grad when the forward pass was recorded).
public func gradients<T: TensorScalar>(
    of output: Variable<T>, withRespectTo inputs: [Variable<T>], seed: Tensor<T>? = nil
) -> [Tensor<T>] {
    let saved = inputs.map(\.grad)
    for x in inputs { x.grad = nil }
    output.backward(seed: seed, to: inputs)
    let result = inputs.map { $0.grad ?? Tensor.zeros($0.shape) }
    for (x, s) in zip(inputs, saved) { x.grad = s }
    return result
}

/// Scopes without gradient recording.
public enum NoGrad {
    @TaskLocal static var recording = true

    /// Whether ops currently record the graph (false inside `NoGrad.run`).
    public static var isRecording: Bool { recording }

    /// Run `body` without recording any graph (inference, teacher forwards, optimiser steps).
    public static func run<R>(_ body: () throws -> R) rethrows -> R {
        try $recording.withValue(false, operation: body)
    }
}
