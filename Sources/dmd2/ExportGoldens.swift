// `dmd2 export-goldens --out DIR`: the exported contract for other frameworks.
//
// Writes, in float64 and computed on the selected backend (default cpu):
//   primitives/<primitive>.safetensors   every Backend primitive: inputs and outputs per case
//   ops/<op>.safetensors                 every differentiable op in OpCatalog: inputs, output,
//                                        an upstream gradient `seed` and the input gradients
//   unet/<config>.safetensors            a whole UNet (default small16, batch 2): weights, inputs,
//                                        F, and the gradient of ⟨seed, F⟩ for x and every parameter
//   manifest.json                        every file and case, the tolerance rule, the backend
//   dmd2/debug_state.safetensors         one DMD2 iteration (generator + critic step) on a tiny
//                                        network: the debug state of docs/DEBUG-STATE.md (Float,
//                                        its own tolerances; reference/dmd2_step.py replays it)
// The layout is described in docs/BACKENDS.md; reference/run_goldens.py checks a PyTorch
// implementation against every file.
//
// Inside a file, tensor names are `<case>.<role>.<name>` with role `in` (inputs; for in/out
// buffers the content before the call), `out` (outputs), `seed` (the upstream gradient of an op)
// or `grad` (an op's input gradients: ∂⟨seed, out⟩/∂in). The file metadata holds `format`
// "swift-dmd2-golden", `version` "1", `kind`, `name`, and one key per case whose value is that
// case's JSON: parameters, input/output names, and `reductionLength` K for the tolerance
// |got − golden| ≤ 64·u·√K·max|golden| (u of the runner's precision; K = 0: exact).
import ArgumentParser
import DMD2
import DMD2Core
import DMD2Ops
import EDM
import Foundation
import SafeTensors

struct ExportGoldens: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-goldens",
        abstract: "Write every primitive, every op and a whole UNet forward+backward as float64 safetensors goldens with a manifest (docs/BACKENDS.md).")

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "Output folder (created; existing golden files are replaced).")
    var out: String
    @Option(name: .long, help: "UNet preset for the whole-network golden (small16, cpu64Tiny, …).")
    var config: String = "small16"
    @Option(name: .long, help: "Batch size of the UNet golden.")
    var batch: Int = 2
    @Option(name: .long, help: "Seed of every random input and weight.")
    var seed: UInt64 = 2024

    func run() throws {
        common.apply()
        guard let unetConfig = UNetConfig.presets[config] else {
            throw ValidationError("unknown config '\(config)'; presets: \(UNetConfig.presets.keys.sorted().joined(separator: ", "))")
        }
        guard batch >= 1 else { throw ValidationError("--batch must be ≥ 1") }
        let root = URL(fileURLWithPath: out)
        for folder in ["primitives", "ops", "unet", "dmd2"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        print("export-goldens: backend \(Compute.backend.name), float64, into \(root.path)")
        var entries: [[String: Any]] = []

        for (name, cases) in Goldens.primitiveFiles(seed: seed) {
            entries.append(try Goldens.write(cases, kind: "primitive", name: name, to: root, folder: "primitives"))
        }
        let ops = Goldens.opFiles(seed: seed)
        for (name, cases) in ops {
            entries.append(try Goldens.write(cases, kind: "op", name: name, to: root, folder: "ops"))
        }
        let missingOps = OpCatalog.all.filter { op in !ops.contains { $0.name == op } }
        if !missingOps.isEmpty { print("export-goldens: warning: no golden for ops \(missingOps) (add a case in ExportGoldens.swift)") }
        let start = Date()
        entries.append(try Goldens.writeUNet(config: unetConfig, configName: config, batch: batch, seed: seed, to: root))
        print(String(format: "export-goldens: unet/%@.safetensors (forward+backward in %.1f s)", config, Date().timeIntervalSince(start)))

        let dmd2URL = root.appendingPathComponent("dmd2/debug_state.safetensors")
        let debugState = try DebugState.record(DebugState.randomInputs(seed: seed))
        try debugState.write(to: dmd2URL)
        print("export-goldens: dmd2/debug_state.safetensors (\(debugState.tensors.count) tensors)")

        let manifest: [String: Any] = [
            "format": "swift-dmd2-goldens",
            "version": 1,
            "generator": "dmd2 export-goldens",
            "backend": Compute.backend.name,
            "dtype": "F64",
            "seed": Int(seed),
            "tolerance": [
                "rule": "|got - golden| <= rho * u * sqrt(K) * max|golden| elementwise, per tensor; K = 0: bitwise",
                "rho": 64,
                "u": ["float64": Double.unitRoundoff, "float32": Float.unitRoundoff],
            ] as [String: Any],
            "files": entries,
            "ops_without_golden": missingOps,
            "dmd2_step": [
                "path": "dmd2/debug_state.safetensors",
                "tensors": debugState.tensors.count,
                "note": "one DMD2 generator + critic step on a tiny network (Float): inputs, intermediates, losses, gradients before clipping, updated weights; key layout and tolerances in docs/DEBUG-STATE.md; replay with python3 reference/dmd2_step.py FILE",
            ] as [String: Any],
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: root.appendingPathComponent("manifest.json"))
        let caseCount = entries.map { ($0["cases"] as? [String])?.count ?? 0 }.reduce(0, +)
        print("export-goldens: \(entries.count) files, \(caseCount) cases, manifest.json written")
    }
}

