// `dmd2 train-teacher`: train a small EDM teacher on a dataset (default: the prepared
// Fashion-MNIST) with a progress bar, JSON-lines log and resumable checkpoints.
import ArgumentParser
import DMD2Core
import DMD2Data
import DMD2Train
import EDM
import Foundation

struct TrainTeacher: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-teacher",
        abstract: "Train an EDM teacher (ADM UNet, EDM loss, AdamW, EMA) with checkpoints you can resume.",
        discussion: "The run folder (--out) gets log.jsonl (one line per step) and checkpoints/step-N/ with the network, its EMA, the optimizer state and the RNG/loader state. --resume continues the newest checkpoint bitwise identically (with the same --threads); only --steps may change on resume. Sample with `dmd2 sample --checkpoint <out>`.")

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "Training images: an EDM dataset folder or zip (a `dmd2 prepare-data` folder: its train/), a downsampled-ImageNet .npz or folder of .npz parts (its train files), or a folder of class sub-folders (docs/DATA.md).")
    var data: String = "data/fashion-mnist-64"
    @Option(name: .long, help: dataFormatHelp)
    var dataFormat: DataFormat?
    @Option(name: .long, help: "Network preset: \(UNetConfig.presets.keys.sorted().joined(separator: ", ")).")
    var preset: String = "cpu64Tiny"
    @Option(name: .long, help: "Image channels (default: the preset's; the data is converted on reading).")
    var channels: Int?
    @Option(name: .long, help: "Label dropout p: train the unconditional denoiser D_∅ on a fraction p of the images, for classifier-free guidance (default: the preset's; cpu64Tiny and cpu64Small: 0.1).")
    var labelDropout: Double?
    @Option(name: .long, help: "Training steps in all (default 2000; on --resume: the run's own).")
    var steps: Int?
    @Option(name: .long, help: "Images per step.")
    var batch: Int = 32
    @Option(name: .long, help: "Peak learning rate (AdamW).")
    var lr: Double = 1e-3
    @Option(name: .long, help: "Steps of linear learning-rate warm-up.")
    var warmUp: Int = 200
    @Option(name: .long, help: "AdamW's decoupled weight decay.")
    var weightDecay: Double = 0
    @Option(name: .long, help: "Clip the global gradient norm to this (default: no clipping).")
    var clip: Double?
    @Option(name: .long, help: "EMA half-life in images (EDM: 500000), limited by the ramp-up.")
    var emaHalfLife: Double = 500_000
    @Option(name: .long, help: "EMA ramp-up ratio: the half-life is at most this fraction of the images seen (EDM: 0.05).")
    var emaRampUp: Double = 0.05
    @Flag(name: .long, help: "Keep no EMA.")
    var noEMA = false
    @Flag(name: .long, help: "Mirror training images at random.")
    var xflip = false
    @Option(name: .long, help: "Train on at most this many images (balanced over classes).")
    var maxItems: Int?
    @Option(name: .long, help: "A checkpoint every N steps (and at the end); 0: only at the end.")
    var checkpointEvery: Int = 500
    @Option(name: .long, help: "Checkpoints kept (the newest); 0 keeps all.")
    var keep: Int = 3
    @Option(name: .long, help: "Run folder.")
    var out: String = "runs/teacher"
    @Flag(name: .long, help: "Resume the newest checkpoint in --out (its settings are used; --steps may extend the run).")
    var resume = false
    @Option(name: .long, help: "Seed of the weights, the data order and the noise.")
    var seed: UInt64 = 0

    func validate() throws {
        guard UNetConfig.presets[preset] != nil else {
            throw ValidationError("unknown --preset \(preset); choose one of \(UNetConfig.presets.keys.sorted().joined(separator: ", "))")
        }
        if let channels, channels != 1 && channels != 3 { throw ValidationError("--channels must be 1 or 3, got \(channels)") }
        if let labelDropout, !(0...1).contains(labelDropout) { throw ValidationError("--label-dropout must lie in [0, 1], got \(labelDropout)") }
        guard (steps ?? 0) >= 0, batch > 0, lr > 0, warmUp >= 0, checkpointEvery >= 0, keep >= 0 else {
            throw ValidationError("--steps, --warm-up, --checkpoint-every, --keep must be ≥ 0 and --batch, --lr > 0")
        }
    }

    func run() throws {
        common.apply()
        let runURL = URL(fileURLWithPath: out)
        let dataset = try openDataset()
        let progressBar: ProgressBar
        let trainer: TeacherTrainer<Float>
        var notes: [String] = []
        if resume {
            trainer = try TeacherTrainer<Float>(resuming: runURL, dataset: dataset, steps: steps, report: { notes.append($0) })
            print("resuming \(out) at step \(trainer.step) of \(trainer.config.steps)")
        } else {
            trainer = try TeacherTrainer<Float>(config: trainingConfig(classes: dataset.classCount), dataset: dataset, runDirectory: runURL)
        }
        let c = trainer.config
        try SystemMemory.check(Double(c.batchSize) * c.network.trainingBytesPerImageLowerBound,
                               for: "a training step of \(c.batchSize) images", option: "--batch")
        let net = trainer.denoiser.net
        print("data: \(dataset.name), \(trainer.loader.count) images \(c.network.resolution)×\(c.network.resolution)×\(c.network.inChannels), \(dataset.classCount) classes")
        print("network: \(resume ? "from checkpoint" : preset), \(net.parameters.scalarCount.formatted()) parameters, ≈ \(String(format: "%.2f", 3 * c.network.forwardCost().total / 1e9)) GFLOP per image per step")
        if c.network.labelDim > 0 { print("label dropout: \(c.network.labelDropout)\(c.network.labelDropout > 0 ? " (classifier-free guidance: dmd2 sample --guidance, dmd2 distill --real-guidance)" : "")") }
        print("training: \(c.steps) steps × batch \(c.batchSize), AdamW lr \(c.optimizer.learningRate) (warm-up \(c.optimizer.warmUpSteps)), wd \(c.optimizer.weightDecay), EMA \(c.ema?.summary ?? "off"), threads \(Threads.count)")
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

    /// The run's settings; `classes` (the dataset's class count) sets the label dimension.
    func trainingConfig(classes: Int? = nil) -> TeacherTrainingConfig {
        var network = UNetConfig.presets[preset]!
        if let classes { network.labelDim = classes }
        if let channels { network = network.withImageChannels(channels) }
        if let labelDropout { network.labelDropout = labelDropout }
        return TeacherTrainingConfig(
            network: network, batchSize: batch,
            optimizer: AdamWConfig(learningRate: lr, weightDecay: weightDecay, warmUpSteps: warmUp),
            ema: noEMA ? nil : .halfLife(images: emaHalfLife, rampUp: emaRampUp > 0 ? emaRampUp : nil),
            steps: steps ?? 2000, checkpointInterval: checkpointEvery, keepCheckpoints: keep, seed: seed, xflip: xflip,
            maxGradNorm: clip, maxItems: maxItems)
    }

    /// The dataset at --data (its train split), read with the network's channel count.
    func openDataset() throws -> any ImageDataset {
        let readChannels: Int
        if resume, let folder = TeacherCheckpoint.latest(in: URL(fileURLWithPath: out)) {
            readChannels = try TeacherCheckpoint.manifest(at: folder).config.network.inChannels
        } else {
            readChannels = channels ?? UNetConfig.presets[preset]!.inChannels
        }
        return try openData(data, format: dataFormat, split: .train, channels: readChannels)
    }
}
