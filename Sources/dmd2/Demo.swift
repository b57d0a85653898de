// `dmd2 demo`: the main job on the embedded default — the whole pipeline on Fashion-MNIST at
// 64×64 with the cpu64Tiny teacher, each stage a subcommand with the arguments printed, so a
// reader can rerun any stage by hand:
//
//   1. prepare-data     Fashion-MNIST (Debian's dataset-fashion-mnist) → data/fashion-mnist-64
//   2. teacher          the shipped one (models/teacher-cpu64Tiny-fashion64.safetensors, 700
//                       steps), or with --train-teacher: train-teacher   → <out>/teacher
//   3. distill          DMD2 generator, a few minutes (default: 4 steps,
//                       200 iterations — it beats the teacher's Heun-18
//                       on FID; --generator-steps 1 for one step)        → <out>/distill
//   4. sample           grids: teacher (Heun 18) and the student          → <out>/*.png
//   5. eval             metrics of the teacher (Heun 4 and 18) and the
//                       student on the test split, and one table         → <out>/metrics.md
//
// Every stage resumes: run the demo again after an interruption and it continues where its
// checkpoints are (a finished stage is skipped). `--quick` runs the same pipeline with tiny
// numbers (minutes) to check that everything works on a new machine.
import ArgumentParser
import DMD2
import DMD2Core
import EDM
import EDMTraining
import Foundation

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job: prepare Fashion-MNIST, take the shipped cpu64Tiny EDM teacher (or train one), distil it with DMD2, sample and evaluate both (resumable).",
        discussion: "Each stage prints the subcommand it runs. Stages with finished checkpoints are skipped, interrupted ones resume. The defaults took 14.3 minutes on 2 cores (quiet machine, DMD2_NUM_THREADS=2: distillation 6m40s, sampling and metrics the rest), with the test set's Inception features already cached; computing them the first time adds several minutes, plus ~1 hour with --train-teacher; --quick checks the pipeline in a few minutes. The longer runs and the paper's findings are in docs/guide/.")

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
    var distillIterations: Int = 200
    @Option(name: .long, help: "Generator steps of the student (4: DMD2's few-step generator with backward simulation; 1: one step).")
    var generatorSteps: Int = 4
    @Option(name: .long, help: "DMD2 learning rate of both optimizers (the paper's 2e-6 is for 100k+ iterations at batch 280).")
    var distillLR: Double = 2e-4
    @Option(name: .long, help: "Images per model for the metrics.")
    var evalCount: Int = 200
    @Flag(name: .long, help: "Tiny numbers (20 teacher steps, 10 DMD2 iterations, 20 images) to check the pipeline.")
    var quick = false
    @Option(name: .long, parsing: .unconditional, help: "Evaluation seeds per model (`dmd2 eval --seeds`; --quick uses 1).")
    var evalSeeds: Int = 3
    @Flag(name: .long, help: "Skip the evaluation stage.")
    var noEval = false

    func validate() throws {
        guard teacherSteps >= 1, distillIterations >= 1, generatorSteps >= 1, distillLR > 0, evalCount >= 2, evalSeeds >= 1 else {
            throw ValidationError("--teacher-steps, --distill-iterations, --generator-steps and --eval-seeds must be ≥ 1, --distill-lr > 0, --eval-count ≥ 2")
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
                                     "--generator-steps", String(generatorSteps), "--seed", "1", "--run", distill] + threads)

        stage(4, "sample")
        try runCommand(Sample.self, ["--checkpoint", teacher, "--steps", "18", "--per-class", "8", "--out", "\(out)/teacher-heun18.png"] + threads)
        let studentGrid = "\(out)/student-\(generatorSteps)step.png"
        try runCommand(Sample.self, ["--generator", distill, "--per-class", "8", "--out", studentGrid] + threads)

        guard !noEval else { return print("\ndone (evaluation skipped): \(out)/teacher-heun18.png, \(studentGrid)") }
        stage(5, "eval")
        let evalCommon = ["--data", data, "--count", String(count), "--reference-count", quick ? "50" : "1000",
                          "--kid-subset-size", String(min(count, 100)), "--seeds", String(quick ? 1 : evalSeeds)] + threads
        // Each evaluation is skipped when its metrics exist (delete the folder to redo it).
        let evaluations: [(label: String, folder: String, arguments: [String])] = [
            ("teacher, Heun 4 steps", "\(out)/eval-teacher-heun4", ["--checkpoint", teacher, "--steps", "4"]),
            ("teacher, Heun 18 steps", "\(out)/eval-teacher-heun18", ["--checkpoint", teacher, "--steps", "18"]),
            ("DMD2 student, \(generatorSteps) step\(generatorSteps == 1 ? "" : "s") (\(iterations) iterations)", "\(out)/eval-student", ["--generator", distill]),
        ]
        for e in evaluations {
            if fm.fileExists(atPath: "\(e.folder)/metrics.json") {
                print("\(e.folder)/metrics.json exists; skipped")
            } else {
                try runCommand(Eval.self, e.arguments + ["--out", e.folder] + evalCommon)
            }
        }
        let table = try Report.evalTable(evaluations.map { ($0.label, [$0.folder]) })
        let note = "\(count) samples per model and seed (classes balanced) against \(quick ? 50 : 1000) test images, mean ± sd over \(quick ? 1 : evalSeeds) evaluation seed\(quick || evalSeeds == 1 ? "" : "s") (each folder's metrics.md has the real-vs-real floor); seconds per image are sampling only.\n"
        try ("# dmd2 demo\n\n" + note + "\n" + table).write(toFile: "\(out)/metrics.md", atomically: true, encoding: .utf8)
        print("\n" + table + note)
        print("done: \(out)/teacher-heun18.png, \(studentGrid), \(out)/metrics.md")
    }

    func stage(_ n: Int, _ name: String) {
        print("\n== stage \(n)/5: \(name) ==")
        fflush(nil)  // in order in a redirected log too
    }

    /// Parse and run a subcommand, printing its command line first.
    func runCommand<C: ParsableCommand>(_ type: C.Type, _ arguments: [String]) throws {
        print("$ dmd2 \(C.configuration.commandName ?? "") \(arguments.joined(separator: " "))")
        fflush(nil)
        var command = try type.parseAsRoot(arguments) as! C
        try command.run()
    }
}
