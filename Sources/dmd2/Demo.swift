// `dmd2 demo`: the main job on the embedded default. Until the EDM teacher and DMD2 land,
// it demonstrates the core: the full gradient-check report over every op.
import ArgumentParser
import DMD2Core

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job on the embedded default (currently: the core's gradient-check report).")

    @OptionGroup var common: CommonOptions

    func run() throws {
        common.apply()
        let failed = GradCheckRunner.run(filter: nil)
        if failed > 0 { throw ExitCode(1) }
    }
}
