// The checks `dmd2 gradcheck` runs, one registry over every family, and a readable report.
//
// Families (what a green `dmd2 gradcheck` says about each):
//   op        every op of `OpCatalog`: full Jacobian, vᵀJu (two directions), adjoint for linear
//             inputs, Float vs Double (GradCheck.all on each `AllOpCases` case)
//   backend   every op case on the CPU backend against the plain `ReferenceBackend`: outputs and
//             input gradients, Double (1e-12·√n) and Float (the Float tolerance)
//   layer     ADM's UNet blocks (plain with dropout, down, up, attention, 1×1 skip) in the space
//             of input, embedding and every parameter: vᵀJu, Float vs Double; the smallest
//             block's full Jacobian
//   unet      the whole UNet F (tiny config with labels and dropout; `small16`), the encoder
//             features the GAN head reads, and the EDM loss: vᵀJu in input-and-parameter space
//   loss      DMD2's four losses in the space of the parameters each trains (L_DM through its
//             surrogate, L_fake, L_D, L_G), with which networks may and may not get gradients
//   gan-head  the GAN classifier head: full Jacobian in its features, vᵀJu with its parameters
//   adamw     three AdamW steps against an independent scalar implementation of the update
import DMD2Core
import Foundation

/// One named check of a family; `run` throws a `GradCheckFailure` naming what differs.
public struct Check: @unchecked Sendable {
    public var family: String
    /// The op or component checked (`--op` filters on it).
    public var op: String
    /// The full name (op and instance).
    public var name: String
    public var run: () throws -> CheckStats

    public init(family: String, op: String, name: String, run: @escaping () throws -> CheckStats) {
        self.family = family
        self.op = op
        self.name = name
        self.run = run
    }
}

public enum CheckCatalog {
    /// Family names in report order.
    public static let families = ["op", "backend", "layer", "unet", "loss", "gan-head", "adamw"]

    /// Every check, family by family.
    public static var all: [Check] {
        AllOpCases.all.map { c in Check(family: "op", op: c.op, name: c.label) { try GradCheck.all(c) } }
            + BackendChecks.all + LayerChecks.all + UNetChecks.all + LossChecks.all + GANHeadChecks.all + AdamWChecks.all
    }

    /// The checks whose family is `family` (when given) and whose op contains `op` (when given).
    public static func select(family: String? = nil, op: String? = nil) -> [Check] {
        all.filter { c in (family == nil || c.family == family!) && (op == nil || c.op.contains(op!)) }
    }
}

public struct GradCheckReportLine: Sendable {
    public var family: String
    public var label: String
    public var passed: Bool
    public var message: String
    public var seconds: Double
}

public enum GradCheckReport {
    /// Run every check, calling `progress` after each; returns one line per check.
    public static func run(_ checks: [Check], progress: (GradCheckReportLine, Int, Int) -> Void = { _, _, _ in }) -> [GradCheckReportLine] {
        var lines: [GradCheckReportLine] = []
        for (i, c) in checks.enumerated() {
            let start = Date()
            var line = GradCheckReportLine(family: c.family, label: c.name, passed: true, message: "", seconds: 0)
            do { line.message = "\(try c.run())" } catch {
                line.passed = false
                line.message = "\(error)"
            }
            line.seconds = Date().timeIntervalSince(start)
            lines.append(line)
            progress(line, i + 1, checks.count)
        }
        return lines
    }

    /// Run the op cases only (as before the registry): one line per case.
    public static func run(_ cases: [OpCase], progress: (GradCheckReportLine, Int, Int) -> Void = { _, _, _ in }) -> [GradCheckReportLine] {
        run(cases.map { c in Check(family: "op", op: c.op, name: c.label) { try GradCheck.all(c) } }, progress: progress)
    }
}