/// One golden case: parameters, named inputs/outputs/gradients (float64), and K.
struct GoldenCase {
    var name: String
    var parameters: [String: Any] = [:]
    var inputs: [(String, Tensor<Double>)] = []
    var outputs: [(String, Tensor<Double>)] = []
    var seeds: [(String, Tensor<Double>)] = []
    var grads: [(String, Tensor<Double>)] = []
    var reductionLength: Int

    var metadataJSON: String {
        let object: [String: Any] = [
            "parameters": parameters,
            "inputs": inputs.map(\.0), "outputs": outputs.map(\.0),
            "seeds": seeds.map(\.0), "grads": grads.map(\.0),
            "reductionLength": reductionLength,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}

enum Goldens {
    // MARK: Files

    static func write(_ cases: [GoldenCase], kind: String, name: String, to root: URL, folder: String) throws -> [String: Any] {
        var tensors: [String: SafeTensor] = [:]
        var metadata = ["format": "swift-dmd2-golden", "version": "1", "kind": kind, "name": name,
                        "generator": "dmd2 export-goldens", "backend": Compute.backend.name]
        for c in cases {
            precondition(metadata[c.name] == nil, "export-goldens: duplicate case name '\(c.name)' in \(name)")
            metadata[c.name] = c.metadataJSON
            for (role, list) in [("in", c.inputs), ("out", c.outputs), ("seed", c.seeds), ("grad", c.grads)] {
                for (tensorName, t) in list { tensors["\(c.name).\(role).\(tensorName)"] = t.safeTensor() }
            }
        }
        let path = "\(folder)/\(name).safetensors"
        try SafeTensorsFile(metadata: metadata, tensors: tensors).write(to: root.appendingPathComponent(path))
        return ["path": path, "kind": kind, "name": name, "cases": cases.map(\.name)]
    }

    /// Seeded N(shift, std²) values, rounded through Float: every input is Float-exact, so a
    /// float32 runner starts from the same values and data movement stays bitwise comparable.
    static func randn(_ shape: [Int], _ seed: UInt64, std: Double = 1, shift: Double = 0) -> Tensor<Double> {
        var rng = RandomGenerator(seed: seed)
        return floatExact(rng.normal(shape, mean: shift, std: std))
    }

    static func floatExact(_ t: Tensor<Double>) -> Tensor<Double> { t.converted(to: Float.self).converted(to: Double.self) }

    /// A tensor's storage through `body` (primitives take buffers).
    static func filled(_ shape: [Int], _ body: (UnsafeMutableBufferPointer<Double>) -> Void) -> Tensor<Double> {
        var t = Tensor<Double>.zeros(shape)
        t.withUnsafeMutableBufferPointer { body($0) }
        return t
    }

    // MARK: Primitives

    static func primitiveFiles(seed: UInt64) -> [(name: String, cases: [GoldenCase])] {
        let b = Compute.backend
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
                inputs: [("A", A), ("B", B), ("C", C0)], outputs: [("C", C)], reductionLength: k + 1))
        }
        files.append(("gemm", gemm))

