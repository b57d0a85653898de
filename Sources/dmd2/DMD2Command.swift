// `dmd2`: the command-line tool. One subcommand per job.
import ArgumentParser
import DMD2Checks
import DMD2Core
import DMD2CUDA

@main
struct DMD2Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmd2",
        abstract: "DMD2 (Improved Distribution Matching Distillation) and its EDM teacher, on the CPU.",
        subcommands: [Demo.self, GradCheckCommand.self, Info.self, PrepareData.self, TrainTeacher.self, Sample.self, TrainClassifier.self, Eval.self, Distill.self, MakePairs.self, Convert.self, Denoise.self, PlotLog.self, Report.self, Toy.self, ExportGoldens.self],
        defaultSubcommand: Demo.self)
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for parallel loops and BLIS, 1…\(Threads.maximum) (default: $DMD2_NUM_THREADS or all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, !(1...Threads.maximum).contains(threads) {
            throw ValidationError("--threads must lie in 1…\(Threads.maximum) (the cap: more never helps on a CPU, and BLIS's OpenMP runtime crashes with tens of thousands), got \(threads)")
        }
    }

    @Option(name: .long, help: "Compute backend: cpu, reference, cuda, cuda-emu, shadow (cpu checked against reference, stops at the first divergence) or shadow:NAME (default: $DMD2_BACKEND or cpu).")
    var backend: String?

    func apply() {
        if let threads { Threads.count = max(1, threads) }
        CUDABackend.register()
        CheckBackends.register()
        if let choice = backend ?? BackendRegistry.environmentChoice {
            do {
                try BackendRegistry.select(choice)
            } catch {
                DMD2Command.exit(withError: ValidationError("backend '\(choice)': \(error)"))
            }
        }
    }
}
