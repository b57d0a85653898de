// `dmd2 gradcheck`: the exact gradient checks of every op, as a report.
import ArgumentParser
import DMD2Core
import DMD2Ops
import Foundation
import DMD2Checks

struct GradCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check every op's backward pass against finite differences in Double (full Jacobian, vᵀJu, adjoint) and its Float kernels against Double.")

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "Only ops whose name contains this string.")
    var op: String?

    func run() throws {
        common.apply()
        let failed = GradCheckRunner.run(filter: op)
        if failed > 0 { throw ExitCode(1) }
    }
}

enum GradCheckRunner {
    /// Runs the report, prints it, returns the number of failures.
    static func run(filter: String?) -> Int {
        let cases = AllOpCases.all.filter { filter == nil || $0.op.contains(filter!) }
        print("Gradient checks: \(cases.count) cases over \(Set(cases.map(\.op)).count) ops, Double, eps \(GradCheck.eps), atol \(GradCheck.atol), rtol \(GradCheck.rtol); threads \(Threads.count)")
        let lines = GradCheckReport.run(cases) { line, i, n in
            let mark = line.passed ? "✓" : "✗"
            print(String(format: "[%3d/%3d] %@ %@  (%.2fs)", i, n, mark, line.label, line.seconds))
            if !line.passed { print("          \(line.message)") }
        }
        let failed = lines.filter { !$0.passed }.count
        let missing = Set(OpCatalog.all).subtracting(AllOpCases.all.map(\.op))
        if filter == nil && !missing.isEmpty { print("ops with no gradient check: \(missing.sorted())") }
        print("\(lines.count - failed) passed, \(failed) failed")
        return failed + (filter == nil ? missing.count : 0)
    }
}
