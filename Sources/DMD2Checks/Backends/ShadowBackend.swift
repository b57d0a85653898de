// The shadow checker: a Backend that runs every primitive twice — on a candidate backend and on
// the reference backend — compares the results, and reports the first divergence by primitive,
// arguments, output, worst index, both values, and error against tolerance.
//
// Per call:
//   1. every input buffer is copied (a snapshot), and so is every output buffer's current
//      content (gemm's C when β ≠ 0, col2im's x and copyRows' y are read as well as written,
//      and strided outputs have gaps that must stay untouched);
//   2. the candidate runs on the caller's buffers, the reference on the copies;
//   3. each output is compared under the rule below, and each input the candidate was given is
//      checked bit for bit against its snapshot (a backend must not write into its inputs;
//      inputs that overlap an output — an in-place call — are exempt).
// The candidate's results are what the caller gets, so a run under the shadow computes what the
// candidate computes; each primitive is still judged on its own, on inputs both sides share.
//
// Tolerance rule, per output buffer (Tolerance.swift, the one table the conformance suite and
// the goldens use too): data movement — and the untouched gaps of strided outputs — bitwise
// equal; arithmetic |cand − ref| ≤ ρ·u·√K·S at every element, with ρ = 64, u the unit roundoff
// of T, K the primitive's reduction length from `Tolerance.table` and S = max|ref| over the
// buffer (for sum and dot, max(|ref|, Σ|terms|/√K)). NaN matches NaN, and ±∞ matches itself;
// anything else against a NaN or ∞ diverges.
//
// Policies: `.stop` records the first divergence and stops comparing (later calls run on the
// candidate alone — their inputs already carry the error); `.recordAndContinue` compares every
// call and records every divergence (the first `recordLimit` in full); `.trap` stops the process
// at the first divergence with the report (the protocol cannot throw, so this is how
// `DMD2_BACKEND=shadow` fails loudly). `check(_:)` runs a body under the shadow and throws the
// first divergence.
import DMD2Core
import Dispatch
import Foundation
import Synchronization

/// One disagreement between a candidate backend and the reference.
public struct ShadowDivergence: Error, CustomStringConvertible, Sendable, Equatable {
    /// The call's number among the primitives this shadow has run (1-based).
    public var call: Int
    /// The primitive ("gemm", "softmaxRows", …).
    public var primitive: String
    /// Its arguments: element type, shapes, strides, options.
    public var arguments: String
    /// Which buffer: an output ("C", "y", "mean", …), or "input x (written by the candidate)".
    public var buffer: String
    /// The buffer's logical shape and the worst index in it.
    public var shape: [Int]
    public var index: [Int]
    public var candidateValue: Double
    public var referenceValue: Double
    /// |candidate − reference| at that index, and the largest difference the rule allows there.
    public var error: Double
    public var tolerance: Double
    /// The rule that set the tolerance, in words.
    public var rule: String
    public var candidate: String
    public var reference: String

    public var description: String {
        """
        shadow: first divergence at call #\(call), \(primitive)(\(arguments)), buffer \(buffer) \(shape):
          worst index \(index): \(candidate) \(candidateValue) vs \(reference) \(referenceValue)
          error \(error) > tolerance \(tolerance) (\(rule))
        """
    }
}

/// How far one primitive's outputs came from their tolerance over the calls seen.
public struct ShadowStatistics: Sendable, Equatable {
    /// Calls compared.
    public var calls = 0
    /// The largest error/tolerance ratio over those calls' rounded outputs (< 1 passes), and
    /// the call's arguments.
    public var worstRatio = 0.0
    public var worstArguments = ""
    /// Divergent calls.
    public var divergences = 0
    /// Seconds spent in the candidate, in the reference, and copying and comparing.
    public var candidateSeconds = 0.0
    public var referenceSeconds = 0.0
    public var checkSeconds = 0.0
}

public final class ShadowBackend: Backend {
    public enum Policy: Sendable, Equatable {
        /// Record the first divergence, then stop comparing (the candidate runs on alone).
        case stop
        /// Compare every call and record every divergence.
        case recordAndContinue
        /// Stop the process at the first divergence, printing the report.
        case trap
    }

    public let name: String
    public let candidate: any Backend
    public let reference: any Backend
    public let policy: Policy
    /// ρ in the tolerance rule.
    public let factor: Double
    /// Divergences kept in full under `.recordAndContinue` (all are counted).
    public let recordLimit: Int

    private struct State {
        var calls = 0
        var divergences: [ShadowDivergence] = []
        var divergenceCount = 0
        var stopped = false
        var statistics: [String: ShadowStatistics] = [:]
    }
    private let state = Mutex(State())

    public init(candidate: any Backend, reference: any Backend = ReferenceBackend(),
                policy: Policy = .stop, factor: Double = Tolerance.rho, recordLimit: Int = 100) {
        precondition(factor > 0, "ShadowBackend: tolerance factor must be positive, got \(factor)")
        self.candidate = candidate
        self.reference = reference
        self.policy = policy
        self.factor = factor
        self.recordLimit = recordLimit
        self.name = "shadow(\(candidate.name) vs \(reference.name))"
    }

    // MARK: Results

