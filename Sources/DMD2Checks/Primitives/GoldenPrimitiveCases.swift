// The golden primitive cases `dmd2 export-goldens` writes (primitives/<primitive>.safetensors):
// a few seeded cases per primitive (transposes, padded leading dimensions, k = 0, NaN/±∞, odd
// images), float64 with Float-exact inputs, K from Tolerance.table. The conformance suite runs
// them under the shadow as well (GoldenCaseConformanceTests). Adding a primitive: its cases
// here and in PrimitiveCases.swift, its K in Tolerance.swift.
import DMD2Core

extension GoldenCases {
    /// One file per primitive, computed on `b`; K from Tolerance.table.
    public static func primitives(seed: UInt64, on b: any Backend = Compute.backend) -> [(name: String, cases: [GoldenCase])] {
        var files: [(String, [GoldenCase])] = []
        var s = seed &* 1000

        func next() -> UInt64 { s &+= 1; return s }

        // gemm: the four transposes, β ≠ 0 and padded leading dimensions, and k = 0.
        var gemm: [GoldenCase] = []
        for (index, (transA, transB, m, n, k, pad, beta)) in [
            (false, false, 3, 5, 7, 1, 0.5), (true, false, 3, 5, 7, 0, 0.0), (false, true, 4, 2, 9, 2, 1.0),
            (true, true, 6, 3, 4, 0, 0.25), (false, false, 2, 3, 0, 0, 0.5),
        ].enumerated() {
            let (aRows, aCols) = transA ? (k, m) : (m, k), (bRows, bCols) = transB ? (n, k) : (k, n)
            let lda = aCols + pad, ldb = bCols + pad, ldc = n + pad
            let A = randn([max(1, aRows * lda)], next()), B = randn([max(1, bRows * ldb)], next()), C0 = randn([m * ldc], next())
            var C = C0
            A.withUnsafeBufferPointer { ap in
                B.withUnsafeBufferPointer { bp in
                    C.withUnsafeMutableBufferPointer { cp in
                        b.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1.5, a: ap.baseAddress!, lda: max(1, lda),
                               b: bp.baseAddress!, ldb: max(1, ldb), beta: beta, c: cp.baseAddress!, ldc: ldc)
                    }
                }
            }
            gemm.append(GoldenCase(
                name: "c\(index)",
                parameters: ["transA": transA, "transB": transB, "m": m, "n": n, "k": k, "alpha": 1.5, "beta": beta,
                             "lda": max(1, lda), "ldb": max(1, ldb), "ldc": ldc],
                inputs: [("A", A), ("B", B), ("C", C0)], outputs: [("C", C)], reductionLength: Tolerance.K("gemm", .init(k: k))))
        }
        files.append(("gemm", gemm))

        var unary: [GoldenCase] = []
        for op in UnaryOp.allCases {
            var x = randn([16], next(), std: 2)
            if op == .log || op == .sqrt { x = floatExact(filled([16]) { y in x.withUnsafeBufferPointer { b.unary(.abs, $0, y) } } + 0.1) }
            let y = filled([16]) { y in x.withUnsafeBufferPointer { b.unary(op, $0, y) } }
            unary.append(GoldenCase(name: op.rawValue, parameters: ["op": op.rawValue], inputs: [("x", x)], outputs: [("y", y)], reductionLength: Tolerance.K("unary")))
        }
        files.append(("unary", unary))

        var binary: [GoldenCase] = []
        for op in BinaryOp.allCases {
            let a = randn([16], next(), std: 2)
            var c = randn([16], next(), std: 2)
            if op == .div { c = floatExact(filled([16]) { y in c.withUnsafeBufferPointer { b.unary(.abs, $0, y) } } + 0.5) }
            let y = filled([16]) { y in a.withUnsafeBufferPointer { ap in c.withUnsafeBufferPointer { b.binary(op, ap, $0, y) } } }
            binary.append(GoldenCase(name: op.rawValue, parameters: ["op": op.rawValue], inputs: [("a", a), ("b", c)], outputs: [("y", y)], reductionLength: Tolerance.K("binary")))
        }
        files.append(("binary", binary))

        let ax = randn([10], next())
        files.append(("affine", [GoldenCase(
            name: "c0", parameters: ["scale": -1.75, "shift": 0.3125], inputs: [("x", ax)],
            outputs: [("y", filled([10]) { y in ax.withUnsafeBufferPointer { b.affine($0, scale: -1.75, shift: 0.3125, y) } })],
            reductionLength: Tolerance.K("affine"))]))