        var unary: [GoldenCase] = []
        for op in UnaryOp.allCases {
            var x = randn([16], next(), std: 2)
            if op == .log || op == .sqrt { x = floatExact(filled([16]) { y in x.withUnsafeBufferPointer { b.unary(.abs, $0, y) } } + 0.1) }
            let y = filled([16]) { y in x.withUnsafeBufferPointer { b.unary(op, $0, y) } }
            unary.append(GoldenCase(name: op.rawValue, parameters: ["op": op.rawValue], inputs: [("x", x)], outputs: [("y", y)], reductionLength: 1))
        }
        files.append(("unary", unary))

        var binary: [GoldenCase] = []
        for op in BinaryOp.allCases {
            let a = randn([16], next(), std: 2)
            var c = randn([16], next(), std: 2)
            if op == .div { c = floatExact(filled([16]) { y in c.withUnsafeBufferPointer { b.unary(.abs, $0, y) } } + 0.5) }
            let y = filled([16]) { y in a.withUnsafeBufferPointer { ap in c.withUnsafeBufferPointer { b.binary(op, ap, $0, y) } } }
            binary.append(GoldenCase(name: op.rawValue, parameters: ["op": op.rawValue], inputs: [("a", a), ("b", c)], outputs: [("y", y)], reductionLength: 1))
        }
        files.append(("binary", binary))

        let ax = randn([10], next())
        files.append(("affine", [GoldenCase(
            name: "c0", parameters: ["scale": -1.75, "shift": 0.3125], inputs: [("x", ax)],
            outputs: [("y", filled([10]) { y in ax.withUnsafeBufferPointer { b.affine($0, scale: -1.75, shift: 0.3125, y) } })],
            reductionLength: 1)]))

        let nx = Tensor<Double>(shape: [8], scalars: [1.5, .nan, .infinity, -.infinity, 0, -2.25, .nan, 0x1p100])
        files.append(("nanToNum", [GoldenCase(
            name: "c0", parameters: ["nan": 0.5, "posInf": 7.0, "negInf": -8.0], inputs: [("x", nx)],
            outputs: [("y", filled([8]) { y in nx.withUnsafeBufferPointer { b.nanToNum($0, nan: 0.5, posInf: 7, negInf: -8, y) } })],
            reductionLength: 0)]))

        var sumAxis: [GoldenCase] = []
        for (index, (outer, reduced, inner)) in [(2, 5, 3), (1, 300, 1), (4, 1, 2)].enumerated() {
            let x = randn([outer * reduced * inner], next())
            sumAxis.append(GoldenCase(
                name: "c\(index)", parameters: ["outer": outer, "reduced": reduced, "inner": inner], inputs: [("x", x)],
                outputs: [("y", filled([outer, inner]) { y in x.withUnsafeBufferPointer { b.sumAxis($0, outer: outer, reduced: reduced, inner: inner, y) } })],
                reductionLength: reduced))
        }
        files.append(("sumAxis", sumAxis))

        let sx = randn([1000], next(), shift: 0.5), dx = randn([1000], next())
        files.append(("sum", [GoldenCase(name: "c0", inputs: [("x", sx)],
                                         outputs: [("y", Tensor(shape: [], scalars: [sx.withUnsafeBufferPointer { b.sum($0) }]))],
                                         reductionLength: 1000)]))
        files.append(("dot", [GoldenCase(name: "c0", inputs: [("a", sx), ("b", dx)],
                                         outputs: [("y", Tensor(shape: [], scalars: [sx.withUnsafeBufferPointer { ap in dx.withUnsafeBufferPointer { b.dot(ap, $0) } }]))],
                                         reductionLength: 1000)]))

        var permute: [GoldenCase] = []
        for (index, (shape, permutation)) in [([2, 3, 4], [2, 0, 1]), ([2, 1, 3, 2, 2], [4, 0, 3, 1, 2]), ([5], [0])].enumerated() {
            let x = randn(shape, next())
            permute.append(GoldenCase(
                name: "c\(index)", parameters: ["shape": shape, "permutation": permutation], inputs: [("x", x)],
                outputs: [("y", filled(permutation.map { shape[$0] }) { y in x.withUnsafeBufferPointer { b.permute($0, shape: shape, permutation: permutation, y) } })],
                reductionLength: 0))
        }
        files.append(("permute", permute))

        var broadcast: [GoldenCase] = []
        for (index, (shape, outShape)) in [([1, 3, 1], [2, 3, 4]), ([2, 1], [2, 5]), ([1], [3])].enumerated() {
            let x = randn(shape, next())
            broadcast.append(GoldenCase(
                name: "c\(index)", parameters: ["shape": shape, "outShape": outShape], inputs: [("x", x)],
                outputs: [("y", filled(outShape) { y in x.withUnsafeBufferPointer { b.broadcast($0, shape: shape, to: outShape, y) } })],
                reductionLength: 0))
        }
        files.append(("broadcast", broadcast))

