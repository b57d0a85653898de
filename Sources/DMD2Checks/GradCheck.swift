// Exact gradient checks for every differentiable op (the checking library, used by the tests and `dmd2 gradcheck`).
//
// Four independent checks, all in Double:
// 1. `jacobian`: the full Jacobian by finite differences against the one from backward passes
//    (one backward per output element), for tiny shapes.
// 2. `randomDirection`: vᵀJu — the derivative of φ(s) = ⟨v, f(x + s·u)⟩ at 0 by finite
//    differences, against ⟨∇ₓ⟨v, f⟩, u⟩ from one backward pass — for big blocks, u, v ~ N(0, I).
// 3. `adjoint`: for an op linear in an input, ⟨A u, v⟩ = ⟨u, Aᵀv⟩ where Aᵀv is the backward
//    pass, to relative 1e-10 of ‖Au‖·‖v‖ (the Cauchy–Schwarz bound, so a small inner product by
//    chance cannot inflate the error).
// 4. `floatVsDouble`: the same op's Float kernels against its Double kernels, outputs and
//    input gradients, with a tolerance that grows with the reduction length (`floatTolerance`).
// Every failure names the op, the case, the input, the worst index and both values.
//
// The finite-difference tolerance (checks 1 and 2) is not a fixed rtol: each difference
// carries its own error bound. For a scalar φ with one evaluation wrong by at most ε (rounding),
// the central difference D(h) = (φ(h) − φ(−h))/2h = φ'(0) + c·h² + O(h⁴) + r(h), |r(h)| ≤ ε/h.
// Richardson extrapolation over h and h/2 cancels the h² term:
//     R = (4·D(h/2) − D(h))/3 = φ'(0) + O(h⁴) + (4·r(h/2) − r(h))/3,   |rounding part| ≤ 3ε/h,
// and D(h) − D(h/2) = ¾·c·h² + O(h⁴) + r(h) − r(h/2) is three times the h² error of D(h/2),
// much more than R's own O(h⁴) truncation. So
//     B = |D(h) − D(h/2)| + 3ε/h   bounds |R − φ'(0)|,
// and a backward value A passes iff |A − R| ≤ B. ε is modelled as κ·u·S: u = 2⁻⁵³, S the
// magnitude the evaluation works at (max |f| for a Jacobian column, Σ|v·f| for vᵀJu, plus
// Σ|∇|·|x| for the rounding of x + s·u), κ = 16·√(reduction length) the growth of rounding
// errors through the forward pass (random rounding errors grow like √n, as in `floatTolerance`).
// h is swept over decades (`jacobianSteps`, `steps`) and the one with the smallest B is kept:
// large h has big truncation, small h big rounding.
// Sharpness: every check also requires its resolution — max B over the check divided by the
// scale of the derivative (max |∂f/∂x| of the Jacobian; ‖∇ₓ⟨v, f⟩‖ for vᵀJu, the standard
// deviation of ⟨δ, u⟩ for an error δ) — to be at most `requiredResolution` = 1e-5. A backward
// whose error is ≥ 1e-4 of that scale then fails: |A − R| ≥ 1e-4·scale − B > B. (For vᵀJu the
// error shows through ⟨δ, u⟩, which misses a 1e-4 error only when |N(0, 1)| < 0.1: 8 % per
// direction; callers run two.) A check that cannot reach that resolution — a kink straddled by
// the steps, a saturated function whose change Double cannot represent — fails, unless its
// case says why it is exempt (`OpCase.unresolvable`).
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
    /// Longest sum behind one output element (conv: C·k·k), for the Float tolerance and the
    /// rounding model of the finite differences.
    public var reductionLength: Int
    /// Why finite differences cannot resolve this case's derivatives to `requiredResolution`
    /// (nil: they must). The case is still checked within its bounds B.
    public var unresolvable: String?
    public var double: ([Variable<Double>]) -> Variable<Double>
    public var float: ([Variable<Float>]) -> Variable<Float>

    public init(
        _ op: String, _ label: String = "", inputs: [Tensor<Double>], differentiable: [Bool]? = nil,
        linearIn: [Int] = [], reductionLength: Int = 1, unresolvable: String? = nil,
        double: @escaping ([Variable<Double>]) -> Variable<Double>,
        float: @escaping ([Variable<Float>]) -> Variable<Float>
    ) {
        self.op = op
        self.label = label.isEmpty ? op : "\(op) [\(label)]"
        self.inputs = inputs
        self.differentiable = differentiable ?? inputs.map { _ in true }
        self.linearIn = linearIn
        self.reductionLength = reductionLength
        self.unresolvable = unresolvable
        self.double = double
        self.float = float
    }
}