        let nx = Tensor<Double>(shape: [8], scalars: [1.5, .nan, .infinity, -.infinity, 0, -2.25, .nan, 0x1p100])
        files.append(("nanToNum", [GoldenCase(
            name: "c0", parameters: ["nan": 0.5, "posInf": 7.0, "negInf": -8.0], inputs: [("x", nx)],
            outputs: [("y", filled([8]) { y in nx.withUnsafeBufferPointer { b.nanToNum($0, nan: 0.5, posInf: 7, negInf: -8, y) } })],
            reductionLength: Tolerance.K("nanToNum"))]))

        var sumAxis: [GoldenCase] = []
        for (index, (outer, reduced, inner)) in [(2, 5, 3), (1, 300, 1), (4, 1, 2)].enumerated() {
            let x = randn([outer * reduced * inner], next())
            sumAxis.append(GoldenCase(
                name: "c\(index)", parameters: ["outer": outer, "reduced": reduced, "inner": inner], inputs: [("x", x)],
                outputs: [("y", filled([outer, inner]) { y in x.withUnsafeBufferPointer { b.sumAxis($0, outer: outer, reduced: reduced, inner: inner, y) } })],
                reductionLength: Tolerance.K("sumAxis", .init(reduced: reduced))))
        }
        files.append(("sumAxis", sumAxis))

        let sx = randn([1000], next(), shift: 0.5), dx = randn([1000], next())
        files.append(("sum", [GoldenCase(name: "c0", inputs: [("x", sx)],
                                         outputs: [("y", Tensor(shape: [], scalars: [sx.withUnsafeBufferPointer { b.sum($0) }]))],
                                         reductionLength: Tolerance.K("sum", .init(count: sx.count)))]))
        files.append(("dot", [GoldenCase(name: "c0", inputs: [("a", sx), ("b", dx)],
                                         outputs: [("y", Tensor(shape: [], scalars: [sx.withUnsafeBufferPointer { ap in dx.withUnsafeBufferPointer { b.dot(ap, $0) } }]))],
                                         reductionLength: Tolerance.K("dot", .init(count: sx.count)))]))

        var permute: [GoldenCase] = []
        for (index, (shape, permutation)) in [([2, 3, 4], [2, 0, 1]), ([2, 1, 3, 2, 2], [4, 0, 3, 1, 2]), ([5], [0])].enumerated() {
            let x = randn(shape, next())
            permute.append(GoldenCase(
                name: "c\(index)", parameters: ["shape": shape, "permutation": permutation], inputs: [("x", x)],
                outputs: [("y", filled(permutation.map { shape[$0] }) { y in x.withUnsafeBufferPointer { b.permute($0, shape: shape, permutation: permutation, y) } })],
                reductionLength: Tolerance.K("permute")))
        }
        files.append(("permute", permute))

        var broadcast: [GoldenCase] = []
        for (index, (shape, outShape)) in [([1, 3, 1], [2, 3, 4]), ([2, 1], [2, 5]), ([1], [3])].enumerated() {
            let x = randn(shape, next())
            broadcast.append(GoldenCase(
                name: "c\(index)", parameters: ["shape": shape, "outShape": outShape], inputs: [("x", x)],
                outputs: [("y", filled(outShape) { y in x.withUnsafeBufferPointer { b.broadcast($0, shape: shape, to: outShape, y) } })],
                reductionLength: Tolerance.K("broadcast")))
        }
        files.append(("broadcast", broadcast))

        let cx = randn([40], next()), cy0 = randn([40], next())
        var cy = cy0
        cx.withUnsafeBufferPointer { xp in
            cy.withUnsafeMutableBufferPointer { b.copyRows(xp, xStride: 5, xOffset: 1, $0, yStride: 6, yOffset: 2, rows: 3, count: 4) }
        }
        files.append(("copyRows", [GoldenCase(
            name: "c0", parameters: ["xStride": 5, "xOffset": 1, "yStride": 6, "yOffset": 2, "rows": 3, "count": 4],
            inputs: [("x", cx), ("y", cy0)], outputs: [("y", cy)], reductionLength: Tolerance.K("copyRows"))]))