        let cx = randn([40], next()), cy0 = randn([40], next())
        var cy = cy0
        cx.withUnsafeBufferPointer { xp in
            cy.withUnsafeMutableBufferPointer { b.copyRows(xp, xStride: 5, xOffset: 1, $0, yStride: 6, yOffset: 2, rows: 3, count: 4) }
        }
        files.append(("copyRows", [GoldenCase(
            name: "c0", parameters: ["xStride": 5, "xOffset": 1, "yStride": 6, "yOffset": 2, "rows": 3, "count": 4],
            inputs: [("x", cx), ("y", cy0)], outputs: [("y", cy)], reductionLength: 0)]))

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
            im2col.append(GoldenCase(name: "c\(index)", parameters: params, inputs: [("x", x), ("col", col0)], outputs: [("col", col)], reductionLength: 0))
            let dcol = randn([rows, ldcol], next()), x0 = randn([C, H, W], next())
            var xOut = x0
            dcol.withUnsafeBufferPointer { cp in
                xOut.withUnsafeMutableBufferPointer { b.col2im(cp.baseAddress!, ldcol: ldcol, C: C, H: H, W: W, kernel: k, stride: st, padding: p, $0.baseAddress!) }
            }
            let taps = ((k + st - 1) / st) * ((k + st - 1) / st)
            col2im.append(GoldenCase(name: "c\(index)", parameters: params, inputs: [("col", dcol), ("x", x0)], outputs: [("x", xOut)], reductionLength: taps + 1))
        }
        files.append(("im2col", im2col))
        files.append(("col2im", col2im))

        let (P, H, W) = (3, 4, 6)
        let px = randn([P, H, W], next()), pdy = randn([P, H / 2, W / 2], next())
        let ux = randn([P, H / 2, W / 2], next()), udy = randn([P, H, W], next())
        let planes: [String: Any] = ["planes": P, "H": H, "W": W]
        let half: [String: Any] = ["planes": P, "H": H / 2, "W": W / 2]
        files.append(("avgPool2x2", [GoldenCase(name: "c0", parameters: planes, inputs: [("x", px)],
            outputs: [("y", filled([P, H / 2, W / 2]) { y in px.withUnsafeBufferPointer { b.avgPool2x2($0, planes: P, H: H, W: W, y) } })], reductionLength: 4)]))
        files.append(("avgPool2x2Backward", [GoldenCase(name: "c0", parameters: planes, inputs: [("dy", pdy)],
            outputs: [("dx", filled([P, H, W]) { y in pdy.withUnsafeBufferPointer { b.avgPool2x2Backward($0, planes: P, H: H, W: W, y) } })], reductionLength: 0)]))
        files.append(("upsampleNearest2x", [GoldenCase(name: "c0", parameters: half, inputs: [("x", ux)],
            outputs: [("y", filled([P, H, W]) { y in ux.withUnsafeBufferPointer { b.upsampleNearest2x($0, planes: P, H: H / 2, W: W / 2, y) } })], reductionLength: 0)]))
        files.append(("upsampleNearest2xBackward", [GoldenCase(name: "c0", parameters: half, inputs: [("dy", udy)],
            outputs: [("dx", filled([P, H / 2, W / 2]) { y in udy.withUnsafeBufferPointer { b.upsampleNearest2xBackward($0, planes: P, H: H / 2, W: W / 2, y) } })], reductionLength: 4)]))

        // GroupNorm: N 2, C 6, L 5, G 3, eps 1e-5, with γ and β.
        let (gN, gC, gL, gG) = (2, 6, 5, 3)
        let gx = randn([gN, gC, gL], next(), std: 2, shift: 0.7), gamma = randn([gC], next(), std: 0.2, shift: 1), beta = randn([gC], next(), std: 0.2)
        var gy = Tensor<Double>.zeros([gN, gC, gL]), mean = Tensor<Double>.zeros([gN, gG]), rstd = Tensor<Double>.zeros([gN, gG])
        gx.withUnsafeBufferPointer { xp in
            gamma.withUnsafeBufferPointer { gp in
                beta.withUnsafeBufferPointer { bp in
                    gy.withUnsafeMutableBufferPointer { yp in
                        mean.withUnsafeMutableBufferPointer { mp in
                            rstd.withUnsafeMutableBufferPointer { rp in
                                b.groupNorm(xp, N: gN, C: gC, L: gL, groups: gG, eps: 1e-5, gamma: gp, beta: bp, yp, mean: mp, rstd: rp)
                            }
                        }
                    }
                }
            }
        }
        let normParams: [String: Any] = ["N": gN, "C": gC, "L": gL, "groups": gG, "eps": 1e-5]
        files.append(("groupNorm", [GoldenCase(name: "c0", parameters: normParams, inputs: [("x", gx), ("gamma", gamma), ("beta", beta)],
                                               outputs: [("y", gy), ("mean", mean), ("rstd", rstd)], reductionLength: gC / gG * gL)]))
        let gdy = randn([gN, gC, gL], next())
        var gdx = Tensor<Double>.zeros([gN, gC, gL]), dGamma = Tensor<Double>.zeros([gC]), dBeta = Tensor<Double>.zeros([gC])
        gx.withUnsafeBufferPointer { xp in
            gdy.withUnsafeBufferPointer { dyp in
                gamma.withUnsafeBufferPointer { gp in
                    mean.withUnsafeBufferPointer { mp in
                        rstd.withUnsafeBufferPointer { rp in
                            gdx.withUnsafeMutableBufferPointer { dxp in
                                dGamma.withUnsafeMutableBufferPointer { dgp in
                                    dBeta.withUnsafeMutableBufferPointer { dbp in
                                        b.groupNormBackward(xp, dyp, N: gN, C: gC, L: gL, groups: gG, gamma: gp, mean: mp, rstd: rp, dxp, dGamma: dgp, dBeta: dbp)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        files.append(("groupNormBackward", [GoldenCase(
            name: "c0", parameters: normParams, inputs: [("x", gx), ("dy", gdy), ("gamma", gamma), ("mean", mean), ("rstd", rstd)],
            outputs: [("dx", gdx), ("dGamma", dGamma), ("dBeta", dBeta)], reductionLength: max(gC / gG * gL, gN * gL))]))

        let (rows, cols) = (3, 300)
        let sx2 = randn([rows, cols], next(), std: 3)
        let sy = filled([rows, cols]) { y in sx2.withUnsafeBufferPointer { b.softmaxRows($0, rows: rows, cols: cols, y) } }
        let sdy = randn([rows, cols], next())
        files.append(("softmaxRows", [GoldenCase(name: "c0", parameters: ["rows": rows, "cols": cols], inputs: [("x", sx2)],
                                                 outputs: [("y", sy)], reductionLength: cols)]))
        files.append(("softmaxRowsBackward", [GoldenCase(
            name: "c0", parameters: ["rows": rows, "cols": cols], inputs: [("y", sy), ("dy", sdy)],
            outputs: [("dx", filled([rows, cols]) { dx in sy.withUnsafeBufferPointer { yp in sdy.withUnsafeBufferPointer { b.softmaxRowsBackward(yp, $0, rows: rows, cols: cols, dx) } } })],
            reductionLength: cols)]))
        return files
    }

    // MARK: Ops

    /// An op case: forward on the inputs, backward of ⟨seed, y⟩ into the differentiable inputs.
    static func opCase(_ name: String, parameters: [String: Any] = [:], inputs: [(String, Tensor<Double>)],
                       differentiable: [Bool]? = nil, reductionLength: Int, seed: UInt64,
                       _ f: ([Variable<Double>]) -> Variable<Double>) -> GoldenCase {
        let needs = differentiable ?? inputs.map { _ in true }
        let vars = zip(inputs, needs).map { Variable($0.0.1, requiresGrad: $0.1) }
        let y = f(vars)
        var rng = RandomGenerator(seed: seed)
        let upstream = floatExact(rng.normal(y.shape))
        let wanted = zip(vars, needs).filter(\.1).map(\.0)
        let grads = gradients(of: y, withRespectTo: wanted, seed: upstream)
        let gradNames = zip(inputs, needs).filter(\.1).map(\.0.0)
        return GoldenCase(name: name, parameters: parameters, inputs: inputs, outputs: [("y", y.value)], seeds: [("y", upstream)],
                          grads: Array(zip(gradNames, grads)), reductionLength: reductionLength)
    }

    static func opFiles(seed: UInt64) -> [(name: String, cases: [GoldenCase])] {
        var s = seed &* 1000 &+ 500
        func next() -> UInt64 { s &+= 1; return s }
        var files: [(String, [GoldenCase])] = []
        func file(_ name: String, _ cases: [GoldenCase]) { files.append((name, cases)) }

        // Binary ops broadcast [2, 3, 4] with [3, 1] (numpy rules).
        let a = randn([2, 3, 4], next()), bb = randn([3, 1], next())
        let positive = randn([3, 1], next()).scalars.map { Double(Float(Swift.abs($0) + 0.5)) }
        file("add", [opCase("c0", inputs: [("a", a), ("b", bb)], reductionLength: 8, seed: next()) { add($0[0], $0[1]) }])
        file("sub", [opCase("c0", inputs: [("a", a), ("b", bb)], reductionLength: 8, seed: next()) { sub($0[0], $0[1]) }])
        file("mul", [opCase("c0", inputs: [("a", a), ("b", bb)], reductionLength: 8, seed: next()) { mul($0[0], $0[1]) }])
        file("div", [opCase("c0", inputs: [("a", a), ("b", Tensor(shape: [3, 1], scalars: positive))], reductionLength: 8, seed: next()) { div($0[0], $0[1]) }])
        let x = randn([3, 4], next(), std: 1.5)
        let xPositive = Tensor(shape: [3, 4], scalars: x.scalars.map { Double(Float(Swift.abs($0) + 0.1)) })
        file("addScalar", [opCase("c0", parameters: ["c": 0.75], inputs: [("x", x)], reductionLength: 1, seed: next()) { addScalar($0[0], 0.75) }])
        file("mulScalar", [opCase("c0", parameters: ["c": -1.5], inputs: [("x", x)], reductionLength: 1, seed: next()) { mulScalar($0[0], -1.5) }])
        let unaryOps: [(String, (Variable<Double>) -> Variable<Double>)] = [
            ("neg", neg), ("exp", exp), ("square", square), ("abs", abs),
            ("sigmoid", sigmoid), ("silu", silu), ("softplus", softplus), ("tanh", tanh),
        ]
        for (name, op) in unaryOps {
            file(name, [opCase("c0", inputs: [("x", x)], reductionLength: 1, seed: next()) { op($0[0]) }])
        }
        file("log", [opCase("c0", inputs: [("x", xPositive)], reductionLength: 1, seed: next()) { log($0[0]) }])
        file("sqrt", [opCase("c0", inputs: [("x", xPositive)], reductionLength: 1, seed: next()) { sqrt($0[0]) }])

        let r = randn([2, 3, 4], next())
        file("sum", [
            opCase("axes1", parameters: ["axes": [1], "keepingDims": false], inputs: [("x", r)], reductionLength: 3, seed: next()) { sum($0[0], axes: [1]) },
            opCase("all", parameters: ["axes": NSNull(), "keepingDims": false], inputs: [("x", r)], reductionLength: 24, seed: next()) { sum($0[0]) },
        ])
        file("mean", [opCase("axes02", parameters: ["axes": [0, 2], "keepingDims": true], inputs: [("x", r)], reductionLength: 8, seed: next()) {
            mean($0[0], axes: [0, 2], keepingDims: true)
        }])
        file("matmul", [opCase("c0", inputs: [("a", randn([3, 4], next())), ("b", randn([4, 5], next()))], reductionLength: 5, seed: next()) { matmul($0[0], $0[1]) }])
        file("linear", [opCase("c0", inputs: [("x", randn([3, 4], next())), ("weight", randn([5, 4], next())), ("bias", randn([5], next()))],
                               reductionLength: 5, seed: next()) { linear($0[0], weight: $0[1], bias: $0[2]) }])

        var conv: [GoldenCase] = []
        for (name, xShape, cout, k, st, p) in [("k3s1p1", [2, 3, 5, 5], 4, 3, 1, 1), ("k4s2p1", [2, 2, 6, 4], 3, 4, 2, 1), ("k1s1p0", [2, 3, 4, 4], 5, 1, 1, 0)] {
            let cin = xShape[1]
            let L = ((xShape[2] + 2 * p - k) / st + 1) * ((xShape[3] + 2 * p - k) / st + 1)
            conv.append(opCase(name, parameters: ["stride": st, "padding": p],
                               inputs: [("x", randn(xShape, next())), ("weight", randn([cout, cin, k, k], next(), std: 1 / Double(cin * k * k).squareRoot())),
                                        ("bias", randn([cout], next()))],
                               reductionLength: max(cin * k * k, xShape[0] * L, cout * k * k), seed: next()) {
                conv2d($0[0], weight: $0[1], bias: $0[2], stride: st, padding: p)
            })
        }
        file("conv2d", conv)
        file("avgPool2x2", [opCase("c0", inputs: [("x", randn([2, 3, 4, 6], next()))], reductionLength: 4, seed: next()) { avgPool2x2($0[0]) }])
        file("upsampleNearest2x", [opCase("c0", inputs: [("x", randn([2, 3, 2, 3], next()))], reductionLength: 4, seed: next()) { upsampleNearest2x($0[0]) }])
        file("groupNorm", [opCase("c0", parameters: ["groups": 4, "eps": 1e-5],
                                  inputs: [("x", randn([2, 8, 3, 3], next(), std: 2, shift: 0.5)), ("weight", randn([8], next(), std: 0.2, shift: 1)),
                                           ("bias", randn([8], next(), std: 0.2))],
                                  reductionLength: 18, seed: next()) { groupNorm($0[0], groups: 4, weight: $0[1], bias: $0[2], eps: 1e-5) }])
        file("softmax", [
            opCase("last", parameters: ["axis": -1], inputs: [("x", randn([3, 5], next(), std: 2))], reductionLength: 5, seed: next()) { softmax($0[0], axis: -1) },
            opCase("axis1", parameters: ["axis": 1], inputs: [("x", randn([2, 3, 4], next(), std: 2))], reductionLength: 3, seed: next()) { softmax($0[0], axis: 1) },
        ])
        file("attention", [opCase("h2d4", parameters: ["heads": 2], inputs: [("qkv", randn([2, 24, 2, 3], next()))], reductionLength: 6, seed: next()) {
            attention(qkv: $0[0], heads: 2)
        }])
        let t = randn([2, 3, 4], next())
        file("reshape", [opCase("c0", parameters: ["shape": [4, 6]], inputs: [("x", t)], reductionLength: 0, seed: next()) { reshape($0[0], [4, 6]) }])
        file("permute", [opCase("c0", parameters: ["permutation": [1, 2, 0]], inputs: [("x", t)], reductionLength: 0, seed: next()) { permute($0[0], [1, 2, 0]) }])
        file("concat", [opCase("c0", parameters: ["axis": 1], inputs: [("a", t), ("b", randn([2, 1, 4], next()))], reductionLength: 0, seed: next()) {
            concat([$0[0], $0[1]], axis: 1)
        }])
        file("slice", [opCase("c0", parameters: ["axis": 2, "start": 1, "end": 3], inputs: [("x", t)], reductionLength: 0, seed: next()) {
            slice($0[0], axis: 2, range: 1 ..< 3)
        }])
        file("sinusoidalEmbedding", [opCase("c0", parameters: ["channels": 8, "maxPeriod": 10000.0],
                                            inputs: [("c", Tensor(shape: [3], scalars: [0.5, -1.25, 2.75]))], reductionLength: 4, seed: next()) {
            sinusoidalEmbedding($0[0], channels: 8, maxPeriod: 10000)
        }])
        var maskRng = RandomGenerator(seed: next())
        let mask: Tensor<Double> = dropoutMask(shape: [3, 4], p: 0.25, rng: &maskRng)
        file("dropout", [opCase("c0", parameters: ["p": 0.25], inputs: [("x", x), ("mask", mask)], differentiable: [true, false],
                                reductionLength: 1, seed: next()) { dropout($0[0], mask: $0[1].value, p: 0.25) }])
        let nonFinite = Tensor<Double>(shape: [6], scalars: [1.5, .nan, .infinity, -.infinity, -0.25, 3])
        file("nanToNum", [opCase("c0", parameters: ["nan": 0.5, "posInf": 5.0, "negInf": -5.0], inputs: [("x", nonFinite)], reductionLength: 0, seed: next()) {
            nanToNum($0[0], nan: 0.5, posInf: 5, negInf: -5)
        }])
        let pred = randn([2, 3, 2, 2], next()), target = randn([2, 3, 2, 2], next())
        file("mseLoss", [opCase("c0", inputs: [("x", pred), ("target", target)], reductionLength: 24, seed: next()) { mseLoss($0[0], $0[1]) }])
        file("weightedMSELoss", [opCase("c0", inputs: [("x", pred), ("target", target), ("weight", Tensor(shape: [2, 1, 1, 1], scalars: [0.5, 2.0]))],
                                        reductionLength: 24, seed: next()) { weightedMSELoss($0[0], $0[1], weight: $0[2]) }])
        file("softplusLoss", [opCase("c0", inputs: [("x", randn([4, 3], next(), std: 3))], reductionLength: 12, seed: next()) { softplusLoss($0[0]) }])
        let labels = [2, 0, 4]
        file("softmaxCrossEntropy", [opCase("c0", parameters: ["labels": labels], inputs: [("logits", randn([3, 5], next(), std: 2))],
                                            reductionLength: 15, seed: next()) { softmaxCrossEntropy(logits: $0[0], labels: labels) }])
        return files
    }

    // MARK: UNet

    /// The whole network: weights `weight.<name>` (EDM's state-dict keys), inputs `in.x`,
    /// `in.noise_labels` (c_noise), `in.class_labels` (one-hot; the last row zero = no label),
    /// output `out.F`, `seed.F`, and gradients `grad.x`, `grad.<name>` of ⟨seed, F⟩.
    static func writeUNet(config: UNetConfig, configName: String, batch N: Int, seed: UInt64, to root: URL) throws -> [String: Any] {
        // Random non-zero weights (`UNetConfig.randomNonZeroParameters`, Float-exact): the training
        // initialisation's zero conv1/proj/out_conv would hide every layer before them.
        var draw = RandomGenerator(seed: seed &+ 1)
        let net = UNet<Double>(config: config, parameters: config.randomNonZeroParameters(rng: &draw))
        let R = config.resolution
        let x = Variable(floatExact(draw.normal([N, config.inChannels, R, R])), requiresGrad: true)
        let noise = floatExact(Tensor<Double>(shape: [N], scalars: (0..<N).map { Double.log([2.5, 0.05, 12, 0.4][$0 % 4]) / 4 }))
        var labels = Tensor<Double>.zeros([N, max(1, config.labelDim)])
        if config.labelDim > 0 { for n in 0..<(N > 1 ? N - 1 : N) { labels[n, (3 + 4 * n) % config.labelDim] = 1 } }
        let F = net(x, noiseLabels: noise, classLabels: config.labelDim > 0 ? labels : nil)
        let upstream = floatExact(draw.normal(F.shape))
        let grads = gradients(of: F, withRespectTo: [x] + net.parameters.variables, seed: upstream)

        var tensors: [String: SafeTensor] = [
            "in.x": x.value.safeTensor(), "in.noise_labels": noise.safeTensor(), "out.F": F.value.safeTensor(),
            "seed.F": upstream.safeTensor(), "grad.x": grads[0].safeTensor(),
        ]
        if config.labelDim > 0 { tensors["in.class_labels"] = labels.safeTensor() }
        for (i, name) in net.parameters.names.enumerated() {
            tensors["weight.\(name)"] = net.parameters.variables[i].value.safeTensor()
            tensors["grad.\(name)"] = grads[i + 1].safeTensor()
        }
        let configJSON = String(decoding: try JSONEncoder.sorted.encode(config), as: UTF8.self)
        // The longest sum behind an output: the widest conv input (C·9) or a weight gradient (N·R²).
        let layout = UNetLayout(config)
        let widest = layout.parameterEntries.filter { $0.shape.count == 4 }.map { $0.shape[1] * $0.shape[2] * $0.shape[3] }.max() ?? 1
        let reduction = max(widest, N * R * R)
        let metadata = ["format": "swift-dmd2-golden", "version": "1", "kind": "unet", "name": configName,
                        "generator": "dmd2 export-goldens", "backend": Compute.backend.name, "config": configJSON,
                        "batch": "\(N)", "reductionLength": "\(reduction)", "parameters": "\(net.parameters.count)"]
        let path = "unet/\(configName).safetensors"
        try SafeTensorsFile(metadata: metadata, tensors: tensors).write(to: root.appendingPathComponent(path))
        return ["path": path, "kind": "unet", "name": configName, "cases": ["forward_backward"],
                "config": configJSON, "batch": N, "reductionLength": reduction, "parameters": net.parameters.count]
    }
}

extension JSONEncoder {
    /// Sorted keys, no spaces: the form checkpoints store a config in.
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
