// Every primitive of the Backend protocol, called directly with seeded inputs: shapes from 1×1
// up to past one GPU block (256), odd sizes, padded leading dimensions, transposes, k = 0,
// β = 0 over a NaN-filled C (BLAS must not read it), NaN/±∞ for nanToNum, rank-0 to rank-5
// permutes, kernels that fall wholly in the padding.
//
// A case runs on any backend in Float or Double from the same inputs (drawn in Double and
// rounded through Float, so both precisions start from identical values) and returns its
// outputs widened to Double: in/out buffers (gemm's C with its gaps, col2im's x, copyRows' y)
// whole, so what a backend must leave untouched is compared too. K comes from Tolerance.table.
//
// Used by the conformance suite (Tests/DMD2BackendTests) on every registered backend. The
// golden primitive cases (GoldenPrimitiveCases.swift, `dmd2 export-goldens`) sit beside them.
import DMD2Core

public struct PrimitiveCase: @unchecked Sendable {
    /// The primitive's name (as the shadow reports it) and the instance.
    public var primitive: String
    public var label: String
    /// The longest sum behind one output element (0: data movement, must be exact).
    public var reductionLength: Int
    public var run: (any Backend, _ double: Bool) -> [Tensor<Double>]
}

public enum PrimitiveCases {
    /// Every case, in primitive order.
    public static var all: [PrimitiveCase] {
        gemm + elementwise + reductions + layout + conv + directConv + resampling + norm + fusedNorm + softmax
    }

    // MARK: Inputs

    /// N(0, std²) values rounded through Float.
    static func values(_ count: Int, seed: UInt64, std: Double = 1, shift: Double = 0) -> [Double] {
        var rng = RandomGenerator(seed: seed)
        return (0..<count).map { _ in Double(Float(shift + std * rng.nextNormalPair().0)) }
    }

    /// A buffer of T holding `v` (at least one element, so pointer-based primitives get a valid
    /// address for an empty operand).
    static func buffer<T: TensorScalar>(_ v: [Double], _: T.Type) -> [T] { v.isEmpty ? [0] : v.map { T($0) } }

    static func widen<T: TensorScalar>(_ v: [T], _ shape: [Int]) -> Tensor<Double> {
        Tensor(shape: shape, scalars: v.prefix(shape.elementCount).map { Double($0) })
    }

    /// The case's body for both precisions from one generic function.
    static func both(_ body: @escaping (any Backend, any TensorScalar.Type) -> [Tensor<Double>]) -> (any Backend, Bool) -> [Tensor<Double>] {
        { backend, double in body(backend, double ? Double.self : Float.self) }
    }

    // MARK: GEMM