        // im2col / col2im: k3 s2 p1 on an odd 5×4 image, rows of col 2 apart beyond Ho·Wo; k4 s2 p1 on 2×2.
        var im2col: [GoldenCase] = [], col2im: [GoldenCase] = []
        for (index, (C, H, W, k, st, p, pad)) in [(2, 5, 4, 3, 2, 1, 2), (2, 2, 2, 4, 2, 1, 0), (3, 4, 4, 3, 1, 1, 0)].enumerated() {
            let L = ((H + 2 * p - k) / st + 1) * ((W + 2 * p - k) / st + 1), ldcol = L + pad, rows = C * k * k
            let params: [String: Any] = ["C": C, "H": H, "W": W, "kernel": k, "stride": st, "padding": p, "ldcol": ldcol]
            let x = randn([C, H, W], next()), col0 = randn([rows, ldcol], next())
            var col = col0
            x.withUnsafeBufferPointer { xp in
                col.withUnsafeMutableBufferPointer { b.im2col(xp.baseAddress!, C: C, H: H, W: W, kernel: k, stride: st, padding: p, $0.baseAddress!, ldcol: ldcol) }
            }
            im2col.append(GoldenCase(name: "c\(index)", parameters: params, inputs: [("x", x), ("col", col0)], outputs: [("col", col)], reductionLength: Tolerance.K("im2col")))
            let dcol = randn([rows, ldcol], next()), x0 = randn([C, H, W], next())
            var xOut = x0
            dcol.withUnsafeBufferPointer { cp in
                xOut.withUnsafeMutableBufferPointer { b.col2im(cp.baseAddress!, ldcol: ldcol, C: C, H: H, W: W, kernel: k, stride: st, padding: p, $0.baseAddress!) }
            }
            col2im.append(GoldenCase(name: "c\(index)", parameters: params, inputs: [("col", dcol), ("x", x0)], outputs: [("x", xOut)], reductionLength: Tolerance.K("col2im", .init(kernel: k, stride: st))))
        }
        files.append(("im2col", im2col))
        files.append(("col2im", col2im))

        // Direct convolution and its data and weight gradients: 3×3 s1 p1 with bias on 5×4 (panels across
        // images), 3×3 s2 p1 without. Seeds off the shared sequence, so every other file keeps its inputs.
        var direct: [GoldenCase] = [], directData: [GoldenCase] = [], directWeight: [GoldenCase] = []
        for (index, (N, C, H, W, O, k, st, p, withBias)) in [(2, 3, 5, 4, 5, 3, 1, 1, true), (1, 2, 5, 4, 3, 3, 2, 1, false)].enumerated() {
            let Ho = (H + 2 * p - k) / st + 1, Wo = (W + 2 * p - k) / st + 1
            let params: [String: Any] = ["N": N, "C": C, "H": H, "W": W, "O": O, "kernel": k, "stride": st, "padding": p, "bias": withBias]
            let base = seed &+ 7100 &+ 10 &* UInt64(index)
            let x = randn([N, C, H, W], base), w = randn([O, C, k, k], base &+ 1, std: 0.3)
            let bias = randn([O], base &+ 2), dy = randn([N, O, Ho, Wo], base &+ 3)
            let y = Tensor<Double>.withBuffers(reading: [x, w, bias], writing: [[N, O, Ho, Wo]]) { i, o in
                let bs = withBias ? i[2] : nil
                if !b.conv2dDirect(i[0]!, N: N, C: C, H: H, W: W, weight: i[1]!, O: O, kernel: k, stride: st, padding: p, bias: bs, o[0]) {
                    ConvComposition.forward(on: b, i[0]!, N: N, C: C, H: H, W: W, weight: i[1]!, O: O, kernel: k, stride: st, padding: p, bias: bs, o[0])
                }
            }[0]
            direct.append(GoldenCase(name: "c\(index)", parameters: params,
                                     inputs: [("x", x), ("weight", w)] + (withBias ? [("bias", bias)] : []), outputs: [("y", y)],
                                     reductionLength: Tolerance.K("conv2dDirect", .init(k: C * k * k))))
            let dx = Tensor<Double>.withBuffers(reading: [dy, w], writing: [[N, C, H, W]]) { i, o in
                if !b.conv2dDirectBackwardData(i[0]!, N: N, C: C, H: H, W: W, weight: i[1]!, O: O, kernel: k, stride: st, padding: p, o[0]) {
                    ConvComposition.backwardData(on: b, i[0]!, N: N, C: C, H: H, W: W, weight: i[1]!, O: O, kernel: k, stride: st, padding: p, o[0])
                }
            }[0]
            directData.append(GoldenCase(name: "c\(index)", parameters: params, inputs: [("dy", dy), ("weight", w)], outputs: [("dx", dx)],
                                         reductionLength: Tolerance.K("conv2dDirectBackwardData", .init(k: O * k * k))))
            let dw = Tensor<Double>.withBuffers(reading: [x, dy], writing: [[O, C, k, k]]) { i, o in
                if !b.conv2dDirectBackwardWeight(i[0]!, i[1]!, N: N, C: C, H: H, W: W, O: O, kernel: k, stride: st, padding: p, o[0]) {
                    ConvComposition.backwardWeight(on: b, i[0]!, i[1]!, N: N, C: C, H: H, W: W, O: O, kernel: k, stride: st, padding: p, o[0])
                }
            }[0]
            directWeight.append(GoldenCase(name: "c\(index)", parameters: params, inputs: [("x", x), ("dy", dy)], outputs: [("dweight", dw)],
                                           reductionLength: Tolerance.K("conv2dDirectBackwardWeight", .init(k: N * Ho * Wo))))
        }
        files.append(("conv2dDirect", direct))
        files.append(("conv2dDirectBackwardData", directData))
        files.append(("conv2dDirectBackwardWeight", directWeight))

