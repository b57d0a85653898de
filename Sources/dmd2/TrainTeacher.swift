// `dmd2 train-teacher`: train a small EDM teacher on a dataset (default: the prepared
// Fashion-MNIST) with a progress bar, JSON-lines log and resumable checkpoints.
import ArgumentParser
import DMD2Core
import DMD2Data
import DMD2Train
import EDM
import EDMTraining
import Foundation

struct TrainTeacher: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-teacher",
        abstract: "Train an EDM teacher (ADM UNet, EDM loss, AdamW, EMA) with checkpoints you can resume.",
        discussion: "The run folder (--out) gets log.jsonl (one line per step) and checkpoints/step-N/ with the network, its EMA, the optimizer state and the RNG/loader state. --resume continues the newest checkpoint bitwise identically (with the same --threads); only --steps may change on resume: other flags that differ from the run's are refused by name (--ignore-changed-settings keeps the run's and goes on). The folder is locked while a run trains in it (run.lock); a second run into it stops at once naming the PID. Sample with `dmd2 sample --checkpoint <out>`.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var dataParallel: DataParallelOptions
    @Option(name: .long, help: "Training images: an EDM dataset folder or zip (a `dmd2 prepare-data` folder: its train/), a downsampled-ImageNet .npz or folder of .npz parts (its train files), or a folder of class sub-folders (docs/DATA.md).")
    var data: String = "data/fashion-mnist-64"
    @Option(name: .long, help: dataFormatHelp)
    var dataFormat: DataFormat?
    @Option(name: .long, help: "Network preset: \(UNetConfig.presets.keys.sorted().joined(separator: ", ")) (default cpu64Tiny).")
    var preset: String?
    @Option(name: .long, parsing: .unconditional, help: "Image channels (default: the preset's; the data is converted on reading).")
    var channels: Int?
    @Option(name: .long, parsing: .unconditional, help: "Label dropout p: train the unconditional denoiser D_∅ on a fraction p of the images, for classifier-free guidance (default: the preset's; cpu64Tiny and cpu64Small: 0.1).")
    var labelDropout: Double?
    @Option(name: .long, parsing: .unconditional, help: "Training steps in all, ≥ 1 (default 2000; on --resume: the run's own).")
    var steps: Int?
    @Option(name: .long, parsing: .unconditional, help: "Cool the learning rate down linearly over the run's last N steps (to lr/N at the last step; default: constant after the warm-up). May be added on --resume, starting at the checkpoint or later.")
    var coolDown: Int?
    @Option(name: .long, parsing: .unconditional, help: "EMA half-life in images (EDM: 500000, the default), limited by the ramp-up.")
    var emaHalfLife: Double?
    @Option(name: .long, parsing: .unconditional, help: "EMA ramp-up ratio: the half-life is at most this fraction of the images seen (EDM: 0.05, the default; 0: none).")
    var emaRampUp: Double?
    @Flag(name: .long, help: "Keep no EMA.")
    var noEMA = false
    @Flag(name: .long, help: "Mirror training images at random.")
    var xflip = false
    @Option(name: .long, help: "Run folder.")
    var out: String = "runs/teacher"
    @Flag(name: .long, help: "Resume the newest checkpoint in --out (its settings are used; --steps may extend the run; other flags must agree with the run's).")
    var resume = false

    /// Where each setting of the run's config comes from on the command line.
    static let flags = [
        "network": "--preset", "network.labelDropout": "--label-dropout", "network.inChannels": "--channels",
        "network.outChannels": "--channels", "batchSize": "--batch", "optimizer.learningRate": "--lr",
        "optimizer.warmUpSteps": "--warm-up", "optimizer.weightDecay": "--weight-decay", "maxGradNorm": "--clip",
        "ema": "--ema-half-life/--ema-ramp-up/--no-ema", "xflip": "--xflip", "maxItems": "--max-items",
        "coolDownSteps": "--cool-down", "checkpointInterval": "--checkpoint-every", "keepCheckpoints": "--keep", "seed": "--seed", "shards": "--shards",
    ]

    func validate() throws {
        if let preset, UNetConfig.presets[preset] == nil {
            throw ValidationError("unknown --preset \(preset); choose one of \(UNetConfig.presets.keys.sorted().joined(separator: ", "))")
        }
        if let channels, channels != 1 && channels != 3 { throw ValidationError("--channels must be 1 or 3, got \(channels)") }
        if let labelDropout, !(0...1).contains(labelDropout) { throw ValidationError("--label-dropout must lie in [0, 1], got \(labelDropout)") }
        if let steps, steps < 1 { throw ValidationError("--steps must be ≥ 1, got \(steps) (a run of no steps writes no checkpoint)") }
        if let coolDown, coolDown < 1 { throw ValidationError("--cool-down must be ≥ 1 steps, got \(coolDown)") }
        if let emaHalfLife, !(emaHalfLife > 0 && emaHalfLife.isFinite) { throw ValidationError("--ema-half-life must be finite and > 0, got \(emaHalfLife)") }
        if let emaRampUp, !(emaRampUp >= 0 && emaRampUp.isFinite) { throw ValidationError("--ema-ramp-up must be finite and ≥ 0, got \(emaRampUp)") }
    }

    func run() throws {
        common.apply()
        let setup = try dataParallel.join()
        try MPIJob.run { try train(setup) }
    }

    func train(_ setup: DataParallelSetup?) throws {
        let runURL = URL(fileURLWithPath: out)
        let isRoot = (setup?.group.rank ?? 0) == 0
        if !resume {
            // Before anything touches the run folder: a batch that cannot fit leaves nothing behind.
            // (The lower bound depends only on the network and the batch, not on the class count.)
            let planned = trainingConfig(ranks: setup?.group.size ?? 1)
            try SystemMemory.check(Double(planned.batchSize) * planned.network.trainingBytesPerImageLowerBound,
                                   for: "a training step of \(planned.batchSize) images", option: "--batch")
        }
        if isRoot {
            try RunFolder.checkWritable(runURL, what: "run folder (--out)")
            try RunFolderLock.checkUnlocked(runURL)                     // before reading the data
        }
        let ranks = setup?.group.size ?? 1
        let (dataset, dataNote) = try openDataset()
        let progressBar: ProgressBar
        let trainer: TeacherTrainer<Float>
        var notes: [String] = dataNote.map { [$0] } ?? []
        if resume {
            if let folder = TeacherCheckpoint.latest(in: runURL) {
                let run = try TeacherCheckpoint.manifest(at: folder).config
                let changes = SettingChange.between(run, trainingConfig(base: run, ranks: ranks), ignoring: ["steps", "coolDownSteps"])
                if !changes.isEmpty {
                    guard runOptions.ignoreChangedSettings else {
                        throw CLIError(conflictsMessage(changes, flags: Self.flags, ignored: false))
                    }
                    notes.append(conflictsMessage(changes, flags: Self.flags, ignored: true))
                }
            }
            trainer = try TeacherTrainer<Float>(resuming: runURL, dataset: dataset, steps: steps, coolDownSteps: coolDown, dataParallel: setup,
                                                report: { notes.append($0) })
            print("resuming \(out) at step \(trainer.step) of \(trainer.config.steps)")
        } else {
            trainer = try TeacherTrainer<Float>(config: trainingConfig(classes: dataset.classCount, ranks: ranks), dataset: dataset,
                                                runDirectory: runURL, dataParallel: setup)
        }
        let c = trainer.config
        try SystemMemory.check(Double(c.batchSize) * c.network.trainingBytesPerImageLowerBound,
                               for: "a training step of \(c.batchSize) images", option: "--batch")
        let net = trainer.denoiser.net
        print("data: \(dataset.name), \(trainer.loader.count) images \(c.network.resolution)×\(c.network.resolution)×\(c.network.inChannels), \(dataset.classCount) classes")
        print("network: \(resume ? "from checkpoint" : preset ?? "cpu64Tiny"), \(net.parameters.scalarCount.formatted()) parameters, ≈ \(String(format: "%.2f", 3 * c.network.forwardCost().total / 1e9)) GFLOP per image per step")
        if c.network.labelDim > 0 { print("label dropout: \(c.network.labelDropout)\(c.network.labelDropout > 0 ? " (classifier-free guidance: dmd2 sample --guidance, dmd2 distill --real-guidance)" : "")") }
        print("training: \(c.steps) steps × batch \(c.batchSize), AdamW lr \(c.optimizer.learningRate) (warm-up \(c.optimizer.warmUpSteps)\(c.optimizerSchedule.coolDown.map { ", cool-down over \($0)" } ?? "")), wd \(c.optimizer.weightDecay), EMA \(c.ema?.summary ?? "off"), threads \(Threads.count)")
        if let line = MPIJob.describe(trainer.parallel, batch: c.batchSize) { print(line) }
        for note in notes { print(note) }
        print("run folder: \(out)  (log.jsonl, checkpoints/)")

        progressBar = ProgressBar(total: c.steps, label: "train", startIteration: trainer.step)
        var recent: [Double] = []
        let started = ProcessInfo.processInfo.systemUptime, startStep = trainer.step
        var lastLoss = Double.nan
        do {
            try trainer.run(onStep: { record in
                recent.append(record.loss)
                if recent.count > 50 { recent.removeFirst() }
                lastLoss = recent.reduce(0, +) / Double(recent.count)
                let elapsed = ProcessInfo.processInfo.systemUptime - started
                let imagesPerSecond = Double((record.step - startStep) * c.batchSize) / max(elapsed, 1e-9)
                progressBar.update(record.step, status: String(format: "loss %.4f (avg50 %.4f) · %.1f img/s · lr %.2e", record.loss, lastLoss, imagesPerSecond, record.lr))
            }, onCheckpoint: { url in
                progressBar.message("checkpoint: \(url.path)")
            })
        } catch let error as NonFiniteError {
            progressBar.finish()
            let last = TeacherCheckpoint.latest(in: runURL).map { $0.path } ?? "none"
            throw CLIError("\(error)\nlast good checkpoint: \(last)")
        }
        progressBar.finish()
        let elapsed = ProcessInfo.processInfo.systemUptime - started
        let done = trainer.step - startStep
        print(String(format: "done: %d steps in %@ (%.1f img/s), mean loss of the last 50 steps %.4f",
                     done, ProgressBar.duration(elapsed), Double(done * c.batchSize) / max(elapsed, 1e-9), lastLoss))
        print("sample: dmd2 sample --checkpoint \(out)")
    }

    /// The run's settings from the flags: the defaults with the given flags applied, or (on
    /// resume) the run's own with the given flags applied, to compare. `classes` (the dataset's
    /// class count) sets the label dimension of a new run.
    /// `ranks` (under mpirun) is a new run's shard count when --shards is not given.
    func trainingConfig(base: TeacherTrainingConfig? = nil, classes: Int? = nil, ranks: Int = 1) -> TeacherTrainingConfig {
        var config = base ?? TeacherTrainingConfig(
            network: UNetConfig.presets["cpu64Tiny"]!, batchSize: 32,
            optimizer: AdamWConfig(learningRate: 1e-3, weightDecay: 0, warmUpSteps: 200),
            ema: .halfLife(images: 500_000, rampUp: 0.05), steps: 2000, checkpointInterval: 500, keepCheckpoints: 3, seed: 0,
            xflip: false, maxGradNorm: nil, maxItems: nil)
        if let preset {
            let run = config.network
            config.network = UNetConfig.presets[preset]!
            if base != nil {                       // --channels and --label-dropout are compared on their own
                config.network = config.network.withImageChannels(run.inChannels)
                config.network.labelDropout = run.labelDropout
            }
        }
        if base == nil, let classes { config.network.labelDim = classes }
        if let channels { config.network = config.network.withImageChannels(channels) }
        if let labelDropout { config.network.labelDropout = labelDropout }
        if let steps { config.steps = steps }
        if let coolDown { config.coolDownSteps = coolDown }
        let o = runOptions
        if let batch = o.batch { config.batchSize = batch }
        o.apply(to: &config.optimizer)
        if let clip = o.clip { config.maxGradNorm = clip }
        if let maxItems = o.maxItems { config.maxItems = maxItems }
        if let seed = o.seed { config.seed = seed }
        if let every = o.checkpointEvery { config.checkpointInterval = every }
        if let keep = o.keep { config.keepCheckpoints = keep }
        if let shards = o.shards { config.shards = shards } else if base == nil && ranks > 1 { config.shards = ranks }
        if xflip { config.xflip = true }
        if noEMA {
            config.ema = nil
        } else if emaHalfLife != nil || emaRampUp != nil || (base == nil) {
            var halfLife = 500_000.0, rampUp: Double? = 0.05
            if case .halfLife(let h, let r)? = config.ema { halfLife = h; rampUp = r }
            if let emaHalfLife { halfLife = emaHalfLife }
            if let emaRampUp { rampUp = emaRampUp > 0 ? emaRampUp : nil }
            config.ema = .halfLife(images: halfLife, rampUp: rampUp)
        }
        return config
    }

    /// The dataset at --data (its train split, without the validation split), read with the
    /// network's channel count; a resumed run from before the validation split reads it all (the note says so).
    func openDataset() throws -> (any ImageDataset, String?) {
        let readChannels: Int
        var runDataset: String?, runMaxItems: Int?
        if resume, let folder = TeacherCheckpoint.latest(in: URL(fileURLWithPath: out)) {
            let manifest = try TeacherCheckpoint.manifest(at: folder)
            readChannels = manifest.config.network.inChannels
            runDataset = manifest.dataset
            runMaxItems = manifest.config.maxItems
        } else {
            readChannels = channels ?? UNetConfig.presets[preset ?? "cpu64Tiny"]!.inChannels
        }
        return try openTrainingData(data, format: dataFormat, channels: readChannels, resumedRun: runDataset, maxItems: runMaxItems)
    }
}
