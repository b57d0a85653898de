// `dmd2 demo`: the main job on the embedded default — the whole pipeline on Fashion-MNIST at
// 64×64 with the cpu64Tiny teacher, each stage a subcommand with the arguments printed, so a
// reader can rerun any stage by hand:
//
//   1. prepare-data     Fashion-MNIST (Debian's dataset-fashion-mnist) → data/fashion-mnist-64
//   2. teacher          the shipped one (models/teacher-cpu64Tiny-fashion64.safetensors, 700
//                       steps), or with --train-teacher: train-teacher   → <out>/teacher
//   3. distill          DMD2 one-step generator                          → <out>/distill
//   4. sample           grids: teacher (Heun) and generator (one step)   → <out>/*.png
//   5. eval             metrics of both on the test split               → <out>/eval-*/metrics.json
//
// Every stage resumes: run the demo again after an interruption and it continues where its
// checkpoints are (a finished stage is skipped). `--quick` runs the same pipeline with tiny
// numbers (minutes) to check that everything works on a new machine.
import ArgumentParser
import DMD2
import DMD2Core
import EDM
import Foundation

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job: prepare Fashion-MNIST, take the shipped cpu64Tiny EDM teacher (or train one), distil it with DMD2, sample and evaluate both (resumable).",
        discussion: "Each stage prints the subcommand it runs. Stages with finished checkpoints are skipped, interrupted ones resume. The defaults take about 1.5 hours on 2 cores (plus ~1 hour with --train-teacher); --quick takes minutes.")

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "Prepared data folder (made by prepare-data when missing).")
    var data: String = "data/fashion-mnist-64"
    @Option(name: .long, help: "Run folder of the demo.")
    var out: String = "runs/demo"
    @Flag(name: .long, help: "Train the teacher (cpu64Tiny, --teacher-steps) instead of starting from the shipped one.")
    var trainTeacher = false
    @Option(name: .long, help: "The shipped teacher the demo starts from without --train-teacher.")
    var shippedTeacher: String = "models/teacher-cpu64Tiny-fashion64.safetensors"
    @Option(name: .long, help: "Teacher training steps (batch 16) with --train-teacher.")
    var teacherSteps: Int = 2000
    @Option(name: .long, help: "DMD2 iterations (batch 8, TTUR ratio 5).")
    var distillIterations: Int = 1000
    @Option(name: .long, help: "DMD2 learning rate of both optimizers (the paper's 2e-6 is for 100k+ iterations at batch 280).")
    var distillLR: Double = 2e-4
    @Option(name: .long, help: "Images per model for the metrics.")
    var evalCount: Int = 200
    @Flag(name: .long, help: "Tiny numbers (20 teacher steps, 10 DMD2 iterations, 20 images) to check the pipeline.")
    var quick = false
    @Flag(name: .long, help: "Skip the evaluation stage.")
    var noEval = false

    func validate() throws {
        guard teacherSteps >= 1, distillIterations >= 1, distillLR > 0, evalCount >= 2 else {
            throw ValidationError("--teacher-steps and --distill-iterations must be ≥ 1, --distill-lr > 0, --eval-count ≥ 2")
        }
    }

    func run() throws {
        common.apply()
        let fm = FileManager.default
        let threads = ["--threads", String(Threads.count)]
        let steps = quick ? 20 : teacherSteps, iterations = quick ? 10 : distillIterations, count = quick ? 20 : evalCount
        let teacher = trainTeacher ? "\(out)/teacher" : shippedTeacher, distill = "\(out)/distill"
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)

        stage(1, "data")
        if fm.fileExists(atPath: "\(data)/train/dataset.json") && fm.fileExists(atPath: "\(data)/test/dataset.json") {
            print("\(data) is prepared; skipped")
        } else {
            try runCommand(PrepareData.self, ["--out", data] + threads)
        }

        stage(2, "teacher")
        if !trainTeacher {
            guard fm.fileExists(atPath: shippedTeacher) else {
                throw CLIError("no shipped teacher at \(shippedTeacher) (run from the repository root, or pass --train-teacher to train one)")
            }
            print("using the shipped teacher \(shippedTeacher) (cpu64Tiny, 700 steps of batch 16 on Fashion-MNIST 64×64; --train-teacher trains one)")
        } else {
            let resumeTeacher = TeacherCheckpoint.latest(in: URL(fileURLWithPath: teacher)) != nil
            try runCommand(TrainTeacher.self, ["--data", data, "--preset", "cpu64Tiny", "--batch", "16", "--lr", "1e-3",
                                              "--warm-up", quick ? "5" : "100", "--steps", String(steps),
                                              "--checkpoint-every", quick ? "10" : "100", "--keep", "2", "--seed", "1",
                                              "--out", teacher] + (resumeTeacher ? ["--resume"] : []) + threads)
        }

        stage(3, "distill")
        try runCommand(Distill.self, ["--teacher", teacher, "--data", data, "--batch", "8", "--iterations", String(iterations),
                                     "--lr", String(distillLR), "--warm-up", quick ? "2" : "20", "--checkpoint-every", quick ? "5" : "100", "--keep", "2",
                                     "--seed", "1", "--run", distill] + threads)

        stage(4, "sample")
        try runCommand(Sample.self, ["--checkpoint", teacher, "--steps", "18", "--per-class", "8", "--out", "\(out)/teacher-heun18.png"] + threads)
        try runCommand(Sample.self, ["--generator", distill, "--per-class", "8", "--out", "\(out)/generator-1step.png"] + threads)

        guard !noEval else { return print("\ndone (evaluation skipped): \(out)/teacher-heun18.png, \(out)/generator-1step.png") }
        stage(5, "eval")
        let evalCommon = ["--data", data, "--count", String(count), "--reference-count", quick ? "50" : "1000",
                          "--kid-subset-size", String(min(count, 100))] + threads
        try runCommand(Eval.self, ["--checkpoint", teacher, "--steps", "18", "--out", "\(out)/eval-teacher"] + evalCommon)
        try runCommand(Eval.self, ["--generator", distill, "--out", "\(out)/eval-generator"] + evalCommon)
        print("\ndone: \(out)/teacher-heun18.png, \(out)/generator-1step.png, \(out)/eval-{teacher,generator}/metrics.json")
    }

    func stage(_ n: Int, _ name: String) {
        print("\n== stage \(n)/5: \(name) ==")
    }

    /// Parse and run a subcommand, printing its command line first.
    func runCommand<C: ParsableCommand>(_ type: C.Type, _ arguments: [String]) throws {
        print("$ dmd2 \(C.configuration.commandName ?? "") \(arguments.joined(separator: " "))")
        var command = try type.parseAsRoot(arguments) as! C
        try command.run()
    }
}