        let (P, H, W) = (3, 4, 6)
        let px = randn([P, H, W], next()), pdy = randn([P, H / 2, W / 2], next())
        let ux = randn([P, H / 2, W / 2], next()), udy = randn([P, H, W], next())
        let planes: [String: Any] = ["planes": P, "H": H, "W": W]
        let half: [String: Any] = ["planes": P, "H": H / 2, "W": W / 2]
        files.append(("avgPool2x2", [GoldenCase(name: "c0", parameters: planes, inputs: [("x", px)],
            outputs: [("y", filled([P, H / 2, W / 2]) { y in px.withUnsafeBufferPointer { b.avgPool2x2($0, planes: P, H: H, W: W, y) } })], reductionLength: Tolerance.K("avgPool2x2"))]))
        files.append(("avgPool2x2Backward", [GoldenCase(name: "c0", parameters: planes, inputs: [("dy", pdy)],
            outputs: [("dx", filled([P, H, W]) { y in pdy.withUnsafeBufferPointer { b.avgPool2x2Backward($0, planes: P, H: H, W: W, y) } })], reductionLength: Tolerance.K("avgPool2x2Backward"))]))
        files.append(("upsampleNearest2x", [GoldenCase(name: "c0", parameters: half, inputs: [("x", ux)],
            outputs: [("y", filled([P, H, W]) { y in ux.withUnsafeBufferPointer { b.upsampleNearest2x($0, planes: P, H: H / 2, W: W / 2, y) } })], reductionLength: Tolerance.K("upsampleNearest2x"))]))
        files.append(("upsampleNearest2xBackward", [GoldenCase(name: "c0", parameters: half, inputs: [("dy", udy)],
            outputs: [("dx", filled([P, H / 2, W / 2]) { y in udy.withUnsafeBufferPointer { b.upsampleNearest2xBackward($0, planes: P, H: H / 2, W: W / 2, y) } })], reductionLength: Tolerance.K("upsampleNearest2xBackward"))]))

        // GroupNorm: N 2, C 6, L 5, G 3, eps 1e-5, with γ and β.
        let (gN, gC, gL, gG) = (2, 6, 5, 3)
        let gx = randn([gN, gC, gL], next(), std: 2, shift: 0.7), gamma = randn([gC], next(), std: 0.2, shift: 1), beta = randn([gC], next(), std: 0.2)
        let forward = Tensor<Double>.withBuffers(reading: [gx, gamma, beta], writing: [[gN, gC, gL], [gN, gG], [gN, gG]]) { i, o in
            b.groupNorm(i[0]!, N: gN, C: gC, L: gL, groups: gG, eps: 1e-5, gamma: i[1], beta: i[2], o[0], mean: o[1], rstd: o[2])
        }
        let (gy, mean, rstd) = (forward[0], forward[1], forward[2])
        let normSizes = Tolerance.Sizes(N: gN, C: gC, L: gL, groups: gG)
        let normParams: [String: Any] = ["N": gN, "C": gC, "L": gL, "groups": gG, "eps": 1e-5]
        files.append(("groupNorm", [GoldenCase(name: "c0", parameters: normParams, inputs: [("x", gx), ("gamma", gamma), ("beta", beta)],
                                               outputs: [("y", gy), ("mean", mean), ("rstd", rstd)], reductionLength: Tolerance.K("groupNorm", normSizes))]))
        let gdy = randn([gN, gC, gL], next())
        let backward = Tensor<Double>.withBuffers(reading: [gx, gdy, gamma, mean, rstd], writing: [[gN, gC, gL], [gC], [gC]]) { i, o in
            b.groupNormBackward(i[0]!, i[1]!, N: gN, C: gC, L: gL, groups: gG, gamma: i[2], mean: i[3]!, rstd: i[4]!, o[0],
                                dGamma: o[1], dBeta: o[2])
        }
        let (gdx, dGamma, dBeta) = (backward[0], backward[1], backward[2])
        files.append(("groupNormBackward", [GoldenCase(
            name: "c0", parameters: normParams, inputs: [("x", gx), ("dy", gdy), ("gamma", gamma), ("mean", mean), ("rstd", rstd)],
            outputs: [("dx", gdx), ("dGamma", dGamma), ("dBeta", dBeta)], reductionLength: Tolerance.K("groupNormBackward", normSizes))]))