    /// The first divergence seen (nil while candidate and reference agree).
    public var firstDivergence: ShadowDivergence? { state.withLock { $0.divergences.first } }
    /// Every recorded divergence, in call order.
    public var divergences: [ShadowDivergence] { state.withLock { $0.divergences } }
    /// Divergent calls, recorded or not.
    public var divergenceCount: Int { state.withLock { $0.divergenceCount } }
    /// Primitive calls run so far.
    public var callCount: Int { state.withLock { $0.calls } }
    /// Per primitive: calls compared and the worst error/tolerance ratio.
    public var statistics: [String: ShadowStatistics] { state.withLock { $0.statistics } }

    /// Forget every call and divergence (and resume comparing after a `.stop`).
    public func reset() { state.withLock { $0 = State() } }

    /// Run `body` with this shadow as `Compute.backend` (restoring the previous backend), then
    /// throw the first divergence if there was one. Starts from a `reset()`.
    public func check<R>(_ body: () throws -> R) throws -> R {
        reset()
        let result = try Compute.with(self, body)
        if let first = firstDivergence { throw first }
        return result
    }

    /// A table of the statistics: primitive, calls, worst error/tolerance, divergences, and the
    /// seconds spent in the candidate, the reference and the checking.
    public func report() -> String {
        let stats = statistics
        var lines = ["primitive                   calls   worst err/tol   divergences   candidate s   reference s   check s"]
        for (name, s) in stats.sorted(by: { $0.key < $1.key }) {
            lines.append(name.padding(toLength: 26, withPad: " ", startingAt: 0)
                         + String(format: " %6d   %13.3g   %11d   %11.3f   %11.3f   %7.3f", s.calls, s.worstRatio, s.divergences,
                                  s.candidateSeconds, s.referenceSeconds, s.checkSeconds))
        }
        return lines.joined(separator: "\n")
    }

    // MARK: The comparison machinery

    /// How an output buffer is compared.
    enum Rule {
        case exact
        /// ρ·u·√K·max|ref|.
        case rounded(K: Int)
        /// ρ·u·√K·max(|ref|, termScale/√K), for a scalar sum of K terms whose |terms| sum to termScale.
        case sum(K: Int, termScale: Double)
    }

    /// The rule for `primitive`'s `output` from `Tolerance.table` (termScale: Σ|terms| of a sum).
    static func rule(_ primitive: String, _ output: String? = nil, _ sizes: Tolerance.Sizes = Tolerance.Sizes(),
                     termScale: Double = 0) -> Rule {
        let entries = Tolerance.entries(primitive, output: output)
        let K = entries.map { $0.reductionLength(sizes) }.max() ?? 0
        switch entries[0].scale {
        case .exact: return .exact
        case .maxReference: return .rounded(K: K)
        case .sumOfTerms: return .sum(K: K, termScale: termScale)
        }
    }

    /// One primitive call being shadowed: the copies it made, and what to compare afterwards.
    final class Call<T: TensorScalar> {
        struct Input { var name: String; var original: UnsafeBufferPointer<T>; var snapshot: UnsafeMutableBufferPointer<T> }
        struct Output {
            var name: String
            var candidate: UnsafeMutableBufferPointer<T>
            var reference: UnsafeMutableBufferPointer<T>
            /// Logical [rows, cols] laid out `ld` apart (contiguous: ld = cols); elements
            /// between rows are gaps that must stay untouched.
            var rows: Int, cols: Int, ld: Int
            var shape: [Int]
            var rule: Rule
        }
        var inputs: [Input] = []
        var outputs: [Output] = []
        var allocations: [UnsafeMutableBufferPointer<T>] = []

        func copy(_ x: UnsafeBufferPointer<T>) -> UnsafeMutableBufferPointer<T> {
            let c = UnsafeMutableBufferPointer<T>.allocate(capacity: Swift.max(1, x.count))
            if x.count > 0, let base = x.baseAddress { c.baseAddress!.initialize(from: base, count: x.count) }
            allocations.append(c)
            return UnsafeMutableBufferPointer(rebasing: c[0..<x.count])
        }

        /// A read-only input: the reference reads the returned copy.
        func input(_ name: String, _ x: UnsafeBufferPointer<T>) -> UnsafeBufferPointer<T> {
            let s = copy(x)
            inputs.append(Input(name: name, original: x, snapshot: s))
            return UnsafeBufferPointer(s)
        }

        func input(_ name: String, _ x: UnsafePointer<T>, count: Int) -> UnsafePointer<T> {
            input(name, UnsafeBufferPointer(start: x, count: count)).baseAddress ?? x
        }

        /// A contiguous output (or in/out buffer): the reference writes the returned copy.
        func output(_ name: String, _ y: UnsafeMutableBufferPointer<T>, shape: [Int], _ rule: Rule) -> UnsafeMutableBufferPointer<T> {
            let r = copy(UnsafeBufferPointer(y))
            let cols = shape.last ?? 1
            outputs.append(Output(name: name, candidate: y, reference: r, rows: cols == 0 ? 0 : y.count / Swift.max(1, cols),
                                  cols: cols, ld: cols, shape: shape, rule: rule))
            return r
        }