    public static var gemm: [PrimitiveCase] {
        // (m, n, k, pad of the leading dimensions, β)
        let shapes: [(Int, Int, Int, Int, Double)] = [
            (1, 1, 1, 0, 0), (3, 5, 7, 0, 0.5), (17, 1, 33, 0, 0), (1, 9, 1, 2, 1),
            (4, 6, 0, 0, 0.5), (4, 6, 0, 1, 0), (33, 65, 129, 3, 0), (64, 48, 300, 0, 1),
        ]
        var cases: [PrimitiveCase] = []
        for (index, (m, n, k, pad, beta)) in shapes.enumerated() {
            for transA in [false, true] {
                for transB in [false, true] {
                    let seed = UInt64(1000 + 10 * index + (transA ? 2 : 0) + (transB ? 1 : 0))
                    let label = "m \(m) n \(n) k \(k) pad \(pad) β \(beta) transA \(transA) transB \(transB)"
                    cases.append(PrimitiveCase(primitive: "gemm", label: label, reductionLength: Tolerance.K("gemm", .init(k: k)), run: both { backend, type in
                        func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                            let (aRows, aCols) = transA ? (k, m) : (m, k), (bRows, bCols) = transB ? (n, k) : (k, n)
                            let lda = aCols + pad, ldb = bCols + pad, ldc = n + pad
                            let a = buffer(values(aRows * lda, seed: seed), T.self)
                            let b = buffer(values(bRows * ldb, seed: seed + 100), T.self)
                            // β = 0: C holds NaN, which a BLAS-conforming GEMM never reads.
                            var c = beta == 0 ? [T](repeating: .nan, count: m * ldc) : buffer(values(m * ldc, seed: seed + 200), T.self)
                            a.withUnsafeBufferPointer { ap in
                                b.withUnsafeBufferPointer { bp in
                                    c.withUnsafeMutableBufferPointer { cp in
                                        backend.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: T(1.5),
                                                     a: ap.baseAddress!, lda: max(1, lda), b: bp.baseAddress!, ldb: max(1, ldb),
                                                     beta: T(beta), c: cp.baseAddress!, ldc: ldc)
                                    }
                                }
                            }
                            // Gaps (pad > 0) come back too: they must be untouched.
                            return [widen(c, [m, ldc])]
                        }
                        return type == Double.self ? go(Double.self) : go(Float.self)
                    }))
                }
            }
        }
        return cases
    }

    // MARK: Elementwise

    public static var elementwise: [PrimitiveCase] {
        var cases: [PrimitiveCase] = []
        for (i, op) in UnaryOp.allCases.enumerated() {
            for n in [1, 7, 1000] {
                let seed = UInt64(2000 + 10 * i + n % 10)
                let positive = op == .log || op == .sqrt
                cases.append(PrimitiveCase(primitive: "unary", label: "\(op) n \(n)", reductionLength: Tolerance.K("unary"), run: both { backend, type in
                    func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                        let x = buffer(values(n, seed: seed, std: 2).map { positive ? abs($0) + 0.1 : $0 }, T.self)
                        var y = [T](repeating: 0, count: n)
                        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { backend.unary(op, xp, $0) } }
                        return [widen(y, [n])]
                    }
                    return type == Double.self ? go(Double.self) : go(Float.self)
                }))
            }
        }
        for (i, op) in BinaryOp.allCases.enumerated() {
            for n in [1, 13, 1025] {
                let seed = UInt64(3000 + 10 * i + n % 10)
                cases.append(PrimitiveCase(primitive: "binary", label: "\(op) n \(n)", reductionLength: Tolerance.K("binary"), run: both { backend, type in
                    func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                        let a = buffer(values(n, seed: seed, std: 2), T.self)
                        let b = buffer(values(n, seed: seed + 1, std: 2).map { op == .div ? ($0 < 0 ? $0 - 0.5 : $0 + 0.5) : $0 }, T.self)
                        var y = [T](repeating: 0, count: n)
                        a.withUnsafeBufferPointer { ap in
                            b.withUnsafeBufferPointer { bp in y.withUnsafeMutableBufferPointer { backend.binary(op, ap, bp, $0) } }
                        }
                        return [widen(y, [n])]
                    }
                    return type == Double.self ? go(Double.self) : go(Float.self)
                }))
            }
        }
        for n in [1, 100] {
            cases.append(PrimitiveCase(primitive: "affine", label: "n \(n)", reductionLength: Tolerance.K("affine"), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(n, seed: 3900 + UInt64(n)), T.self)
                    var y = [T](repeating: 0, count: n)
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { backend.affine(xp, scale: T(-1.75), shift: T(0.3125), $0) } }
                    return [widen(y, [n])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        cases.append(PrimitiveCase(primitive: "nanToNum", label: "NaN, ±∞ and finite values", reductionLength: Tolerance.K("nanToNum"), run: both { backend, type in
            func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                let x: [T] = [1.5, .nan, .infinity, -.infinity, 0, -2.25, .nan, 0x1p100, -.infinity]
                var y = [T](repeating: 0, count: x.count)
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { backend.nanToNum(xp, nan: T(0.5), posInf: T(7), negInf: T(-8), $0) }
                }
                return [widen(y, [x.count])]
            }
            return type == Double.self ? go(Double.self) : go(Float.self)
        }))
        return cases
    }

    // MARK: Reductions

    public static var reductions: [PrimitiveCase] {
        var cases: [PrimitiveCase] = []
        for (i, (outer, reduced, inner)) in [(1, 1, 1), (3, 5, 1), (2, 7, 3), (1, 100, 9), (4, 1, 6), (2, 300, 1)].enumerated() {
            cases.append(PrimitiveCase(primitive: "sumAxis", label: "[\(outer), \(reduced), \(inner)]", reductionLength: Tolerance.K("sumAxis", .init(reduced: reduced)), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(outer * reduced * inner, seed: 4000 + UInt64(i)), T.self)
                    var y = [T](repeating: 0, count: outer * inner)
                    x.withUnsafeBufferPointer { xp in
                        y.withUnsafeMutableBufferPointer { backend.sumAxis(xp, outer: outer, reduced: reduced, inner: inner, $0) }
                    }
                    return [widen(y, [outer, inner])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        for n in [1, 17, 10_000] {
            cases.append(PrimitiveCase(primitive: "sum", label: "n \(n)", reductionLength: Tolerance.K("sum", .init(count: n)), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(n, seed: 4100 + UInt64(n), shift: 0.5), T.self)
                    return [Tensor(shape: [1], scalars: [Double(x.withUnsafeBufferPointer { backend.sum($0) })])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
            cases.append(PrimitiveCase(primitive: "dot", label: "n \(n)", reductionLength: Tolerance.K("dot", .init(count: n)), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let a = buffer(values(n, seed: 4200 + UInt64(n), shift: 0.5), T.self), b = buffer(values(n, seed: 4300 + UInt64(n)), T.self)
                    let s = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { backend.dot(ap, $0) } }
                    return [Tensor(shape: [1], scalars: [Double(s)])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        return cases
    }

    // MARK: Layout

    public static var layout: [PrimitiveCase] {
        var cases: [PrimitiveCase] = []
        let permutes: [([Int], [Int])] = [
            ([], []), ([5], [0]), ([2, 3], [1, 0]), ([2, 3, 4], [2, 0, 1]), ([1, 3, 1, 2], [3, 2, 1, 0]),
            ([2, 1, 3, 2, 2], [4, 0, 3, 1, 2]), ([2, 3, 4], [0, 1, 2]), ([3, 2, 3, 17], [0, 3, 1, 2]),
        ]
        for (i, (shape, permutation)) in permutes.enumerated() {
            cases.append(PrimitiveCase(primitive: "permute", label: "\(shape) by \(permutation)", reductionLength: Tolerance.K("permute"), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(shape.elementCount, seed: 5000 + UInt64(i)), T.self)
                    let outShape = permutation.map { shape[$0] }
                    var y = [T](repeating: 0, count: outShape.elementCount)
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { backend.permute(xp, shape: shape, permutation: permutation, $0) } }
                    return [widen(y, outShape)]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        let broadcasts: [([Int], [Int])] = [
            ([1], [5]), ([2, 1], [2, 4]), ([1, 3, 1], [2, 3, 4]), ([3], [3]), ([1, 1], [1, 1]), ([2, 1, 3, 1], [2, 5, 3, 7]),
        ]
        for (i, (shape, outShape)) in broadcasts.enumerated() {
            cases.append(PrimitiveCase(primitive: "broadcast", label: "\(shape) → \(outShape)", reductionLength: Tolerance.K("broadcast"), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(shape.elementCount, seed: 5100 + UInt64(i)), T.self)
                    var y = [T](repeating: 0, count: outShape.elementCount)
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { backend.broadcast(xp, shape: shape, to: outShape, $0) } }
                    return [widen(y, outShape)]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        // (rows, count, xStride, xOffset, yStride, yOffset), x and y of 40 elements.
        let copies: [(Int, Int, Int, Int, Int, Int)] = [(3, 4, 5, 1, 6, 2), (1, 1, 1, 0, 1, 39), (0, 5, 5, 0, 5, 0), (5, 8, 8, 0, 8, 0), (4, 2, 9, 3, 3, 1)]
        for (i, c) in copies.enumerated() {
            cases.append(PrimitiveCase(primitive: "copyRows", label: "rows \(c.0) count \(c.1) x \(c.2)+\(c.3) y \(c.4)+\(c.5)", reductionLength: Tolerance.K("copyRows"), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(40, seed: 5200 + UInt64(i)), T.self)
                    var y = buffer(values(40, seed: 5300 + UInt64(i)), T.self)      // rows not copied keep these
                    x.withUnsafeBufferPointer { xp in
                        y.withUnsafeMutableBufferPointer {
                            backend.copyRows(xp, xStride: c.2, xOffset: c.3, $0, yStride: c.4, yOffset: c.5, rows: c.0, count: c.1)
                        }
                    }
                    return [widen(y, [40])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        return cases
    }

    // MARK: Convolution lowering

    /// (C, H, W, kernel, stride, padding): every geometry the ops use, odd sizes, a 1×1 image,
    /// and taps wholly in the padding (4×4/2/1 on 2×2).
    static let geometries: [(Int, Int, Int, Int, Int, Int)] = [
        (2, 3, 4, 1, 1, 0), (2, 4, 4, 3, 1, 1), (3, 3, 5, 3, 1, 1), (2, 5, 4, 3, 2, 1), (2, 4, 6, 4, 2, 1),
        (2, 2, 2, 4, 2, 1), (2, 8, 8, 4, 4, 0), (1, 1, 1, 1, 1, 0), (1, 1, 1, 3, 1, 1), (3, 17, 9, 3, 1, 1),
    ]

    public static var conv: [PrimitiveCase] {
        var cases: [PrimitiveCase] = []
        for (i, (C, H, W, k, s, p)) in geometries.enumerated() {
            let L = ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1)
            for pad in [0, 3] {
                let ldcol = L + pad, rows = C * k * k
                let label = "C \(C) \(H)×\(W) k \(k) s \(s) p \(p) ldcol \(ldcol)"
                cases.append(PrimitiveCase(primitive: "im2col", label: label, reductionLength: Tolerance.K("im2col"), run: both { backend, type in
                    func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                        let x = buffer(values(C * H * W, seed: 6000 + UInt64(i)), T.self)
                        // The gaps between rows hold other images' columns: they must survive.
                        var col = buffer(values(rows * ldcol, seed: 6100 + UInt64(i)), T.self)
                        x.withUnsafeBufferPointer { xp in
                            col.withUnsafeMutableBufferPointer {
                                backend.im2col(xp.baseAddress!, C: C, H: H, W: W, kernel: k, stride: s, padding: p, $0.baseAddress!, ldcol: ldcol)
                            }
                        }
                        return [widen(col, [rows, ldcol])]
                    }
                    return type == Double.self ? go(Double.self) : go(Float.self)
                }))
                cases.append(PrimitiveCase(primitive: "col2im", label: label, reductionLength: Tolerance.K("col2im", .init(kernel: k, stride: s)), run: both { backend, type in
                    func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                        let col = buffer(values(rows * ldcol, seed: 6200 + UInt64(i)), T.self)
                        var x = buffer(values(C * H * W, seed: 6300 + UInt64(i)), T.self)     // added into
                        col.withUnsafeBufferPointer { cp in
                            x.withUnsafeMutableBufferPointer {
                                backend.col2im(cp.baseAddress!, ldcol: ldcol, C: C, H: H, W: W, kernel: k, stride: s, padding: p, $0.baseAddress!)
                            }
                        }
                        return [widen(x, [C, H, W])]
                    }
                    return type == Double.self ? go(Double.self) : go(Float.self)
                }))
            }
        }
        return cases
    }

    // MARK: Direct convolution

    /// (N, C, H, W, O, kernel, stride, padding, bias): the UNet's 3×3 and 1×1 convs, O not a
    /// multiple of the CPU kernel's 4 rows, outputs not a multiple of its 24 columns (panels
    /// across two images), k-slabs (C·k·k > 256), stride 2, taps wholly in the padding, a
    /// product big enough to split over threads; for the weight gradient, N·Ho·Wo > 256
    /// (several slabs, slabs across images), K not a multiple of 24.
    static let directGeometries: [(Int, Int, Int, Int, Int, Int, Int, Int, Bool)] = [
        (1, 1, 1, 1, 1, 1, 1, 0, false), (2, 3, 5, 4, 5, 3, 1, 1, true), (3, 4, 3, 7, 6, 1, 1, 0, true),
        (2, 32, 6, 6, 9, 3, 1, 1, true), (2, 3, 5, 4, 4, 3, 2, 1, false), (1, 2, 2, 2, 3, 4, 2, 1, true),
        (2, 16, 20, 20, 16, 3, 1, 1, true), (1, 2, 3, 3, 2, 3, 1, 2, true), (3, 5, 21, 19, 7, 3, 2, 1, false),
    ]

    public static var directConv: [PrimitiveCase] {
        var cases: [PrimitiveCase] = []
        for (i, (N, C, H, W, O, k, s, p, withBias)) in directGeometries.enumerated() {
            let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1
            let label = "N \(N) C \(C) \(H)×\(W) O \(O) k \(k) s \(s) p \(p)\(withBias ? " bias" : "")"
            let seed = 6400 + 10 * UInt64(i)
            let xd = values(N * C * H * W, seed: seed), wd = values(O * C * k * k, seed: seed + 1, std: 0.3)
            let bd = values(O, seed: seed + 2), dyd = values(N * O * Ho * Wo, seed: seed + 3)
            cases.append(PrimitiveCase(primitive: "conv2dDirect", label: label, reductionLength: Tolerance.K("conv2dDirect", .init(k: C * k * k)), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let inputs = [xd, wd, bd].map { Tensor<T>(shape: [$0.count], scalars: $0.map { T($0) }) }
                    let out = Tensor<T>.withBuffers(reading: inputs, writing: [[N, O, Ho, Wo]]) { i, o in
                        let bias = withBias ? i[2] : nil
                        if !backend.conv2dDirect(i[0]!, N: N, C: C, H: H, W: W, weight: i[1]!, O: O, kernel: k, stride: s, padding: p, bias: bias, o[0]) {
                            ConvComposition.forward(on: backend, i[0]!, N: N, C: C, H: H, W: W, weight: i[1]!, O: O, kernel: k,
                                                    stride: s, padding: p, bias: bias, o[0])
                        }
                    }
                    return out.map { widen($0.scalars, $0.shape) }
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
            cases.append(PrimitiveCase(primitive: "conv2dDirectBackwardData", label: label, reductionLength: Tolerance.K("conv2dDirectBackwardData", .init(k: O * k * k)), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let inputs = [dyd, wd].map { Tensor<T>(shape: [$0.count], scalars: $0.map { T($0) }) }
                    let out = Tensor<T>.withBuffers(reading: inputs, writing: [[N, C, H, W]]) { i, o in
                        if !backend.conv2dDirectBackwardData(i[0]!, N: N, C: C, H: H, W: W, weight: i[1]!, O: O, kernel: k, stride: s, padding: p, o[0]) {
                            ConvComposition.backwardData(on: backend, i[0]!, N: N, C: C, H: H, W: W, weight: i[1]!, O: O, kernel: k,
                                                         stride: s, padding: p, o[0])
                        }
                    }
                    return out.map { widen($0.scalars, $0.shape) }
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
            cases.append(PrimitiveCase(primitive: "conv2dDirectBackwardWeight", label: label, reductionLength: Tolerance.K("conv2dDirectBackwardWeight", .init(k: N * Ho * Wo)), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let inputs = [xd, dyd].map { Tensor<T>(shape: [$0.count], scalars: $0.map { T($0) }) }
                    let out = Tensor<T>.withBuffers(reading: inputs, writing: [[O, C, k, k]]) { i, o in
                        if !backend.conv2dDirectBackwardWeight(i[0]!, i[1]!, N: N, C: C, H: H, W: W, O: O, kernel: k, stride: s, padding: p, o[0]) {
                            ConvComposition.backwardWeight(on: backend, i[0]!, i[1]!, N: N, C: C, H: H, W: W, O: O, kernel: k,
                                                           stride: s, padding: p, o[0])
                        }
                    }
                    return out.map { widen($0.scalars, $0.shape) }
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        return cases
    }

    // MARK: Resampling

    public static var resampling: [PrimitiveCase] {
        var cases: [PrimitiveCase] = []
        for (i, (P, H, W)) in [(1, 2, 2), (3, 4, 6), (2, 16, 2)].enumerated() {
            cases.append(PrimitiveCase(primitive: "avgPool2x2", label: "[\(P), \(H), \(W)]", reductionLength: Tolerance.K("avgPool2x2"), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(P * H * W, seed: 7000 + UInt64(i)), T.self)
                    var y = [T](repeating: 0, count: P * H * W / 4)
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { backend.avgPool2x2(xp, planes: P, H: H, W: W, $0) } }
                    return [widen(y, [P, H / 2, W / 2])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
            cases.append(PrimitiveCase(primitive: "avgPool2x2Backward", label: "[\(P), \(H), \(W)]", reductionLength: Tolerance.K("avgPool2x2Backward"), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let dy = buffer(values(P * H * W / 4, seed: 7100 + UInt64(i)), T.self)
                    var dx = [T](repeating: 0, count: P * H * W)
                    dy.withUnsafeBufferPointer { dp in dx.withUnsafeMutableBufferPointer { backend.avgPool2x2Backward(dp, planes: P, H: H, W: W, $0) } }
                    return [widen(dx, [P, H, W])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        for (i, (P, H, W)) in [(1, 1, 1), (3, 2, 3), (2, 5, 1)].enumerated() {
            cases.append(PrimitiveCase(primitive: "upsampleNearest2x", label: "[\(P), \(H), \(W)]", reductionLength: Tolerance.K("upsampleNearest2x"), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(P * H * W, seed: 7200 + UInt64(i)), T.self)
                    var y = [T](repeating: 0, count: 4 * P * H * W)
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { backend.upsampleNearest2x(xp, planes: P, H: H, W: W, $0) } }
                    return [widen(y, [P, 2 * H, 2 * W])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
            cases.append(PrimitiveCase(primitive: "upsampleNearest2xBackward", label: "[\(P), \(H), \(W)]", reductionLength: Tolerance.K("upsampleNearest2xBackward"), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let dy = buffer(values(4 * P * H * W, seed: 7300 + UInt64(i)), T.self)
                    var dx = [T](repeating: 0, count: P * H * W)
                    dy.withUnsafeBufferPointer { dp in
                        dx.withUnsafeMutableBufferPointer { backend.upsampleNearest2xBackward(dp, planes: P, H: H, W: W, $0) }
                    }
                    return [widen(dx, [P, H, W])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        return cases
    }

    // MARK: GroupNorm

    public static var norm: [PrimitiveCase] {
        // (N, C, L, G, affine)
        let geometries: [(Int, Int, Int, Int, Bool)] = [
            (1, 4, 1, 1, true), (2, 4, 5, 2, true), (2, 6, 3, 3, false), (1, 8, 300, 2, true), (2, 4, 4, 4, true), (3, 2, 7, 1, false),
        ]
        var cases: [PrimitiveCase] = []
        for (i, (N, C, L, G, affine)) in geometries.enumerated() {
            let sizes = Tolerance.Sizes(N: N, C: C, L: L, groups: G), seed = 8000 + 10 * UInt64(i)
            let label = "N \(N) C \(C) L \(L) G \(G)\(affine ? "" : " no affine")"
            cases.append(PrimitiveCase(primitive: "groupNorm", label: label, reductionLength: Tolerance.K("groupNorm", sizes), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(N * C * L, seed: seed, std: 2, shift: 0.7), T.self)
                    let gamma = buffer(values(C, seed: seed + 1, std: 0.2, shift: 1), T.self), beta = buffer(values(C, seed: seed + 2, std: 0.2), T.self)
                    var y = [T](repeating: 0, count: N * C * L), mean = [T](repeating: 0, count: N * G), rstd = mean
                    x.withUnsafeBufferPointer { xp in
                        gamma.withUnsafeBufferPointer { gp in
                            beta.withUnsafeBufferPointer { bp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    mean.withUnsafeMutableBufferPointer { mp in
                                        rstd.withUnsafeMutableBufferPointer { rp in
                                            backend.groupNorm(xp, N: N, C: C, L: L, groups: G, eps: T(1e-5), gamma: affine ? gp : nil,
                                                              beta: affine ? bp : nil, yp, mean: mp, rstd: rp)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    return [widen(y, [N, C, L]), widen(mean, [N, G]), widen(rstd, [N, G])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
            for withAffineGradients in [true, false] {
                let backwardLabel = label + (withAffineGradients ? ", dγ dβ" : ", dx only")
                // dx sums over the group ((C/G)·L); dγ, dβ over N·L: the case carries the larger.
                cases.append(PrimitiveCase(primitive: "groupNormBackward", label: backwardLabel, reductionLength: Tolerance.K("groupNormBackward", sizes), run: both { backend, type in
                    func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                        let xd = values(N * C * L, seed: seed, std: 2, shift: 0.7)
                        // The statistics, computed in Double and rounded to T: inputs like any other.
                        var meanD = [Double](repeating: 0, count: N * G), rstdD = meanD, yD = xd
                        xd.withUnsafeBufferPointer { xp in
                            yD.withUnsafeMutableBufferPointer { yp in
                                meanD.withUnsafeMutableBufferPointer { mp in
                                    rstdD.withUnsafeMutableBufferPointer { rp in
                                        ReferenceBackend().groupNorm(xp, N: N, C: C, L: L, groups: G, eps: 1e-5, gamma: nil, beta: nil, yp, mean: mp, rstd: rp)
                                    }
                                }
                            }
                        }
                        let x = buffer(xd, T.self), dy = buffer(values(N * C * L, seed: seed + 3), T.self)
                        let gamma = buffer(values(C, seed: seed + 1, std: 0.2, shift: 1), T.self)
                        let mean = buffer(meanD.map { Double(Float($0)) }, T.self), rstd = buffer(rstdD.map { Double(Float($0)) }, T.self)
                        var dx = [T](repeating: 0, count: N * C * L), dGamma = [T](repeating: .nan, count: C), dBeta = dGamma
                        x.withUnsafeBufferPointer { xp in
                            dy.withUnsafeBufferPointer { dyp in
                                gamma.withUnsafeBufferPointer { gp in
                                    mean.withUnsafeBufferPointer { mp in
                                        rstd.withUnsafeBufferPointer { rp in
                                            dx.withUnsafeMutableBufferPointer { dxp in
                                                dGamma.withUnsafeMutableBufferPointer { dgp in
                                                    dBeta.withUnsafeMutableBufferPointer { dbp in
                                                        backend.groupNormBackward(
                                                            xp, dyp, N: N, C: C, L: L, groups: G, gamma: affine ? gp : nil, mean: mp, rstd: rp, dxp,
                                                            dGamma: withAffineGradients ? dgp : nil, dBeta: withAffineGradients ? dbp : nil)
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        return [widen(dx, [N, C, L])] + (withAffineGradients ? [widen(dGamma, [C]), widen(dBeta, [C])] : [])
                    }
                    return type == Double.self ? go(Double.self) : go(Float.self)
                }))
            }
        }
        return cases
    }

    // MARK: GroupNorm + per-(n, c) affine + SiLU (fused)

    public static var fusedNorm: [PrimitiveCase] {
        // (N, C, L, G): one element, tails of the eight-lane loops (L 5, 3, 13), a long group.
        let geometries: [(Int, Int, Int, Int)] = [(1, 4, 1, 1), (2, 4, 5, 2), (2, 6, 3, 3), (1, 8, 300, 2), (3, 4, 13, 4)]
        var cases: [PrimitiveCase] = []
        for (i, (N, C, L, G)) in geometries.enumerated() {
            let sizes = Tolerance.Sizes(N: N, C: C, L: L, groups: G), seed = 8500 + 10 * UInt64(i)
            let label = "N \(N) C \(C) L \(L) G \(G)"
            // Scales around 1 of either sign, shifts that move z across SiLU's bend.
            let xd = values(N * C * L, seed: seed, std: 2, shift: 0.7)
            let scaleD = values(N * C, seed: seed + 1, std: 0.6, shift: 0.5), shiftD = values(N * C, seed: seed + 2, std: 0.8)
            cases.append(PrimitiveCase(primitive: "groupNormSiLU", label: label, reductionLength: Tolerance.K("groupNormSiLU", sizes), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let inputs = [xd, scaleD, shiftD].map { Tensor<T>(shape: [$0.count], scalars: $0.map { T($0) }) }
                    let out = Tensor<T>.withBuffers(reading: inputs, writing: [[N, C, L], [N, G], [N, G]]) { i, o in
                        backend.groupNormSiLU(i[0]!, N: N, C: C, L: L, groups: G, eps: T(1e-5), scale: i[1]!, shift: i[2]!,
                                              o[0], mean: o[1], rstd: o[2])
                    }
                    return out.map { widen($0.scalars, $0.shape) }
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
            cases.append(PrimitiveCase(primitive: "groupNormSiLUBackward", label: label, reductionLength: Tolerance.K("groupNormSiLUBackward", sizes), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    // The statistics, computed in Double and rounded through Float: inputs like any other.
                    let stats = Tensor<Double>.withBuffers(reading: [Tensor(shape: [xd.count], scalars: xd)], writing: [[N * C * L], [N * G], [N * G]]) { i, o in
                        ReferenceBackend().groupNorm(i[0]!, N: N, C: C, L: L, groups: G, eps: 1e-5, gamma: nil, beta: nil, o[0], mean: o[1], rstd: o[2])
                    }
                    let rounded = stats[1...].map { $0.scalars.map { Double(Float($0)) } }
                    let inputs = [xd, values(N * C * L, seed: seed + 3), scaleD, shiftD, rounded[0], rounded[1]]
                        .map { Tensor<T>(shape: [$0.count], scalars: $0.map { T($0) }) }
                    let out = Tensor<T>.withBuffers(reading: inputs, writing: [[N, C, L], [N, C], [N, C]]) { i, o in
                        backend.groupNormSiLUBackward(i[0]!, i[1]!, N: N, C: C, L: L, groups: G, scale: i[2]!, shift: i[3]!,
                                                      mean: i[4]!, rstd: i[5]!, o[0], dScale: o[1], dShift: o[2])
                    }
                    return out.map { widen($0.scalars, $0.shape) }
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        return cases
    }

    // MARK: Softmax

    public static var softmax: [PrimitiveCase] {
        var cases: [PrimitiveCase] = []
        for (i, (rows, cols)) in [(1, 1), (3, 7), (2, 300), (4, 256), (1, 513)].enumerated() {
            cases.append(PrimitiveCase(primitive: "softmaxRows", label: "[\(rows), \(cols)]", reductionLength: Tolerance.K("softmaxRows", .init(cols: cols)), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    let x = buffer(values(rows * cols, seed: 9000 + UInt64(i), std: 3), T.self)
                    var y = [T](repeating: 0, count: rows * cols)
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { backend.softmaxRows(xp, rows: rows, cols: cols, $0) } }
                    return [widen(y, [rows, cols])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
            cases.append(PrimitiveCase(primitive: "softmaxRowsBackward", label: "[\(rows), \(cols)]", reductionLength: Tolerance.K("softmaxRowsBackward", .init(cols: cols)), run: both { backend, type in
                func go<T: TensorScalar>(_: T.Type) -> [Tensor<Double>] {
                    // y: rows of positive weights summing to about 1.
                    let raw = values(rows * cols, seed: 9100 + UInt64(i)).map { abs($0) + 0.01 }
                    let y = buffer(raw.map { Double(Float($0 / Double(cols))) }, T.self)
                    let dy = buffer(values(rows * cols, seed: 9200 + UInt64(i)), T.self)
                    var dx = [T](repeating: 0, count: rows * cols)
                    y.withUnsafeBufferPointer { yp in
                        dy.withUnsafeBufferPointer { dyp in dx.withUnsafeMutableBufferPointer { backend.softmaxRowsBackward(yp, dyp, rows: rows, cols: cols, $0) } }
                    }
                    return [widen(dx, [rows, cols])]
                }
                return type == Double.self ? go(Double.self) : go(Float.self)
            }))
        }
        return cases
    }
}
