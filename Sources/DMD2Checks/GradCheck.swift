// Exact gradient checks for every differentiable op (the checking library, used by the tests and `dmd2 gradcheck`).
//
// Three independent checks, all in Double:
// 1. `jacobian`: the full Jacobian by central differences against the one from backward
//    passes (PyTorch's gradcheck protocol: eps 1e-6, |analytic − numeric| ≤ atol + rtol·|numeric|
//    with atol 1e-5, rtol 1e-3), for tiny shapes.
// 2. `randomDirection`: vᵀJu — the directional derivative of ⟨v, f(x)⟩ along a random u by
//    central differences, against ⟨∇ₓ⟨v, f⟩, u⟩ from one backward pass — for big blocks.
// 3. `adjoint`: for an op linear in an input, ⟨A u, v⟩ = ⟨u, Aᵀv⟩ where Aᵀv is the backward
//    pass, to relative 1e-10 of ‖Au‖·‖v‖ (the Cauchy–Schwarz bound, so a small inner product by
//    chance cannot inflate the error).
// Plus `floatVsDouble`: the same op's Float kernels against its Double kernels, outputs and
// input gradients, with a tolerance that grows with the reduction length (see `floatTolerance`).
// Every failure names the op, the case, the input, the worst index and both values.
import DMD2Core
import Foundation

/// One op under test: a tiny instance with its inputs, and the same computation for both types.
public struct OpCase: @unchecked Sendable {
    /// The op's name in `OpCatalog.all`.
    public var op: String
    /// Which instance (shapes, options), for messages.
    public var label: String
    /// Inputs, in Double.
    public var inputs: [Tensor<Double>]
    /// Which inputs are differentiated (e.g. not masks or indices). Default: all.
    public var differentiable: [Bool]
    /// Inputs in which the op is linear with the others fixed (affine is fine: the adjoint test
    /// uses f(u) − f(0)).
    public var linearIn: [Int]
    /// Longest sum behind one output element (conv: C·k·k), for the Float tolerance.
    public var reductionLength: Int
    public var double: ([Variable<Double>]) -> Variable<Double>
    public var float: ([Variable<Float>]) -> Variable<Float>

    public init(
        _ op: String, _ label: String = "", inputs: [Tensor<Double>], differentiable: [Bool]? = nil,
        linearIn: [Int] = [], reductionLength: Int = 1,
        double: @escaping ([Variable<Double>]) -> Variable<Double>,
        float: @escaping ([Variable<Float>]) -> Variable<Float>
    ) {
        self.op = op
        self.label = label.isEmpty ? op : "\(op) [\(label)]"
        self.inputs = inputs
        self.differentiable = differentiable ?? inputs.map { _ in true }
        self.linearIn = linearIn
        self.reductionLength = reductionLength
        self.double = double
        self.float = float
    }
}

public struct GradCheckFailure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

public enum GradCheck {
    public static let eps = 1e-6
    public static let atol = 1e-5
    public static let rtol = 1e-3
    public static let adjointTolerance = 1e-10

    /// Float-vs-Double tolerance, relative to the largest |value| of the Double result:
    /// 64·u_f·√(reduction length) with u_f = 2⁻²⁴ (random rounding errors grow like √n).
    public static func floatTolerance(reductionLength: Int) -> Double {
        64 * Float.unitRoundoff * Double(max(1, reductionLength)).squareRoot()
    }

    /// Run every applicable check on a case: the full Jacobian when it is small, else a
    /// random-direction check; the adjoint test for each linear input; Float vs Double.
    public static func all(_ c: OpCase, seed: UInt64 = 1) throws {
        let nIn = zip(c.inputs, c.differentiable).filter(\.1).map(\.0.count).reduce(0, +)
        let nOut = evaluate(c.double, c.inputs).count
        if nIn * nOut <= 40_000 { try jacobian(c) }
        try randomDirection(c, seed: seed)
        for i in c.linearIn { try adjoint(c, input: i, seed: seed &+ UInt64(i)) }
        try floatVsDouble(c, seed: seed)
    }

    // MARK: 1. Full Jacobian

    public static func jacobian(_ c: OpCase) throws {
        let y0 = evaluate(c.double, c.inputs)
        for (i, x) in c.inputs.enumerated() where c.differentiable[i] {
            // Numeric: column j = (f(x + eps·e_j) − f(x − eps·e_j)) / 2eps.
            var numeric = [[Double]](repeating: [], count: x.count)
            for j in 0..<x.count {
                var plus = c.inputs, minus = c.inputs
                plus[i].scalars[j] += eps
                minus[i].scalars[j] -= eps
                let fp = evaluate(c.double, plus), fm = evaluate(c.double, minus)
                numeric[j] = zip(fp.scalars, fm.scalars).map { ($0 - $1) / (2 * eps) }
            }
            // Analytic: row k = backward with a one-hot seed at output k.
            for k in 0..<y0.count {
                var seed = Tensor<Double>.zeros(y0.shape)
                seed.scalars[k] = 1
                let g = gradient(c.double, c.inputs, seed: seed)[i]
                for j in 0..<x.count {
                    let a = g.scalars[j], n = numeric[j][k]
                    if !(abs(a - n) <= atol + rtol * abs(n)) {
                        throw GradCheckFailure(description: """
                            \(c.label): Jacobian mismatch for input \(i) (shape \(x.shape)) at \
                            d output\(index(k, y0.shape)) / d input\(index(j, x.shape)): \
                            backward \(a), finite difference \(n)
                            """)
                    }
                }
            }
        }
    }