        /// A [rows, cols] output whose rows are `ld` apart (extent (rows − 1)·ld + cols).
        func stridedOutput(_ name: String, _ y: UnsafeMutablePointer<T>, rows: Int, cols: Int, ld: Int, _ rule: Rule) -> UnsafeMutablePointer<T> {
            let extent = rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols
            let buffer = UnsafeMutableBufferPointer(start: y, count: extent)
            let r = copy(UnsafeBufferPointer(buffer))
            outputs.append(Output(name: name, candidate: buffer, reference: r, rows: rows, cols: cols, ld: ld,
                                  shape: [rows, cols], rule: rule))
            return r.baseAddress ?? y
        }

        deinit { for a in allocations { a.deallocate() } }
    }

    /// Run one primitive under the shadow. `body` registers inputs and outputs with the call and
    /// returns the two closures that run it: on the candidate (caller's buffers) and on the
    /// reference (the copies).
    func shadow<T: TensorScalar>(
        _ primitive: String, _ arguments: @autoclosure () -> String, _: T.Type,
        _ body: (Call<T>) -> (candidate: () -> Void, reference: () -> Void)
    ) {
        let (number, active) = state.withLock { s -> (Int, Bool) in
            s.calls += 1
            return (s.calls, !s.stopped)
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let call = Call<T>()
        let run = body(call)
        let t1 = DispatchTime.now().uptimeNanoseconds
        run.candidate()
        let t2 = DispatchTime.now().uptimeNanoseconds
        guard active else { return }
        run.reference()
        let t3 = DispatchTime.now().uptimeNanoseconds
        var worst = 0.0
        var divergence: ShadowDivergence?
        let args = "\(T.self), " + arguments()
        for out in call.outputs {
            let (ratio, d) = compare(out, primitive: primitive, arguments: args, call: number)
            worst = Swift.max(worst, ratio)
            if divergence == nil { divergence = d }
        }
        if divergence == nil { divergence = checkInputs(call, primitive: primitive, arguments: args, call: number) }
        let t4 = DispatchTime.now().uptimeNanoseconds
        record(primitive, arguments: args, worstRatio: worst, divergence: divergence,
               seconds: (Double(t2 - t1) * 1e-9, Double(t3 - t2) * 1e-9, Double(t1 - t0 + t4 - t3) * 1e-9))
    }

    /// Worst error/tolerance ratio over one output, and the divergence if the rule fails.
    func compare<T: TensorScalar>(_ out: Call<T>.Output, primitive: String, arguments: String, call: Int)
        -> (Double, ShadowDivergence?)
    {
        let u = T.unitRoundoff
        var maxRef = 0.0
        for r in 0..<out.rows {
            for j in 0..<out.cols {
                let v = Double(out.reference[r * out.ld + j])
                if v.isFinite { maxRef = Swift.max(maxRef, Swift.abs(v)) }
            }
        }
        let tolerance: Double, rule: String
        switch out.rule {
        case .exact:
            tolerance = 0
            rule = "data movement: bitwise equal"
        case .rounded(let K):
            let S = Swift.max(maxRef, 1e-30)
            tolerance = factor * u * Double(Swift.max(1, K)).squareRoot() * S
            rule = "ρ·u·√K·S with ρ = \(factor), u = \(u), K = \(K), S = max|ref| = \(S)"
        case .sum(let K, let termScale):
            let S = Swift.max(maxRef, termScale / Double(Swift.max(1, K)).squareRoot(), 1e-30)
            tolerance = factor * u * Double(Swift.max(1, K)).squareRoot() * S
            rule = "ρ·u·√K·S with ρ = \(factor), u = \(u), K = \(K), S = max(|ref|, Σ|terms|/√K) = \(S)"
        }
        // Logical elements under the rule; gaps between strided rows bitwise.
        var worstRatio = 0.0, worstFlat = -1, worstError = 0.0, worstIsGap = false
        func judge(_ flat: Int, gap: Bool) {
            let c = out.candidate[flat], r = out.reference[flat]
            let error: Double
            if gap || tolerance == 0 {
                error = c == r || (c.isNaN && r.isNaN) ? 0 : (c.isFinite && r.isFinite ? Swift.abs(Double(c) - Double(r)) : .infinity)
            } else if c.isNaN || r.isNaN || c.isInfinite || r.isInfinite {
                error = (c.isNaN && r.isNaN) || c == r ? 0 : .infinity
            } else {
                error = Swift.abs(Double(c) - Double(r))
            }
            let allowed = gap ? 0 : tolerance
            let ratio = error == 0 ? 0 : (allowed == 0 ? .infinity : error / allowed)
            if ratio > worstRatio {
                worstRatio = ratio; worstFlat = flat; worstError = error; worstIsGap = gap
            }
        }
        for r in 0..<out.rows {
            for j in 0..<out.cols { judge(r * out.ld + j, gap: false) }
            if r + 1 < out.rows { for j in out.cols..<out.ld { judge(r * out.ld + j, gap: true) } }
        }
        guard worstRatio > 1, worstFlat >= 0 else { return (worstRatio, nil) }
        let row = worstFlat / Swift.max(1, out.ld), col = worstFlat % Swift.max(1, out.ld)
        let index: [Int]
        if worstIsGap {
            index = [row, col]
        } else {
            index = ShadowBackend.multiIndex(row * out.cols + col, out.shape)
        }
        return (worstRatio, ShadowDivergence(
            call: call, primitive: primitive, arguments: arguments,
            buffer: worstIsGap ? "\(out.name) (gap between rows \(row) and \(row + 1), ld \(out.ld): must stay untouched)" : out.name,
            shape: worstIsGap ? [out.rows, out.ld] : out.shape, index: index,
            candidateValue: Double(out.candidate[worstFlat]), referenceValue: Double(out.reference[worstFlat]),
            error: worstError, tolerance: worstIsGap ? 0 : tolerance, rule: worstIsGap ? "untouched: bitwise equal" : rule,
            candidate: candidate.name, reference: reference.name))
    }

    /// The first input the candidate wrote into (inputs overlapping an output are exempt).
    func checkInputs<T: TensorScalar>(_ call: Call<T>, primitive: String, arguments: String, call number: Int) -> ShadowDivergence? {
        for input in call.inputs {
            guard let base = input.original.baseAddress, input.original.count > 0 else { continue }
            let lo = UnsafeRawPointer(base), hi = UnsafeRawPointer(base + input.original.count)
            let overlaps = call.outputs.contains { out in
                guard let ob = out.candidate.baseAddress, out.candidate.count > 0 else { return false }
                let olo = UnsafeRawPointer(ob), ohi = UnsafeRawPointer(ob + out.candidate.count)
                return olo < hi && lo < ohi
            }
            if overlaps { continue }
            for k in 0..<input.original.count {
                let now = input.original[k], before = input.snapshot[k]
                if now != before && !(now.isNaN && before.isNaN) {
                    return ShadowDivergence(
                        call: number, primitive: primitive, arguments: arguments,
                        buffer: "input \(input.name) (written by the candidate; inputs are read-only)",
                        shape: [input.original.count], index: [k],
                        candidateValue: Double(now), referenceValue: Double(before),
                        error: now.isFinite && before.isFinite ? Swift.abs(Double(now) - Double(before)) : .infinity,
                        tolerance: 0, rule: "inputs must stay bitwise unchanged",
                        candidate: candidate.name + " (after)", reference: "snapshot (before)")
                }
            }
        }
        return nil
    }

    func record(_ primitive: String, arguments: String, worstRatio: Double, divergence: ShadowDivergence?,
                seconds: (candidate: Double, reference: Double, check: Double)) {
        let trapReport: String? = state.withLock { s in
            var stats = s.statistics[primitive, default: ShadowStatistics()]
            stats.calls += 1
            stats.candidateSeconds += seconds.candidate
            stats.referenceSeconds += seconds.reference
            stats.checkSeconds += seconds.check
            if worstRatio > stats.worstRatio || stats.calls == 1 {
                stats.worstRatio = worstRatio
                stats.worstArguments = arguments
            }
            guard let divergence else { s.statistics[primitive] = stats; return nil }
            stats.divergences += 1
            s.statistics[primitive] = stats
            s.divergenceCount += 1
            switch policy {
            case .stop:
                s.divergences.append(divergence)
                s.stopped = true
            case .recordAndContinue:
                if s.divergences.count < recordLimit { s.divergences.append(divergence) }
            case .trap:
                s.divergences.append(divergence)
                return divergence.description
            }
            return nil
        }
        if let trapReport { preconditionFailure(trapReport) }
    }

    static func multiIndex(_ flat: Int, _ shape: [Int]) -> [Int] {
        var rem = flat
        var index = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
            index[d] = rem % shape[d]
            rem /= shape[d]
        }
        return index
    }