public struct GradCheckFailure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// What a passing check measured: how close the backward came to its bound, and how finely the
/// finite differences resolved the derivative.
public struct CheckStats: Sendable, CustomStringConvertible {
    /// max |A − R| / B over the compared values (≤ 1 to pass).
    public var worstRatio: Double = 0
    /// max B / scale (≤ `requiredResolution` unless exempt).
    public var resolution: Double = 0
    /// Names of the checks that ran.
    public var checks: [String] = []

    public init() {}

    public mutating func merge(_ other: CheckStats) {
        worstRatio = max(worstRatio, other.worstRatio)
        resolution = max(resolution, other.resolution)
        checks += other.checks.filter { !checks.contains($0) }
    }

    public var description: String {
        let fd = resolution > 0 || worstRatio > 0
            ? String(format: "; |A−R|/B ≤ %.2g, resolution %.1e", worstRatio, resolution) : ""
        return checks.joined(separator: ", ") + fd
    }
}

/// A finite-difference derivative with its error bound (see the file header).
public struct FiniteDifference: Sendable {
    /// R = (4·D(h/2) − D(h))/3.
    public var estimate: Double
    /// B = |D(h) − D(h/2)| + 3ε/h.
    public var bound: Double
    /// The step h.
    public var step: Double
}

public enum GradCheck {
    /// Steps h swept by vᵀJu (along u ~ N(0, I)) and by the parameter-space checks, absolute:
    /// the inputs and parameters are O(1) or smaller, and inputs far from 0 (softmax of logits
    /// near 1000) vary at scale 1 all the same.
    public static let steps = [1e-3, 1e-4, 1e-5]
    /// Steps swept by a Jacobian column, absolute, one decade more (cheap for tiny ops). The
    /// step actually taken, (x + h) − (x − h), is used, so the rounding of x ± h does not enter.
    public static let jacobianSteps = [1e-3, 1e-4, 1e-5, 1e-6]
    /// The largest bound B allowed, relative to the derivative's scale (file header): 10× below
    /// the 1e-4 relative error every check must catch.
    public static let requiredResolution = 1e-5
    /// κ = 16·√n in the rounding model ε = κ·u·S, for a longest reduction of n terms.
    public static func roundingGrowth(reductionLength n: Int) -> Double { 16 * Double(max(1, n)).squareRoot() }
    public static let adjointTolerance = 1e-10

    /// Float-vs-Double tolerance, relative to the largest |value| of the Double result:
    /// 64·u_f·√(reduction length) with u_f = 2⁻²⁴ (random rounding errors grow like √n).
    public static func floatTolerance(reductionLength: Int) -> Double {
        64 * Float.unitRoundoff * Double(max(1, reductionLength)).squareRoot()
    }

    /// Run every applicable check on a case: the full Jacobian when it is small, a
    /// random-direction check (two directions); the adjoint test for each linear input; Float vs Double.
    @discardableResult
    public static func all(_ c: OpCase, seed: UInt64 = 1) throws -> CheckStats {
        var stats = CheckStats()
        let nIn = zip(c.inputs, c.differentiable).filter(\.1).map(\.0.count).reduce(0, +)
        let nOut = evaluate(c.double, c.inputs).count
        if nIn * nOut <= 40_000 { stats.merge(try jacobian(c)) }
        stats.merge(try randomDirection(c, seed: seed))
        stats.merge(try randomDirection(c, seed: seed &+ 1000))
        for i in c.linearIn { try adjoint(c, input: i, seed: seed &+ UInt64(i)); stats.checks.append("adjoint \(i)") }
        try floatVsDouble(c, seed: seed)
        stats.checks.append("float")
        return stats
    }

    // MARK: Finite differences with a bound

