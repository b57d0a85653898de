// `dmd2 gradcheck`: every check of the checking library (DMD2Checks) as a report — ops, the
// CPU-vs-reference comparison, UNet layers, the whole UNet, DMD2's losses, the GAN head, AdamW.
import ArgumentParser
import DMD2Core
import DMD2Ops
import Foundation
import DMD2Checks

struct GradCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check every backward pass in Double: ops (full Jacobian, vᵀJu, adjoint, Float vs Double), the CPU backend against the reference, UNet layers, the UNet, DMD2's four losses, the GAN head, AdamW's update.",
        discussion: """
            Finite differences are Richardson-extrapolated over a step sweep and compared within \
            their own error bound, which must resolve the derivative to 1e-5 of its scale, so a \
            1e-4 relative error in any backward fails (Sources/DMD2Checks/GradCheck.swift, docs/CHECKS.md). \
            Exit status 1 when any check fails.
            """)

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "Only checks whose op or component name contains this string (e.g. conv, silu, UNetBlock, L_D).")
    var op: String?
    @Option(name: .long, help: "Only this family: \(CheckCatalog.families.joined(separator: ", ")).")
    var family: String?
    @Flag(name: .long, help: "List the checks (family, op, name) and exit.")
    var list = false

    func validate() throws {
        if let family, !CheckCatalog.families.contains(family) {
            throw ValidationError("unknown family '\(family)'; the families are \(CheckCatalog.families.joined(separator: ", "))")
        }
    }

    func run() throws {
        common.apply()
        if list {
            let checks = CheckCatalog.select(family: family, op: op)
            for c in checks { print("\(c.family.padding(toLength: 9, withPad: " ", startingAt: 0)) \(c.name)") }
            print("\(checks.count) checks")
            return
        }
        let failed = GradCheckRunner.run(family: family, filter: op)
        if failed > 0 { throw ExitCode(1) }
    }
}

enum GradCheckRunner {
    /// Runs the report, prints it, returns the number of failures (plus uncovered ops).
    static func run(family: String? = nil, filter: String?) -> Int {
        let checks = CheckCatalog.select(family: family, op: filter)
        if checks.isEmpty {
            print("no check matches\(family.map { " family '\($0)'" } ?? "")\(filter.map { " op '\($0)'" } ?? ""); see `dmd2 gradcheck --list`")
            return 1
        }
        let families = CheckCatalog.families.filter { f in checks.contains { $0.family == f } }
        print("Gradient checks: \(checks.count) checks in \(families.joined(separator: ", ")); Double; finite differences Richardson-extrapolated over steps \(GradCheck.steps), resolution ≤ \(GradCheck.requiredResolution); threads \(Threads.count)")
        let start = Date()
        let lines = GradCheckReport.run(checks) { line, i, n in
            let mark = line.passed ? "✓" : "✗"
            print(String(format: "[%3d/%3d] %@ %@ %@  (%.2fs)", i, n, mark, line.family, line.label, line.seconds))
            print("          \(line.message)")
        }
        let failed = lines.filter { !$0.passed }
        var missingCount = 0
        if family == nil && filter == nil {
            let missing = Set(OpCatalog.all).subtracting(AllOpCases.all.map(\.op))
            if !missing.isEmpty { print("ops with no gradient check: \(missing.sorted())") }
            missingCount = missing.count
        }
        print(String(format: "%d passed, %d failed in %.1f s", lines.count - failed.count, failed.count, Date().timeIntervalSince(start)))
        for line in failed { print("FAILED \(line.family): \(line.label)") }
        return failed.count + missingCount
    }
}
