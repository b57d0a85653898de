// Elementwise ops with broadcasting (numpy rules), scalar ops, and unary activations.
//
// Forward: y = f(a, b) on the broadcast shape. Backward: each operand's gradient is the
// upstream gradient times ∂f/∂operand, summed back over the axes it was broadcast along.
import DMD2Core
import RealModule

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

// MARK: Scalar formulas (the `unary` and `binary` primitives)

extension Formula {
    /// neg: y = −x.
    @inlinable public static func neg<T: TensorScalar>(_ x: T) -> T { -x }
    /// exp: y = eˣ; ∂ = eˣ = y.
    @inlinable public static func exp<T: TensorScalar>(_ x: T) -> T { T.exp(x) }
    /// log: y = ln x; ∂ = 1/x.
    @inlinable public static func log<T: TensorScalar>(_ x: T) -> T { T.log(x) }
    /// sqrt: y = √x; ∂ = 1/(2y).
    @inlinable public static func sqrt<T: TensorScalar>(_ x: T) -> T { x.squareRoot() }
    /// square: y = x²; ∂ = 2x.
    @inlinable public static func square<T: TensorScalar>(_ x: T) -> T { x * x }
    /// abs: y = |x|; ∂ = sign x.
    @inlinable public static func abs<T: TensorScalar>(_ x: T) -> T { Swift.abs(x) }
    /// sign: 1, −1 or 0 (the subgradient of |x| PyTorch uses: 0 at 0).
    @inlinable public static func sign<T: TensorScalar>(_ x: T) -> T { x > 0 ? 1 : (x < 0 ? -1 : 0) }
    /// sin and cos (the sinusoidal embedding).
    @inlinable public static func sin<T: TensorScalar>(_ x: T) -> T { T.sin(x) }
    @inlinable public static func cos<T: TensorScalar>(_ x: T) -> T { T.cos(x) }

    /// σ(x) = 1/(1 + e^{−x}), evaluated without overflow for large |x|: e^{−x} for x ≥ 0, and
    /// eˣ/(1 + eˣ) for x < 0.
    @inlinable public static func sigmoid<T: TensorScalar>(_ x: T) -> T {
        if x >= 0 { return 1 / (1 + T.exp(-x)) }
        let e = T.exp(x)
        return e / (1 + e)
    }
    /// σ'(x)·g = σ(x)·σ(−x)·g: both factors stay accurate where 1 − σ(x) would round to 0.
    @inlinable public static func sigmoidBackward<T: TensorScalar>(_ x: T, _ g: T) -> T { sigmoid(x) * sigmoid(-x) * g }

    /// SiLU(x) = x·σ(x).
    @inlinable public static func silu<T: TensorScalar>(_ x: T) -> T { x * sigmoid(x) }
    /// SiLU'(x)·g = g·σ(x)·(1 + x·σ(−x))  (= σ(x)(1 + x(1 − σ(x))), without the cancellation).
    @inlinable public static func siluBackward<T: TensorScalar>(_ x: T, _ g: T) -> T { g * sigmoid(x) * (1 + x * sigmoid(-x)) }

    /// softplus(x) = ln(1 + eˣ) = max(x, 0) + ln(1 + e^{−|x|}) (no overflow for large x).
    @inlinable public static func softplus<T: TensorScalar>(_ x: T) -> T { Swift.max(x, 0) + T.log(onePlus: T.exp(-Swift.abs(x))) }
    /// softplus'(x)·g = σ(x)·g.
    @inlinable public static func softplusBackward<T: TensorScalar>(_ x: T, _ g: T) -> T { sigmoid(x) * g }

    /// tanh x.
    @inlinable public static func tanh<T: TensorScalar>(_ x: T) -> T { T.tanh(x) }
    /// tanh'(x)·g = (1 − tanh²x)·g.
    @inlinable public static func tanhBackward<T: TensorScalar>(_ x: T, _ g: T) -> T { let t = T.tanh(x); return (1 - t * t) * g }

    /// maximum and minimum: max(a, b) = b ≥ a ? b : a (Swift.max; NaN handling as Swift's).
    @inlinable public static func maximum<T: TensorScalar>(_ a: T, _ b: T) -> T { Swift.max(a, b) }
    @inlinable public static func minimum<T: TensorScalar>(_ a: T, _ b: T) -> T { Swift.min(a, b) }

    /// The `unary` primitive's formula for `op`.
    @inlinable public static func unary<T: TensorScalar>(_ op: UnaryOp, _ x: T) -> T {
        switch op {
        case .neg: return neg(x)
        case .exp: return exp(x)
        case .log: return log(x)
        case .sqrt: return sqrt(x)
        case .square: return square(x)
        case .abs: return abs(x)
        case .sign: return sign(x)
        case .sigmoid: return sigmoid(x)
        case .silu: return silu(x)
        case .softplus: return softplus(x)
        case .tanh: return tanh(x)
        case .sin: return sin(x)
        case .cos: return cos(x)
        }
    }

    /// The `binary` primitive's formula for `op` (for the VJPs, a = x and b = the upstream g).
    @inlinable public static func binary<T: TensorScalar>(_ op: BinaryOp, _ a: T, _ b: T) -> T {
        switch op {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        case .maximum: return maximum(a, b)
        case .minimum: return minimum(a, b)
        case .sigmoidBackward: return sigmoidBackward(a, b)
        case .siluBackward: return siluBackward(a, b)
        case .softplusBackward: return softplusBackward(a, b)
        case .tanhBackward: return tanhBackward(a, b)
        }
    }
}