    /// Σ|x|, for the scale of a sum.
    static func absSum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>) -> Double {
        var s = 0.0
        for v in x { s += Swift.abs(Double(v)) }
        return s
    }

    /// Elements spanned by a [rows, cols] matrix whose rows are `ld` apart.
    static func extent(rows: Int, cols: Int, ld: Int) -> Int {
        rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols
    }
}

// MARK: - The primitives

extension ShadowBackend {
    public func gemm<T: TensorScalar>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: T, a: UnsafePointer<T>, lda: Int,
        b: UnsafePointer<T>, ldb: Int,
        beta: T, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        // A is stored [m, k] (or [k, m] transposed), B [k, n] (or [n, k]).
        let aCount = transA ? Self.extent(rows: k, cols: m, ld: lda) : Self.extent(rows: m, cols: k, ld: lda)
        let bCount = transB ? Self.extent(rows: n, cols: k, ld: ldb) : Self.extent(rows: k, cols: n, ld: ldb)
        shadow("gemm", "transA \(transA), transB \(transB), m \(m), n \(n), k \(k), α \(alpha), β \(beta), lda \(lda), ldb \(ldb), ldc \(ldc)", T.self) { call in
            let ar = call.input("A", a, count: aCount), br = call.input("B", b, count: bCount)
            let cr = call.stridedOutput("C", c, rows: m, cols: n, ld: ldc, Self.rule("gemm", "C", .init(k: k)))
            return ({ self.candidate.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                          b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) },
                    { self.referenceGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ar, lda: lda,
                                         b: br, ldb: ldb, beta: beta, c: cr, ldc: ldc) })
        }
    }

    /// The reference's GEMM. When the reference is the ReferenceBackend, called with the concrete
    /// element type: through `any Backend` its generic loop would dispatch every multiply-add
    /// through T's witness table, and the reference GEMM is most of a shadowed network's time.
    func referenceGemm<T: TensorScalar>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T, a: UnsafePointer<T>, lda: Int,
        b: UnsafePointer<T>, ldb: Int, beta: T, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        if let plain = reference as? ReferenceBackend {
            let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), rc = UnsafeMutableRawPointer(c)
            if T.self == Float.self {
                return plain.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: Float(Double(alpha)),
                                  a: ra.assumingMemoryBound(to: Float.self), lda: lda, b: rb.assumingMemoryBound(to: Float.self),
                                  ldb: ldb, beta: Float(Double(beta)), c: rc.assumingMemoryBound(to: Float.self), ldc: ldc)
            }
            if T.self == Double.self {
                return plain.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: Double(alpha),
                                  a: ra.assumingMemoryBound(to: Double.self), lda: lda, b: rb.assumingMemoryBound(to: Double.self),
                                  ldb: ldb, beta: Double(beta), c: rc.assumingMemoryBound(to: Double.self), ldc: ldc)
            }
        }
        reference.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    public func unary<T: TensorScalar>(_ op: UnaryOp, _ x: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>) {
        shadow("unary", "\(op), n \(x.count)", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: [y.count], Self.rule("unary"))
            return ({ self.candidate.unary(op, x, y) }, { self.reference.unary(op, xr, yr) })
        }
    }

    public func binary<T: TensorScalar>(
        _ op: BinaryOp, _ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>
    ) {
        shadow("binary", "\(op), n \(a.count)", T.self) { call in
            let ar = call.input("a", a), br = call.input("b", b)
            let yr = call.output("y", y, shape: [y.count], Self.rule("binary"))
            return ({ self.candidate.binary(op, a, b, y) }, { self.reference.binary(op, ar, br, yr) })
        }
    }

    public func affine<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, scale: T, shift: T, _ y: UnsafeMutableBufferPointer<T>) {
        shadow("affine", "scale \(scale), shift \(shift), n \(x.count)", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: [y.count], Self.rule("affine"))
            return ({ self.candidate.affine(x, scale: scale, shift: shift, y) },
                    { self.reference.affine(xr, scale: scale, shift: shift, yr) })
        }
    }

    public func nanToNum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, nan: T, posInf: T, negInf: T, _ y: UnsafeMutableBufferPointer<T>) {
        shadow("nanToNum", "nan \(nan), posInf \(posInf), negInf \(negInf), n \(x.count)", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: [y.count], Self.rule("nanToNum"))
            return ({ self.candidate.nanToNum(x, nan: nan, posInf: posInf, negInf: negInf, y) },
                    { self.reference.nanToNum(xr, nan: nan, posInf: posInf, negInf: negInf, yr) })
        }
    }

    public func sumAxis<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, outer: Int, reduced: Int, inner: Int, _ y: UnsafeMutableBufferPointer<T>) {
        shadow("sumAxis", "[outer \(outer), reduced \(reduced), inner \(inner)]", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: [outer, inner], Self.rule("sumAxis", "y", .init(reduced: reduced)))
            return ({ self.candidate.sumAxis(x, outer: outer, reduced: reduced, inner: inner, y) },
                    { self.reference.sumAxis(xr, outer: outer, reduced: reduced, inner: inner, yr) })
        }
    }

    public func sum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>) -> T {
        let result = UnsafeMutableBufferPointer<T>.allocate(capacity: 1)
        result.initialize(repeating: 0)
        defer { result.deallocate() }
        shadow("sum", "n \(x.count)", T.self) { call in
            let xr = call.input("x", x)
            let rr = call.output("Σx", result, shape: [1], Self.rule("sum", "Σx", .init(count: x.count), termScale: Self.absSum(x)))
            return ({ result[0] = self.candidate.sum(x) }, { rr[0] = self.reference.sum(xr) })
        }
        return result[0]
    }

    public func dot<T: TensorScalar>(_ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>) -> T {
        let result = UnsafeMutableBufferPointer<T>.allocate(capacity: 1)
        result.initialize(repeating: 0)
        defer { result.deallocate() }
        shadow("dot", "n \(a.count)", T.self) { call in
            let ar = call.input("a", a), br = call.input("b", b)
            var terms = 0.0
            for i in 0..<Swift.min(a.count, b.count) { terms += Swift.abs(Double(a[i]) * Double(b[i])) }
            let rr = call.output("Σab", result, shape: [1], Self.rule("dot", "Σab", .init(count: a.count), termScale: terms))
            return ({ result[0] = self.candidate.dot(a, b) }, { rr[0] = self.reference.dot(ar, br) })
        }
        return result[0]
    }

    public func permute<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], permutation: [Int], _ y: UnsafeMutableBufferPointer<T>) {
        shadow("permute", "shape \(shape), permutation \(permutation)", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: permutation.map { shape[$0] }, Self.rule("permute"))
            return ({ self.candidate.permute(x, shape: shape, permutation: permutation, y) },
                    { self.reference.permute(xr, shape: shape, permutation: permutation, yr) })
        }
    }

    public func broadcast<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], to outShape: [Int], _ y: UnsafeMutableBufferPointer<T>) {
        shadow("broadcast", "shape \(shape) → \(outShape)", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: outShape, Self.rule("broadcast"))
            return ({ self.candidate.broadcast(x, shape: shape, to: outShape, y) },
                    { self.reference.broadcast(xr, shape: shape, to: outShape, yr) })
        }
    }

    public func copyRows<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, xStride: Int, xOffset: Int,
        _ y: UnsafeMutableBufferPointer<T>, yStride: Int, yOffset: Int, rows: Int, count: Int
    ) {
        shadow("copyRows", "rows \(rows), count \(count), x stride \(xStride) offset \(xOffset) of \(x.count), y stride \(yStride) offset \(yOffset) of \(y.count)", T.self) { call in
            let xr = call.input("x", x)
            // The whole of y is compared: rows outside the copy must stay as they were.
            let yr = call.output("y", y, shape: [y.count], Self.rule("copyRows"))
            return ({ self.candidate.copyRows(x, xStride: xStride, xOffset: xOffset, y, yStride: yStride, yOffset: yOffset, rows: rows, count: count) },
                    { self.reference.copyRows(xr, xStride: xStride, xOffset: xOffset, yr, yStride: yStride, yOffset: yOffset, rows: rows, count: count) })
        }
    }

    public func im2col<T: TensorScalar>(
        _ x: UnsafePointer<T>, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ col: UnsafeMutablePointer<T>, ldcol: Int
    ) {
        let L = ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1)
        shadow("im2col", "C \(C), H \(H), W \(W), kernel \(k), stride \(s), padding \(p), ldcol \(ldcol)", T.self) { call in
            let xr = call.input("x", x, count: C * H * W)
            let cr = call.stridedOutput("col", col, rows: C * k * k, cols: L, ld: ldcol, Self.rule("im2col"))
            return ({ self.candidate.im2col(x, C: C, H: H, W: W, kernel: k, stride: s, padding: p, col, ldcol: ldcol) },
                    { self.reference.im2col(xr, C: C, H: H, W: W, kernel: k, stride: s, padding: p, cr, ldcol: ldcol) })
        }
    }

    public func col2im<T: TensorScalar>(
        _ col: UnsafePointer<T>, ldcol: Int, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ x: UnsafeMutablePointer<T>
    ) {
        let L = ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1)
        shadow("col2im", "C \(C), H \(H), W \(W), kernel \(k), stride \(s), padding \(p), ldcol \(ldcol)", T.self) { call in
            let cr = call.input("col", col, count: Self.extent(rows: C * k * k, cols: L, ld: ldcol))
            // x is added into: the reference starts from a copy of its content.
            let xr = call.output("x", UnsafeMutableBufferPointer(start: x, count: C * H * W), shape: [C, H, W], Self.rule("col2im", "x", .init(kernel: k, stride: s)))
            return ({ self.candidate.col2im(col, ldcol: ldcol, C: C, H: H, W: W, kernel: k, stride: s, padding: p, x) },
                    { self.reference.col2im(cr, ldcol: ldcol, C: C, H: H, W: W, kernel: k, stride: s, padding: p, xr.baseAddress ?? x) })
        }
    }

    /// Always true: a candidate without a direct kernel is judged by the composition the op
    /// would run on it instead (ConvComposition), so the caller gets what the candidate computes.
    public func conv2dDirect<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel k: Int, stride s: Int, padding p: Int,
        bias: UnsafeBufferPointer<T>?, _ y: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        shadow("conv2dDirect", "N \(N), C \(C), H \(H), W \(W), O \(O), kernel \(k), stride \(s), padding \(p), bias \(bias != nil)", T.self) { call in
            let xr = call.input("x", x), wr = call.input("weight", weight)
            let br = bias.map { call.input("bias", $0) }
            let yr = call.output("y", y, shape: [N, O, Ho, Wo], Self.rule("conv2dDirect", "y", .init(k: C * k * k)))
            return ({
                if !self.candidate.conv2dDirect(x, N: N, C: C, H: H, W: W, weight: weight, O: O, kernel: k, stride: s, padding: p, bias: bias, y) {
                    ConvComposition.forward(on: self.candidate, x, N: N, C: C, H: H, W: W, weight: weight, O: O, kernel: k,
                                            stride: s, padding: p, bias: bias, y)
                }
            }, {
                _ = self.reference.conv2dDirect(xr, N: N, C: C, H: H, W: W, weight: wr, O: O, kernel: k, stride: s, padding: p, bias: br, yr)
            })
        }
        return true
    }

    /// Always true, as `conv2dDirect`.
    public func conv2dDirectBackwardData<T: TensorScalar>(
        _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ dX: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        shadow("conv2dDirectBackwardData", "N \(N), C \(C), H \(H), W \(W), O \(O), kernel \(k), stride \(s), padding \(p)", T.self) { call in
            let dyr = call.input("dy", dY), wr = call.input("weight", weight)
            let dxr = call.output("dx", dX, shape: [N, C, H, W], Self.rule("conv2dDirectBackwardData", "dx", .init(k: O * k * k)))
            return ({
                if !self.candidate.conv2dDirectBackwardData(dY, N: N, C: C, H: H, W: W, weight: weight, O: O, kernel: k, stride: s, padding: p, dX) {
                    ConvComposition.backwardData(on: self.candidate, dY, N: N, C: C, H: H, W: W, weight: weight, O: O, kernel: k,
                                                 stride: s, padding: p, dX)
                }
            }, {
                _ = self.reference.conv2dDirectBackwardData(dyr, N: N, C: C, H: H, W: W, weight: wr, O: O, kernel: k, stride: s, padding: p, dxr)
            })
        }
        return true
    }

    /// Always true, as `conv2dDirect`.
    public func conv2dDirectBackwardWeight<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        O: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ dWeight: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
        shadow("conv2dDirectBackwardWeight", "N \(N), C \(C), H \(H), W \(W), O \(O), kernel \(k), stride \(s), padding \(p)", T.self) { call in
            let xr = call.input("x", x), dyr = call.input("dy", dY)
            let dwr = call.output("dweight", dWeight, shape: [O, C, k, k], Self.rule("conv2dDirectBackwardWeight", "dweight", .init(k: N * Ho * Wo)))
            return ({
                if !self.candidate.conv2dDirectBackwardWeight(x, dY, N: N, C: C, H: H, W: W, O: O, kernel: k, stride: s, padding: p, dWeight) {
                    ConvComposition.backwardWeight(on: self.candidate, x, dY, N: N, C: C, H: H, W: W, O: O, kernel: k,
                                                   stride: s, padding: p, dWeight)
                }
            }, {
                _ = self.reference.conv2dDirectBackwardWeight(xr, dyr, N: N, C: C, H: H, W: W, O: O, kernel: k, stride: s, padding: p, dwr)
            })
        }
        return true
    }

    public func avgPool2x2<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        shadow("avgPool2x2", "planes \(P), H \(H), W \(W)", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: [P, H / 2, W / 2], Self.rule("avgPool2x2"))
            return ({ self.candidate.avgPool2x2(x, planes: P, H: H, W: W, y) }, { self.reference.avgPool2x2(xr, planes: P, H: H, W: W, yr) })
        }
    }

    public func avgPool2x2Backward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        shadow("avgPool2x2Backward", "planes \(P), H \(H), W \(W)", T.self) { call in
            let dyr = call.input("dy", dy)
            let dxr = call.output("dx", dx, shape: [P, H, W], Self.rule("avgPool2x2Backward"))
            return ({ self.candidate.avgPool2x2Backward(dy, planes: P, H: H, W: W, dx) },
                    { self.reference.avgPool2x2Backward(dyr, planes: P, H: H, W: W, dxr) })
        }
    }

    public func upsampleNearest2x<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        shadow("upsampleNearest2x", "planes \(P), H \(H), W \(W)", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: [P, 2 * H, 2 * W], Self.rule("upsampleNearest2x"))
            return ({ self.candidate.upsampleNearest2x(x, planes: P, H: H, W: W, y) },
                    { self.reference.upsampleNearest2x(xr, planes: P, H: H, W: W, yr) })
        }
    }

    public func upsampleNearest2xBackward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        shadow("upsampleNearest2xBackward", "planes \(P), H \(H), W \(W)", T.self) { call in
            let dyr = call.input("dy", dy)
            let dxr = call.output("dx", dx, shape: [P, H, W], Self.rule("upsampleNearest2xBackward"))
            return ({ self.candidate.upsampleNearest2xBackward(dy, planes: P, H: H, W: W, dx) },
                    { self.reference.upsampleNearest2xBackward(dyr, planes: P, H: H, W: W, dxr) })
        }
    }

    public func groupNorm<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        gamma: UnsafeBufferPointer<T>?, beta: UnsafeBufferPointer<T>?,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        let sizes = Tolerance.Sizes(N: N, C: C, L: L, groups: G)
        shadow("groupNorm", "N \(N), C \(C), L \(L), groups \(G), eps \(eps), γ \(gamma != nil), β \(beta != nil)", T.self) { call in
            let xr = call.input("x", x)
            let gr = gamma.map { call.input("gamma", $0) }, br = beta.map { call.input("beta", $0) }
            let yr = call.output("y", y, shape: [N, C, L], Self.rule("groupNorm", "y", sizes))
            let mr = call.output("mean", mean, shape: [N, G], Self.rule("groupNorm", "mean", sizes))
            let rr = call.output("rstd", rstd, shape: [N, G], Self.rule("groupNorm", "rstd", sizes))
            return ({ self.candidate.groupNorm(x, N: N, C: C, L: L, groups: G, eps: eps, gamma: gamma, beta: beta, y, mean: mean, rstd: rstd) },
                    { self.reference.groupNorm(xr, N: N, C: C, L: L, groups: G, eps: eps, gamma: gr, beta: br, yr, mean: mr, rstd: rr) })
        }
    }

    public func groupNormBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        gamma: UnsafeBufferPointer<T>?, mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>,
        dGamma: UnsafeMutableBufferPointer<T>?, dBeta: UnsafeMutableBufferPointer<T>?
    ) {
        let sizes = Tolerance.Sizes(N: N, C: C, L: L, groups: G)
        shadow("groupNormBackward", "N \(N), C \(C), L \(L), groups \(G), γ \(gamma != nil), dγ \(dGamma != nil), dβ \(dBeta != nil)", T.self) { call in
            let xr = call.input("x", x), dyr = call.input("dy", dy)
            let gr = gamma.map { call.input("gamma", $0) }
            let mr = call.input("mean", mean), rr = call.input("rstd", rstd)
            let dxr = call.output("dx", dx, shape: [N, C, L], Self.rule("groupNormBackward", "dx", sizes))
            let dgr = dGamma.map { call.output("dGamma", $0, shape: [C], Self.rule("groupNormBackward", "dGamma", sizes)) }
            let dbr = dBeta.map { call.output("dBeta", $0, shape: [C], Self.rule("groupNormBackward", "dBeta", sizes)) }
            return ({ self.candidate.groupNormBackward(x, dy, N: N, C: C, L: L, groups: G, gamma: gamma, mean: mean, rstd: rstd,
                                                       dx, dGamma: dGamma, dBeta: dBeta) },
                    { self.reference.groupNormBackward(xr, dyr, N: N, C: C, L: L, groups: G, gamma: gr, mean: mr, rstd: rr,
                                                       dxr, dGamma: dgr, dBeta: dbr) })
        }
    }

    public func groupNormSiLU<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        let sizes = Tolerance.Sizes(N: N, C: C, L: L, groups: G)
        shadow("groupNormSiLU", "N \(N), C \(C), L \(L), groups \(G), eps \(eps)", T.self) { call in
            let xr = call.input("x", x), sr = call.input("scale", scale), hr = call.input("shift", shift)
            let yr = call.output("y", y, shape: [N, C, L], Self.rule("groupNormSiLU", "y", sizes))
            let mr = call.output("mean", mean, shape: [N, G], Self.rule("groupNormSiLU", "mean", sizes))
            let rr = call.output("rstd", rstd, shape: [N, G], Self.rule("groupNormSiLU", "rstd", sizes))
            return ({ self.candidate.groupNormSiLU(x, N: N, C: C, L: L, groups: G, eps: eps, scale: scale, shift: shift, y, mean: mean, rstd: rstd) },
                    { self.reference.groupNormSiLU(xr, N: N, C: C, L: L, groups: G, eps: eps, scale: sr, shift: hr, yr, mean: mr, rstd: rr) })
        }
    }

    public func groupNormSiLUBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>, dScale: UnsafeMutableBufferPointer<T>, dShift: UnsafeMutableBufferPointer<T>
    ) {
        let sizes = Tolerance.Sizes(N: N, C: C, L: L, groups: G)
        shadow("groupNormSiLUBackward", "N \(N), C \(C), L \(L), groups \(G)", T.self) { call in
            let xr = call.input("x", x), dyr = call.input("dy", dy)
            let sr = call.input("scale", scale), hr = call.input("shift", shift)
            let mr = call.input("mean", mean), rr = call.input("rstd", rstd)
            let dxr = call.output("dx", dx, shape: [N, C, L], Self.rule("groupNormSiLUBackward", "dx", sizes))
            let dsr = call.output("dScale", dScale, shape: [N, C], Self.rule("groupNormSiLUBackward", "dScale", sizes))
            let dhr = call.output("dShift", dShift, shape: [N, C], Self.rule("groupNormSiLUBackward", "dShift", sizes))
            return ({ self.candidate.groupNormSiLUBackward(x, dy, N: N, C: C, L: L, groups: G, scale: scale, shift: shift,
                                                           mean: mean, rstd: rstd, dx, dScale: dScale, dShift: dShift) },
                    { self.reference.groupNormSiLUBackward(xr, dyr, N: N, C: C, L: L, groups: G, scale: sr, shift: hr,
                                                           mean: mr, rstd: rr, dxr, dScale: dsr, dShift: dhr) })
        }
    }

    public func softmaxRows<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ y: UnsafeMutableBufferPointer<T>) {
        shadow("softmaxRows", "rows \(rows), cols \(cols)", T.self) { call in
            let xr = call.input("x", x)
            let yr = call.output("y", y, shape: [rows, cols], Self.rule("softmaxRows", "y", .init(cols: cols)))
            return ({ self.candidate.softmaxRows(x, rows: rows, cols: cols, y) }, { self.reference.softmaxRows(xr, rows: rows, cols: cols, yr) })
        }
    }

    public func softmaxRowsBackward<T: TensorScalar>(
        _ y: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ dx: UnsafeMutableBufferPointer<T>
    ) {
        shadow("softmaxRowsBackward", "rows \(rows), cols \(cols)", T.self) { call in
            let yr = call.input("y", y), dyr = call.input("dy", dy)
            let dxr = call.output("dx", dx, shape: [rows, cols], Self.rule("softmaxRowsBackward", "dx", .init(cols: cols)))
            return ({ self.candidate.softmaxRowsBackward(y, dy, rows: rows, cols: cols, dx) },
                    { self.reference.softmaxRowsBackward(yr, dyr, rows: rows, cols: cols, dxr) })
        }
    }
}
