// Per-primitive tolerances, written once: the shadow backend, the conformance suite and
// `dmd2 export-goldens` read K from here, and docs/BACKENDS.md's table is checked against
// `Tolerance.markdownTable` by a test (ToleranceTableTests).
//
// The rule, per output buffer, with u the unit roundoff of the element type (2⁻²⁴ Float, 2⁻⁵³
// Double): data movement must be bitwise equal (K = 0); arithmetic must satisfy
// |candidate − reference| ≤ ρ·u·√K·S at every element, with ρ = 64, K the reduction length
// behind one output element and S the output's scale, max |ref| over the buffer (for sum and
// dot, max(|ref|, Σ|terms|/√K), the size of a sum of K random-signed terms). Rounding errors of
// a length-K sum grow like √K·u for random data, hence the √K; ρ leaves room for transcendental
// functions a few ulps apart and for different summation orders.
//
// Adding a primitive: one `Entry` below (and its cases in PrimitiveCases.swift).

/// The tolerance rule's constants and the reduction length K of every primitive's outputs.
public enum Tolerance {
    /// ρ in ρ·u·√K·S (also the factor of the Float-vs-Double op checks).
    public static let rho = 64.0

    /// The sizes a primitive call's K depends on (unused ones stay 0).
    public struct Sizes: Sendable {
        public var k = 0, count = 0, reduced = 0, kernel = 0, stride = 0
        public var N = 0, C = 0, L = 0, groups = 0, cols = 0
        public init(k: Int = 0, count: Int = 0, reduced: Int = 0, kernel: Int = 0, stride: Int = 0,
                    N: Int = 0, C: Int = 0, L: Int = 0, groups: Int = 0, cols: Int = 0) {
            self.k = k; self.count = count; self.reduced = reduced; self.kernel = kernel; self.stride = stride
            self.N = N; self.C = C; self.L = L; self.groups = groups; self.cols = cols
        }
    }

    /// How an output is compared.
    public enum Scale: Sendable {
        /// K = 0: bitwise equal.
        case exact
        /// S = max|ref| over the buffer.
        case maxReference
        /// S = max(|ref|, Σ|terms|/√K), for a scalar sum of K terms.
        case sumOfTerms
    }

    /// One row of the table: the primitives (and, where they differ, the outputs) it covers,
    /// K in words (docs/BACKENDS.md's table) and as a function of the call's sizes.
    public struct Entry: Sendable {
        public var primitives: [String]
        /// nil: every output of those primitives.
        public var outputs: [String]?
        public var scale: Scale
        public var words: String
        public var reductionLength: @Sendable (Sizes) -> Int
    }

    public static let table: [Entry] = [
        Entry(primitives: ["gemm"], outputs: nil, scale: .maxReference,
              words: "k (the inner dimension) + 1 (the α·Σ and β·C roundings)") { $0.k + 1 },
        Entry(primitives: ["conv2dDirect", "conv2dDirectBackwardData", "conv2dDirectBackwardWeight"], outputs: nil, scale: .maxReference,
              words: "k = the dot length (C·k·k; O·k·k for the data gradient; N·Ho·Wo for the weight gradient) + 1 (the bias, or the first slab's + 0)") { $0.k + 1 },
        Entry(primitives: ["unary", "binary", "affine"], outputs: nil, scale: .maxReference, words: "1") { _ in 1 },
        Entry(primitives: ["sumAxis"], outputs: nil, scale: .maxReference, words: "the reduced extent") { $0.reduced },
        Entry(primitives: ["sum", "dot"], outputs: nil, scale: .sumOfTerms,
              words: "the element count; S = max(\\|ref\\|, Σ\\|terms\\|/√K)") { $0.count },
        Entry(primitives: ["col2im"], outputs: nil, scale: .maxReference, words: "⌈k/s⌉² taps per pixel + 1") {
            let taps = ($0.kernel + $0.stride - 1) / Swift.max(1, $0.stride)
            return taps * taps + 1
        },
        Entry(primitives: ["avgPool2x2", "upsampleNearest2xBackward"], outputs: nil, scale: .maxReference, words: "4") { _ in 4 },
        Entry(primitives: ["groupNorm"], outputs: nil, scale: .maxReference, words: "(C/G)·L") { groupLength($0) },
        Entry(primitives: ["groupNormBackward"], outputs: ["dx"], scale: .maxReference, words: "(C/G)·L") { groupLength($0) },
        Entry(primitives: ["groupNormBackward"], outputs: ["dGamma", "dBeta"], scale: .maxReference, words: "N·L") { $0.N * $0.L },
        Entry(primitives: ["groupNormSiLU"], outputs: nil, scale: .maxReference, words: "(C/G)·L") { groupLength($0) },
        Entry(primitives: ["groupNormSiLUBackward"], outputs: ["dx"], scale: .maxReference, words: "(C/G)·L") { groupLength($0) },
        Entry(primitives: ["groupNormSiLUBackward"], outputs: ["dScale", "dShift"], scale: .maxReference, words: "L") { $0.L },
        Entry(primitives: ["softmaxRows", "softmaxRowsBackward"], outputs: nil, scale: .maxReference, words: "cols") { $0.cols },
        Entry(primitives: ["permute", "broadcast", "copyRows", "im2col", "upsampleNearest2x", "avgPool2x2Backward", "nanToNum"],
              outputs: nil, scale: .exact, words: "0: bitwise equal (data movement; a ¼ scaling is exact)") { _ in 0 },
    ]

    static func groupLength(_ s: Sizes) -> Int { s.groups > 0 ? s.C / s.groups * s.L : 0 }

    /// The table's rows for `primitive` (and `output`, when given).
    public static func entries(_ primitive: String, output: String? = nil) -> [Entry] {
        let rows = table.filter { $0.primitives.contains(primitive) }
        precondition(!rows.isEmpty, "Tolerance: no entry for primitive '\(primitive)' (add one to Tolerance.table)")
        guard let output else { return rows }
        let matching = rows.filter { $0.outputs?.contains(output) ?? true }
        precondition(!matching.isEmpty, "Tolerance: no entry for output '\(output)' of '\(primitive)'")
        return matching
    }

    /// K for `primitive`'s `output`, or — without an output — the largest K over its outputs
    /// (the one number a golden or conformance case carries).
    public static func K(_ primitive: String, output: String? = nil, _ sizes: Sizes = Sizes()) -> Int {
        entries(primitive, output: output).map { $0.reductionLength(sizes) }.max() ?? 0
    }

    /// Whether `primitive`'s outputs must be bitwise equal.
    public static func isExact(_ primitive: String) -> Bool { entries(primitive).allSatisfy { $0.scale == .exact } }

    /// docs/BACKENDS.md's table of K, generated from `table`.
    public static var markdownTable: String {
        var lines = ["| primitive | K |", "| --- | --- |"]
        for e in table {
            let outputs = e.outputs.map { " " + $0.map { $0 == "dGamma" ? "dγ" : ($0 == "dBeta" ? "dβ" : $0) }.joined(separator: ", ") } ?? ""
            lines.append("| \(e.primitives.joined(separator: ", "))\(outputs) | \(e.words) |")
        }
        return lines.joined(separator: "\n")
    }
}
