// Elementwise ops with broadcasting (numpy rules), scalar ops, and unary activations.
//
// Forward: y = f(a, b) on the broadcast shape. Backward: each operand's gradient is the
// upstream gradient times ∂f/∂operand, summed back over the axes it was broadcast along.
import DMD2Core

// MARK: Binary, broadcasting

/// a + b. ∂/∂a = 1, ∂/∂b = 1.
public func add<T>(_ a: Variable<T>, _ b: Variable<T>) -> Variable<T> {
    broadcastBinary("add", a, b, .add) { g, _, _, needed in
        [needed[0] ? g : nil, needed[1] ? g : nil]
    }
}

/// a − b. ∂/∂a = 1, ∂/∂b = −1.
public func sub<T>(_ a: Variable<T>, _ b: Variable<T>) -> Variable<T> {
    broadcastBinary("sub", a, b, .sub) { g, _, _, needed in
        [needed[0] ? g : nil, needed[1] ? -g : nil]
    }
}

/// a · b. ∂/∂a = b, ∂/∂b = a.
public func mul<T>(_ a: Variable<T>, _ b: Variable<T>) -> Variable<T> {
    broadcastBinary("mul", a, b, .mul) { g, A, B, needed in
        [needed[0] ? g * B : nil, needed[1] ? g * A : nil]
    }
}

/// a / b. ∂/∂a = 1/b, ∂/∂b = −a/b².
public func div<T>(_ a: Variable<T>, _ b: Variable<T>) -> Variable<T> {
    broadcastBinary("div", a, b, .div) { g, A, B, needed in
        [needed[0] ? g / B : nil, needed[1] ? -(g * A / (B * B)) : nil]
    }
}

public func + <T>(a: Variable<T>, b: Variable<T>) -> Variable<T> { add(a, b) }
public func - <T>(a: Variable<T>, b: Variable<T>) -> Variable<T> { sub(a, b) }
public func * <T>(a: Variable<T>, b: Variable<T>) -> Variable<T> { mul(a, b) }
public func / <T>(a: Variable<T>, b: Variable<T>) -> Variable<T> { div(a, b) }

/// Shared broadcasting machinery: both operands are expanded to the common shape, `op` runs
/// elementwise, and the VJP (given the expanded operands) is summed back to each input shape.
func broadcastBinary<T>(
    _ name: String, _ a: Variable<T>, _ b: Variable<T>, _ op: BinaryOp,
    vjp: @escaping (_ g: Tensor<T>, _ a: Tensor<T>, _ b: Tensor<T>, _ needed: [Bool]) -> [Tensor<T>?]
) -> Variable<T> {
    guard let shape = broadcastShape(a.shape, b.shape) else {
        preconditionFailure("\(name): shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let A = a.value.broadcast(to: shape), B = b.value.broadcast(to: shape)
    let aShape = a.shape, bShape = b.shape
    return Variable.record(name, A.zip(B, op), parents: [a, b]) { g, needed in
        let grads = vjp(g, A, B, needed)
        return [grads[0]?.summed(toShape: aShape), grads[1]?.summed(toShape: bShape)]
    }
}

// MARK: Scalar ops

/// x + c for a constant c. ∂/∂x = 1.
public func addScalar<T>(_ x: Variable<T>, _ c: T) -> Variable<T> {
    Variable.record("addScalar", x.value + c, parents: [x]) { g, _ in [g] }
}

/// c · x for a constant c. ∂/∂x = c.
public func mulScalar<T>(_ x: Variable<T>, _ c: T) -> Variable<T> {
    Variable.record("mulScalar", x.value * c, parents: [x]) { g, _ in [g * c] }
}

public func + <T>(x: Variable<T>, c: T) -> Variable<T> { addScalar(x, c) }
public func * <T>(x: Variable<T>, c: T) -> Variable<T> { mulScalar(x, c) }
public func * <T>(c: T, x: Variable<T>) -> Variable<T> { mulScalar(x, c) }
public prefix func - <T>(x: Variable<T>) -> Variable<T> { neg(x) }

// MARK: Unary

/// −x. ∂ = −1.
public func neg<T>(_ x: Variable<T>) -> Variable<T> {
    Variable.record("neg", x.value.map(.neg), parents: [x]) { g, _ in [-g] }
}

/// eˣ. ∂ = eˣ (the output).
public func exp<T>(_ x: Variable<T>) -> Variable<T> {
    let y = x.value.map(.exp)
    return Variable.record("exp", y, parents: [x]) { g, _ in [g * y] }
}

/// ln x. ∂ = 1/x.
public func log<T>(_ x: Variable<T>) -> Variable<T> {
    Variable.record("log", x.value.map(.log), parents: [x]) { g, _ in [g / x.value] }
}

/// √x. ∂ = 1/(2√x).
public func sqrt<T>(_ x: Variable<T>) -> Variable<T> {
    let y = x.value.map(.sqrt)
    return Variable.record("sqrt", y, parents: [x]) { g, _ in [g / (y * T(2))] }
}

/// x². ∂ = 2x.
public func square<T>(_ x: Variable<T>) -> Variable<T> {
    Variable.record("square", x.value.map(.square), parents: [x]) { g, _ in [g * x.value * T(2)] }
}

/// |x|. ∂ = sign(x) (0 at 0, the subgradient PyTorch uses).
public func abs<T>(_ x: Variable<T>) -> Variable<T> {
    Variable.record("abs", x.value.map(.abs), parents: [x]) { g, _ in [g * x.value.map(.sign)] }
}

/// σ(x) = 1/(1+e^{−x}). ∂ = σ(x)(1−σ(x)).
public func sigmoid<T>(_ x: Variable<T>) -> Variable<T> {
    Variable.record("sigmoid", x.value.map(.sigmoid), parents: [x]) { g, _ in [x.value.zip(g, .sigmoidBackward)] }
}

/// SiLU(x) = x·σ(x). ∂ = σ(x)(1 + x(1−σ(x))).
public func silu<T>(_ x: Variable<T>) -> Variable<T> {
    Variable.record("silu", x.value.map(.silu), parents: [x]) { g, _ in [x.value.zip(g, .siluBackward)] }
}

/// softplus(x) = ln(1+eˣ). ∂ = σ(x).
public func softplus<T>(_ x: Variable<T>) -> Variable<T> {
    Variable.record("softplus", x.value.map(.softplus), parents: [x]) { g, _ in [x.value.zip(g, .softplusBackward)] }
}

/// tanh x. ∂ = 1 − tanh²x.
public func tanh<T>(_ x: Variable<T>) -> Variable<T> {
    Variable.record("tanh", x.value.map(.tanh), parents: [x]) { g, _ in [x.value.zip(g, .tanhBackward)] }
}
