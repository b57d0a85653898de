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
// implementation against every file. The cases are the checking library's (DMD2Checks:
// GoldenCases.primitives, GoldenCases.ops, K from Tolerance.table); this command writes them.
//
// Inside a file, tensor names are `<case>.<role>.<name>` with role `in` (inputs; for in/out
// buffers the content before the call), `out` (outputs), `seed` (the upstream gradient of an op)
// or `grad` (an op's input gradients: ∂⟨seed, out⟩/∂in). The file metadata holds `format`
// "swift-dmd2-golden", `version` "1", `kind`, `name`, and one key per case whose value is that
// case's JSON: parameters, input/output names, and `reductionLength` K for the tolerance
// |got − golden| ≤ 64·u·√K·max|golden| (u of the runner's precision; K = 0: exact).
import ArgumentParser
import DMD2
import DMD2Checks
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

        for (name, cases) in GoldenCases.primitives(seed: seed) {
            entries.append(try Goldens.write(cases, kind: "primitive", name: name, to: root, folder: "primitives"))
        }
        let ops = GoldenCases.ops(seed: seed)
        for (name, cases) in ops {
            entries.append(try Goldens.write(cases, kind: "op", name: name, to: root, folder: "ops"))
        }
        let missingOps = OpCatalog.all.filter { op in !ops.contains { $0.name == op } }
        if !missingOps.isEmpty { print("export-goldens: warning: no golden for ops \(missingOps) (add a case in Sources/DMD2Checks/Cases/GoldenOpCases.swift)") }
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
        let x = Variable(GoldenCases.floatExact(draw.normal([N, config.inChannels, R, R])), requiresGrad: true)
        let noise = GoldenCases.floatExact(Tensor<Double>(shape: [N], scalars: (0..<N).map { Double.log([2.5, 0.05, 12, 0.4][$0 % 4]) / 4 }))
        var labels = Tensor<Double>.zeros([N, max(1, config.labelDim)])
        if config.labelDim > 0 { for n in 0..<(N > 1 ? N - 1 : N) { labels[n, (3 + 4 * n) % config.labelDim] = 1 } }
        let F = net(x, noiseLabels: noise, classLabels: config.labelDim > 0 ? labels : nil)
        let upstream = GoldenCases.floatExact(draw.normal(F.shape))
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