    /// The Richardson difference of a vector function along one parameter s at 0, swept over
    /// `steps`: for each output k the step with the smallest bound. `φ(s)` returns the outputs
    /// and the step actually taken (so the rounding of x ± h does not enter); `noise[k]` is ε_k.
    static func richardson(steps: [Double], noise: [Double], _ φ: (Double) -> (values: [Double], step: Double)) -> [FiniteDifference] {
        var best = [FiniteDifference](repeating: FiniteDifference(estimate: 0, bound: .infinity, step: 0), count: noise.count)
        for h in steps {
            func central(_ s: Double) -> [Double] {
                let (fp, hp) = φ(s), (fm, hm) = φ(-s)
                let width = hp - hm
                return zip(fp, fm).map { ($0 - $1) / width }
            }
            let coarse = central(h), fine = central(h / 2)
            for k in noise.indices {
                let r = (4 * fine[k] - coarse[k]) / 3
                let b = abs(coarse[k] - fine[k]) + 3 * noise[k] / h
                // NaN bounds (non-finite values) count as worst.
                if b < best[k].bound || (best[k].bound.isInfinite && !b.isNaN) {
                    best[k] = FiniteDifference(estimate: r, bound: b, step: h)
                }
            }
        }
        return best
    }

    /// The scalar version of `richardson` for φ(s) = a function of θ + s·d.
    public static func richardson(steps: [Double], noise: Double, _ φ: (Double) -> Double) -> FiniteDifference {
        richardson(steps: steps, noise: [noise]) { s in ([φ(s)], s) }[0]
    }

    /// Checks a directional derivative: `analytic` = ⟨∇, d⟩ from backward against the Richardson
    /// difference of φ along d. `scale` is the derivative's scale for the resolution (‖∇‖ for a
    /// standard-normal d); `noise` ε. Throws, naming `what`, when |A − R| > B or the resolution
    /// exceeds `requiredResolution` (unless `unresolvable` says why it may).
    @discardableResult
    public static func directional(_ what: String, analytic: Double, scale: Double, noise: Double, steps: [Double] = steps,
                                   unresolvable: String? = nil, _ φ: (Double) -> Double) throws -> CheckStats {
        let fd = richardson(steps: steps, noise: noise, φ)
        var stats = CheckStats()
        stats.worstRatio = abs(analytic - fd.estimate) / fd.bound
        stats.resolution = fd.bound / scale
        if !(abs(analytic - fd.estimate) <= fd.bound) {
            throw GradCheckFailure(description: String(
                format: "%@: backward %.15g, finite difference %.15g (Richardson at h = %.0e), error %.3g > bound %.3g (relative %.2e)",
                what, analytic, fd.estimate, fd.step, abs(analytic - fd.estimate), fd.bound, abs(analytic - fd.estimate) / max(abs(fd.estimate), 1e-300)))
        }
        if unresolvable == nil && !(stats.resolution <= requiredResolution) {
            throw GradCheckFailure(description: String(
                format: "%@: finite differences resolve the derivative only to %.2e of its scale %.3g (bound %.3g at h = %.0e), above the %.0e needed to catch a 1e-4 error: a kink or a saturated function at this point?",
                what, stats.resolution, scale, fd.bound, fd.step, requiredResolution))
        }
        return stats
    }

    // MARK: 1. Full Jacobian