    // MARK: 2. Random direction vᵀJu

    public static func randomDirection(_ c: OpCase, seed: UInt64 = 1) throws {
        var rng = RandomGenerator(seed: seed)
        let y0 = evaluate(c.double, c.inputs)
        let v: Tensor<Double> = rng.normal(y0.shape)
        let u: [Tensor<Double>] = c.inputs.enumerated().map { i, x in
            c.differentiable[i] ? rng.normal(x.shape) : .zeros(x.shape)
        }
        let s = { (xs: [Tensor<Double>]) in evaluate(c.double, xs).dot(v) }
        let plus = zip(c.inputs, u).map { $0 + $1 * eps }
        let minus = zip(c.inputs, u).map { $0 - $1 * eps }
        let numeric = (s(plus) - s(minus)) / (2 * eps)
        let grads = gradient(c.double, c.inputs, seed: v)
        let analytic = zip(grads, u).map { $0.dot($1) }.reduce(0, +)
        if !(abs(analytic - numeric) <= atol + rtol * abs(numeric)) {
            throw GradCheckFailure(description: """
                \(c.label): random-direction check vᵀJu: backward \(analytic), finite difference \(numeric)
                """)
        }
    }

    // MARK: 3. Adjoint ⟨Au, v⟩ = ⟨u, Aᵀv⟩

    public static func adjoint(_ c: OpCase, input i: Int, seed: UInt64 = 1) throws {
        var rng = RandomGenerator(seed: seed)
        let u: Tensor<Double> = rng.normal(c.inputs[i].shape)
        var atU = c.inputs; atU[i] = u
        var atZero = c.inputs; atZero[i] = .zeros(u.shape)
        let Au = evaluate(c.double, atU) - evaluate(c.double, atZero)
        let v: Tensor<Double> = rng.normal(Au.shape)
        let ATv = gradient(c.double, atU, seed: v)[i]
        let lhs = Au.dot(v), rhs = u.dot(ATv)
        let scale = max(Au.norm() * v.norm(), Double.leastNormalMagnitude)
        if !(abs(lhs - rhs) <= adjointTolerance * scale) {
            throw GradCheckFailure(description: """
                \(c.label): adjoint test for input \(i): ⟨Au,v⟩ = \(lhs), ⟨u,Aᵀv⟩ = \(rhs), \
                relative error \(abs(lhs - rhs) / scale) > \(adjointTolerance)
                """)
        }
    }

    // MARK: Float vs Double

    public static func floatVsDouble(_ c: OpCase, seed: UInt64 = 1) throws {
        var rng = RandomGenerator(seed: seed &+ 99)
        let yd = evaluate(c.double, c.inputs)
        let xf = c.inputs.map { $0.converted(to: Float.self) }
        let yf = evaluate(c.float, xf)
        let tol = floatTolerance(reductionLength: c.reductionLength)
        try compare(yf.converted(), yd, tol: tol, what: "\(c.label): Float vs Double output")
        let v: Tensor<Double> = rng.normal(yd.shape)
        let gd = gradient(c.double, c.inputs, seed: v)
        let gf = gradient(c.float, xf, seed: v.converted())
        for i in c.inputs.indices where c.differentiable[i] {
            try compare(gf[i].converted(), gd[i], tol: tol,
                        what: "\(c.label): Float vs Double gradient of input \(i)")
        }
    }

    /// |a − b| ≤ tol·max(max|b|, tiny) everywhere; otherwise names the worst index.
    public static func compare(_ a: Tensor<Double>, _ b: Tensor<Double>, tol: Double, what: String) throws {
        precondition(a.shape == b.shape, "\(what): shapes \(a.shape) and \(b.shape) differ")
        let scale = max(b.maxAbs(), 1e-30)
        var worst = 0, worstErr = -1.0
        for k in 0..<a.count {
            let e = abs(a.scalars[k] - b.scalars[k])
            if e.isNaN || e > worstErr { worst = k; worstErr = e.isNaN ? .infinity : e }
        }
        if a.count > 0 && !(worstErr <= tol * scale) {
            throw GradCheckFailure(description: """
                \(what): worst at index\(index(worst, a.shape)): \(a.scalars[worst]) vs \(b.scalars[worst]) \
                (error \(worstErr) > \(tol) × \(scale))
                """)
        }
    }

    // MARK: Helpers

    /// Forward only.
    public static func evaluate<T>(_ f: ([Variable<T>]) -> Variable<T>, _ xs: [Tensor<T>]) -> Tensor<T> {
        NoGrad.run { f(xs.map { Variable($0) }) }.value
    }

    /// Gradients of ⟨seed, f(x)⟩ with respect to every input.
    public static func gradient<T>(_ f: ([Variable<T>]) -> Variable<T>, _ xs: [Tensor<T>], seed: Tensor<T>) -> [Tensor<T>] {
        let vars = xs.map { Variable($0, requiresGrad: true) }
        let y = f(vars)
        return gradients(of: y, withRespectTo: vars, seed: seed)
    }

    static func index(_ flat: Int, _ shape: [Int]) -> String {
        var rem = flat
        var idx = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
            idx[d] = rem % shape[d]; rem /= shape[d]
        }
        return "[" + idx.map(String.init).joined(separator: ", ") + "]"
    }
}