        // GroupNorm + per-(n, c) affine + SiLU: the same x and sizes, scale and shift [N, C].
        // Seeds off the shared sequence, so every other golden file keeps its inputs.
        let fScale = randn([gN, gC], seed &+ 7001, std: 0.6, shift: 0.5), fShift = randn([gN, gC], seed &+ 7002, std: 0.8)
        let fused = Tensor<Double>.withBuffers(reading: [gx, fScale, fShift], writing: [[gN, gC, gL], [gN, gG], [gN, gG]]) { i, o in
            b.groupNormSiLU(i[0]!, N: gN, C: gC, L: gL, groups: gG, eps: 1e-5, scale: i[1]!, shift: i[2]!, o[0], mean: o[1], rstd: o[2])
        }
        files.append(("groupNormSiLU", [GoldenCase(name: "c0", parameters: normParams, inputs: [("x", gx), ("scale", fScale), ("shift", fShift)],
                                                   outputs: [("y", fused[0]), ("mean", fused[1]), ("rstd", fused[2])],
                                                   reductionLength: Tolerance.K("groupNormSiLU", normSizes))]))
        let fusedBackward = Tensor<Double>.withBuffers(reading: [gx, gdy, fScale, fShift, fused[1], fused[2]], writing: [[gN, gC, gL], [gN, gC], [gN, gC]]) { i, o in
            b.groupNormSiLUBackward(i[0]!, i[1]!, N: gN, C: gC, L: gL, groups: gG, scale: i[2]!, shift: i[3]!, mean: i[4]!, rstd: i[5]!,
                                    o[0], dScale: o[1], dShift: o[2])
        }
        files.append(("groupNormSiLUBackward", [GoldenCase(
            name: "c0", parameters: normParams,
            inputs: [("x", gx), ("dy", gdy), ("scale", fScale), ("shift", fShift), ("mean", fused[1]), ("rstd", fused[2])],
            outputs: [("dx", fusedBackward[0]), ("dScale", fusedBackward[1]), ("dShift", fusedBackward[2])],
            reductionLength: Tolerance.K("groupNormSiLUBackward", normSizes))]))

        let (rows, cols) = (3, 300)
        let sx2 = randn([rows, cols], next(), std: 3)
        let sy = filled([rows, cols]) { y in sx2.withUnsafeBufferPointer { b.softmaxRows($0, rows: rows, cols: cols, y) } }
        let sdy = randn([rows, cols], next())
        files.append(("softmaxRows", [GoldenCase(name: "c0", parameters: ["rows": rows, "cols": cols], inputs: [("x", sx2)],
                                                 outputs: [("y", sy)], reductionLength: Tolerance.K("softmaxRows", .init(cols: cols)))]))
        files.append(("softmaxRowsBackward", [GoldenCase(
            name: "c0", parameters: ["rows": rows, "cols": cols], inputs: [("y", sy), ("dy", sdy)],
            outputs: [("dx", filled([rows, cols]) { dx in sy.withUnsafeBufferPointer { yp in sdy.withUnsafeBufferPointer { b.softmaxRowsBackward(yp, $0, rows: rows, cols: cols, dx) } } })],
            reductionLength: Tolerance.K("softmaxRowsBackward", .init(cols: cols)))]))
        return files
    }
}
