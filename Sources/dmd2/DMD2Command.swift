// `dmd2`: the command-line tool. One subcommand per job.
import ArgumentParser
import DMD2Core

@main
struct DMD2Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmd2",
        abstract: "DMD2 (Improved Distribution Matching Distillation) and its EDM teacher, on the CPU.",
        subcommands: [Demo.self, GradCheckCommand.self, Info.self, PrepareData.self, TrainTeacher.self, Sample.self, Toy.self],
        defaultSubcommand: Demo.self)
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for parallel loops and BLIS (default: $DMD2_NUM_THREADS or all cores).")
    var threads: Int?

    func apply() {
        if let threads { Threads.count = max(1, threads) }
    }
}
