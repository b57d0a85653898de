// The options both training commands share (train-teacher, distill): batch, optimiser, clipping,
// data cap, seed, checkpoint cadence, and how a resume treats flags that differ from the run.
// Every option is optional, so a resume can tell a flag given from a default: a given flag that
// differs from the run's manifest is refused by name unless --ignore-changed-settings.
import ArgumentParser
import DMD2Train
import Foundation

struct RunOptions: ParsableArguments {
    // `.unconditional`: `--batch -4` reads -4 (and is refused as such), not a missing value.
    @Option(name: .long, parsing: .unconditional, help: "Images per step (default: train-teacher 32, distill 8).")
    var batch: Int?
    @Option(name: .long, parsing: .unconditional, help: "Peak learning rate of AdamW (default: train-teacher 1e-3, distill 2e-6, DMD2's ImageNet value).")
    var lr: Double?
    @Option(name: .long, parsing: .unconditional, help: "Optimizer steps of linear learning-rate warm-up (default: train-teacher 200, distill 0).")
    var warmUp: Int?
    @Option(name: .long, parsing: .unconditional, help: "AdamW's decoupled weight decay (default: train-teacher 0, distill 0.01).")
    var weightDecay: Double?
    @Option(name: .long, parsing: .unconditional, help: "Clip the global gradient norm to this (default: train-teacher none, distill 10).")
    var clip: Double?
    @Option(name: .long, parsing: .unconditional, help: "Read at most this many training images (balanced over classes).")
    var maxItems: Int?
    @Option(name: .long, parsing: .unconditional, help: "Seed of the weights (or the head), the data order and every draw (default 0).")
    var seed: UInt64?
    @Option(name: .long, parsing: .unconditional, help: "A checkpoint every N steps (and at the end); 0: only at the end (default 500).")
    var checkpointEvery: Int?
    @Option(name: .long, parsing: .unconditional, help: "Checkpoints kept (the newest); 0 keeps all (default 3).")
    var keep: Int?
    @Option(name: .long, parsing: .unconditional, help: "Data-parallel shards S of the batch, each with its own random stream, gradients averaged in shard order (default: the rank count under mpirun, else 1 = the whole batch at once). A run of S shards gives the same steps on any rank count dividing S, one process included (docs/MPI.md).")
    var shards: Int?
    @Flag(name: .long, help: "On resume, ignore flags that differ from the run's settings (each is listed) instead of refusing to start.")
    var ignoreChangedSettings = false

    func validate() throws {
        if let batch, batch < 1 { throw ValidationError("--batch must be ≥ 1, got \(batch)") }
        if let lr {
            guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be finite and > 0, got \(lr)") }
            if let problem = AdamWConfig(learningRate: lr, weightDecay: weightDecay ?? 0).precisionProblem(in: Float.self) {
                throw ValidationError("--lr \(lr): \(problem); training runs in Float")
            }
        }
        if let warmUp, warmUp < 0 { throw ValidationError("--warm-up must be ≥ 0, got \(warmUp)") }
        if let weightDecay, !(weightDecay >= 0 && weightDecay.isFinite) { throw ValidationError("--weight-decay must be finite and ≥ 0, got \(weightDecay)") }
        if let clip, !(clip > 0 && clip.isFinite) { throw ValidationError("--clip must be finite and > 0, got \(clip)") }
        if let maxItems, maxItems < 1 { throw ValidationError("--max-items must be ≥ 1, got \(maxItems)") }
        if let checkpointEvery, checkpointEvery < 0 { throw ValidationError("--checkpoint-every must be ≥ 0, got \(checkpointEvery)") }
        if let keep, keep < 0 { throw ValidationError("--keep must be ≥ 0, got \(keep)") }
        if let shards, shards < 1 { throw ValidationError("--shards must be ≥ 1, got \(shards)") }
        if let shards, let batch, batch % shards != 0 { throw ValidationError("--batch \(batch) cannot be cut into --shards \(shards) equal shards") }
    }

    /// The given flags applied to an optimiser's settings.
    func apply(to optimizer: inout AdamWConfig) {
        if let lr { optimizer.learningRate = lr }
        if let warmUp { optimizer.warmUpSteps = warmUp }
        if let weightDecay { optimizer.weightDecay = weightDecay }
    }
}

/// A resume's conflicts as the flags that caused them (`flags` maps a config key path, or its
/// first component, to the flag), one per line.
func describeConflicts(_ changes: [SettingChange], flags: [String: String]) -> String {
    changes.map { change in
        let flag = flags[change.key] ?? flags[String(change.key.split(separator: ".").first ?? "")] ?? change.key
        return "  \(flag): the run has \(change.key) = \(change.run), the flags ask for \(change.requested)"
    }.joined(separator: "\n")
}

/// The resume-conflict error or warning of a training command.
func conflictsMessage(_ changes: [SettingChange], flags: [String: String], ignored: Bool) -> String {
    ignored
        ? "note: --ignore-changed-settings: these flags differ from the run's settings and are ignored (the run's are kept):\n" + describeConflicts(changes, flags: flags)
        : "resuming with flags that differ from the run's settings:\n" + describeConflicts(changes, flags: flags)
            + "\nleave them out (the run's settings are used), start a new run in another folder, or pass --ignore-changed-settings to resume with the run's settings anyway"
}