    @discardableResult
    public static func jacobian(_ c: OpCase) throws -> CheckStats {
        var stats = CheckStats()
        stats.checks = ["jacobian"]
        let y0 = evaluate(c.double, c.inputs)
        let u = Double.unitRoundoff
        let κ = roundingGrowth(reductionLength: c.reductionLength)
        for (i, x) in c.inputs.enumerated() where c.differentiable[i] {
            // Numeric: column j, swept and extrapolated; ε_k = κ·u·max|f| over the column's evaluations.
            var numeric = [[FiniteDifference]](repeating: [], count: x.count)
            for j in 0..<x.count {
                let xj = x.scalars[j]
                var scaleF = y0.maxAbs()
                var evaluations: [Double: ([Double], Double)] = [:]
                func at(_ s: Double) -> ([Double], Double) {
                    if let hit = evaluations[s] { return hit }
                    var shifted = c.inputs
                    shifted[i].scalars[j] = xj + s
                    let f = evaluate(c.double, shifted)
                    let result = (f.scalars, shifted[i].scalars[j])
                    evaluations[s] = result
                    return result
                }
                // Evaluate first so the noise model sees every value used.
                for h in jacobianSteps { for s in [h, -h, h / 2, -h / 2] { scaleF = max(scaleF, at(s).0.map(abs).max() ?? 0) } }
                let noise = [Double](repeating: κ * u * scaleF, count: y0.count)
                numeric[j] = richardson(steps: jacobianSteps, noise: noise) { s in at(s) }
            }
            // Analytic: row k = backward with a one-hot seed at output k.
            var analytic = [[Double]](repeating: [], count: y0.count)
            for k in 0..<y0.count {
                var seed = Tensor<Double>.zeros(y0.shape)
                seed.scalars[k] = 1
                analytic[k] = gradient(c.double, c.inputs, seed: seed)[i].scalars
            }
            var scale = 0.0, maxBound = 0.0, worst = (ratio: -1.0, j: 0, k: 0)
            for j in 0..<x.count {
                for k in 0..<y0.count {
                    let a = analytic[k][j], n = numeric[j][k]
                    scale = max(scale, abs(a))
                    maxBound = max(maxBound, n.bound)
                    let ratio = abs(a - n.estimate) / n.bound
                    if ratio.isNaN || ratio > worst.ratio { worst = (ratio.isNaN ? .infinity : ratio, j, k) }
                }
            }
            let (j, k) = (worst.j, worst.k)
            if !(worst.ratio <= 1) {
                let a = analytic[k][j], n = numeric[j][k]
                throw GradCheckFailure(description: String(
                    format: "%@: Jacobian mismatch for input %d (shape %@) at d output%@ / d input%@: backward %.15g, finite difference %.15g (Richardson at h = %.0e), error %.3g > bound %.3g",
                    c.label, i, "\(x.shape)", index(k, y0.shape), index(j, x.shape), a, n.estimate, n.step, abs(a - n.estimate), n.bound))
            }
            stats.worstRatio = max(stats.worstRatio, worst.ratio)
            if scale == 0 {
                throw GradCheckFailure(description: "\(c.label): the Jacobian of input \(i) is zero, which checks nothing")
            }
            let resolution = maxBound / scale
            stats.resolution = max(stats.resolution, resolution)
            if c.unresolvable == nil && !(resolution <= requiredResolution) {
                throw GradCheckFailure(description: String(
                    format: "%@: Jacobian of input %d resolved only to %.2e of its largest entry %.3g (needed %.0e to catch a 1e-4 error): a kink or a saturated function at this point?",
                    c.label, i, resolution, scale, requiredResolution))
            }
        }
        return stats
    }

    // MARK: 2. Random direction vᵀJu

    @discardableResult
    public static func randomDirection(_ c: OpCase, seed: UInt64 = 1) throws -> CheckStats {
        var rng = RandomGenerator(seed: seed)
        let y0 = evaluate(c.double, c.inputs)
        let v: Tensor<Double> = rng.normal(y0.shape)
        let u: [Tensor<Double>] = c.inputs.enumerated().map { i, x in
            c.differentiable[i] ? rng.normal(x.shape) : .zeros(x.shape)
        }
        let grads = gradient(c.double, c.inputs, seed: v)
        var analytic = 0.0, gradNorm2 = 0.0, gx = 0.0
        for i in c.inputs.indices where c.differentiable[i] {
            for (g, (d, x)) in zip(grads[i].scalars, zip(u[i].scalars, c.inputs[i].scalars)) {
                analytic += g * d; gradNorm2 += g * g; gx += abs(g * x)
            }
        }
        let vf = zip(v.scalars, y0.scalars).map { abs($0 * $1) }.reduce(0, +)
        let κ = roundingGrowth(reductionLength: c.reductionLength)
        let noise = κ * Double.unitRoundoff * vf + Double.unitRoundoff * gx
        var stats = try directional("\(c.label): random-direction check vᵀJu (seed \(seed))", analytic: analytic,
                                    scale: gradNorm2.squareRoot(), noise: noise, steps: steps,
                                    unresolvable: c.unresolvable) { s in
            let shifted = c.inputs.enumerated().map { i, x in
                c.differentiable[i] ? Tensor(shape: x.shape, scalars: zip(x.scalars, u[i].scalars).map { $0 + s * $1 }) : x
            }
            return zip(evaluate(c.double, shifted).scalars, v.scalars).map { $0 * $1 }.reduce(0, +)
        }
        stats.checks = ["vᵀJu"]
        return stats
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

    // MARK: 4. Float vs Double

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
