// `dmd2 distill`: distil an EDM teacher into a one-step generator with DMD2 (docs/METHOD.md §2), or
// a k-step one with backward simulation (`--generator-steps k`, §3, docs/FEW-STEP.md), with a
// progress bar, a JSON-lines log and resumable checkpoints; `--debug-state FILE` writes the
// debug-state file of one generator + one critic step instead (docs/DEBUG-STATE.md; with
// `--generator-steps k` the few-step variant).
import ArgumentParser
import DMD2
import DMD2Core
import DMD2Data
import DMD2Train
import EDM
import EDMTraining
import Foundation
import SafeTensors

struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Distil an EDM teacher into a one- or few-step generator with DMD2 (distribution matching, fake critic, GAN head, TTUR, backward simulation).",
        discussion: """
            The run folder (--run) gets teacher.safetensors (a copy of the teacher), log.jsonl (one line per iteration: \
            L_DM, L_fake, L_D, L_G, gradient norms, brightness, σ drawn) and checkpoints/step-N/ (G, μ_fake, the head, both \
            optimizers, RNG and loader state). Pointing --run at a folder with checkpoints resumes its newest one bitwise \
            identically (with the same --threads); only --iterations may change then: other flags (or another --teacher) that \
            differ from the run's are refused by name (--ignore-changed-settings keeps the run's and goes on). The folder is \
            locked while a run trains in it (run.lock); a second run into it stops at once naming the PID. Sample with \
            `dmd2 sample --generator <run>` (it uses the run's steps). --generator-steps k trains a k-step generator on the \
            σ levels K[999 − i·⌊1000/k⌋] (k = 4: 80, 17.50, 2.504, 0.1681), each iteration at one step j drawn uniformly, \
            its input rolled out by the current G from fresh noise (backward simulation) or, with \
            --no-backward-simulation, a noised real image.
            """)

    @OptionGroup var common: CommonOptions
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var dataParallel: DataParallelOptions
    @Option(name: .long, help: "The teacher: a network .safetensors file, or a train-teacher run or checkpoint folder (its EMA weights unless --raw-teacher; default runs/teacher). On resume the run's own copy is used; a --teacher given must be the same network.")
    var teacher: String?
    @Flag(name: .long, help: "Use the raw (non-EMA) weights of a train-teacher folder.")
    var rawTeacher = false
    @Option(name: .long, help: "Real images for the GAN: an EDM dataset folder or zip (a `dmd2 prepare-data` folder: its train/), a downsampled-ImageNet .npz or folder of .npz parts (its train files), or a folder of class sub-folders (docs/DATA.md).")
    var data: String = "data/fashion-mnist-64"
    @Option(name: .long, help: dataFormatHelp)
    var dataFormat: DataFormat?
    @Option(name: .long, parsing: .unconditional, help: "Iterations in all, ≥ 1 (default 1000; on resume: the run's own).")
    var iterations: Int?
    @Option(name: .long, parsing: .unconditional, help: "Two time-scale update ratio: G is updated every N-th iteration, the critic every iteration (default 5).")
    var tturRatio: Int?
    @Option(name: .customLong("gan-weight-g"), parsing: .unconditional, help: "Weight of the generator's GAN loss L_G (default 3e-3).")
    var ganWeightG: Double?
    @Option(name: .customLong("gan-weight-d"), parsing: .unconditional, help: "Weight of the discriminator loss L_D in the critic's loss (default 1e-2).")
    var ganWeightD: Double?
    @Flag(name: .long, help: "No GAN terms (no head, no real images).")
    var noGAN = false
    @Flag(name: .customLong("no-dm"), help: "No distribution matching loss (the paper's 'GAN alone' ablation).")
    var noDM = false
    @Option(name: .long, parsing: .unconditional, help: "Keep an EMA of G with this decay β per generator step (default: no EMA).")
    var ema: Double?
    @Option(name: .long, parsing: .unconditional, help: "Classifier-free guidance scale w on the real score: μ_real = D_∅ + w·(D_y − D_∅) (a teacher trained with label dropout).")
    var realGuidance: Double?
    @Option(name: .long, parsing: .unconditional, help: "Generator steps k (1, the default: one step at σ = 80; DMD2's few-step generator: 4, on K[999], K[749], K[499], K[249]).")
    var generatorSteps: Int?
    @Flag(name: .long, help: "Train a few-step generator on noised real images instead of its own rollout (the ablation; needs --data).")
    var noBackwardSimulation = false
    @Option(name: .long, help: "Original DMD's regression loss: a pairs file from `dmd2 make-pairs`.")
    var regressionPairs: String?
    @Option(name: .long, parsing: .unconditional, help: "Weight of the regression loss (L2 to the teacher's samples; default 0.25).")
    var regressionWeight: Double?
    @Option(name: .customLong("run"), help: "Run folder (an existing one with checkpoints is resumed; flags must then agree with the run's settings).")
    var runFolder: String = "runs/distill"
    @Option(name: .long, help: "Write the debug state of one generator + one critic step on a tiny random network to this file, replay it, and exit.")
    var debugState: String?

    /// Where each setting of the run's config comes from on the command line.
    static let flags = [
        "network": "--teacher", "teacher": "--teacher", "batchSize": "--batch", "generatorOptimizer.learningRate": "--lr",
        "criticOptimizer.learningRate": "--lr", "generatorOptimizer.warmUpSteps": "--warm-up", "criticOptimizer.warmUpSteps": "--warm-up",
        "generatorOptimizer.weightDecay": "--weight-decay", "criticOptimizer.weightDecay": "--weight-decay",
        "tturRatio": "--ttur-ratio", "distributionMatching": "--no-dm", "gan": "--no-gan", "ganWeightGenerator": "--gan-weight-g",
        "ganWeightCritic": "--gan-weight-d", "maxGradNorm": "--clip", "ema": "--ema", "realGuidance": "--real-guidance",
        "regression": "--regression-pairs", "regression.pairsFile": "--regression-pairs", "regression.weight": "--regression-weight",
        "seed": "--seed", "shards": "--shards", "checkpointInterval": "--checkpoint-every", "keepCheckpoints": "--keep", "maxItems": "--max-items",
        "generatorSteps": "--generator-steps", "backwardSimulation": "--no-backward-simulation",
    ]

    func validate() throws {
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be ≥ 1, got \(iterations) (a run of no iterations writes no checkpoint)") }
        if let tturRatio, tturRatio < 1 { throw ValidationError("--ttur-ratio must be ≥ 1, got \(tturRatio)") }
        for (flag, value) in [("--gan-weight-g", ganWeightG), ("--gan-weight-d", ganWeightD), ("--regression-weight", regressionWeight)] {
            if let value, !(value >= 0 && value.isFinite) { throw ValidationError("\(flag) must be finite and ≥ 0, got \(value)") }
        }
        if let realGuidance, !realGuidance.isFinite { throw ValidationError("--real-guidance must be finite, got \(realGuidance)") }
        if let ema, !(0...1).contains(ema) { throw ValidationError("--ema must be a decay in [0, 1], got \(ema)") }
        if noGAN && noDM && regressionPairs == nil { throw ValidationError("--no-gan and --no-dm leave G without a loss (add --regression-pairs)") }
        if let generatorSteps, !(1...SigmaGrid.dmd2.count).contains(generatorSteps) {
            throw ValidationError("--generator-steps must lie in 1…\(SigmaGrid.dmd2.count), got \(generatorSteps)")
        }
    }

    func run() throws {
        common.apply()
        if let debugState { return try writeDebugState(to: URL(fileURLWithPath: debugState)) }
        let setup = try dataParallel.join()
        try MPIJob.run { try distill(setup) }
    }

    func distill(_ setup: DataParallelSetup?) throws {
        let runURL = URL(fileURLWithPath: runFolder)
        let ranks = setup?.group.size ?? 1
        if (setup?.group.rank ?? 0) == 0 {
            try RunFolder.checkWritable(runURL, what: "run folder (--run)")
            try RunFolderLock.checkUnlocked(runURL)                     // before loading the teacher and data
        }
        let trainer: DistillTrainer<Float>
        var notes: [String] = []
        if DistillCheckpoint.latest(in: runURL) != nil {
            let manifest = try DistillCheckpoint.manifest(at: DistillCheckpoint.latest(in: runURL)!)
            let run = manifest.config
            var requested = distillConfig(run.network, base: run, ranks: ranks)
            let requestedTeacher = try teacher.map { _ in try loadTeacher().net }  // another --teacher is a conflict
            if let requestedTeacher { requested.network = requestedTeacher.config }
            let ignore = runOptions.ignoreChangedSettings
            if ignore {
                let changes = SettingChange.between(run, requested, ignoring: ["iterations"])
                if !changes.isEmpty { notes.append(conflictsMessage(changes, flags: Self.flags, ignored: true)) }
            }
            var dataset: (any ImageDataset)?
            if run.readsRealImages {
                let opened = try openDataset(channels: run.network.inChannels, resumedRun: manifest.dataset ?? "")
                dataset = opened.dataset
                if let note = opened.note { notes.append(note) }
            }
            do {
                trainer = try DistillTrainer<Float>(resuming: runURL, dataset: dataset, iterations: iterations,
                                                    expecting: ignore ? nil : requested, teacher: ignore ? nil : requestedTeacher,
                                                    dataParallel: setup, report: { notes.append($0) })
            } catch DistillError.changedSettings(let changes) {
                throw CLIError(conflictsMessage(changes, flags: Self.flags, ignored: false))
            }
            print("resuming \(runFolder) at iteration \(trainer.step) of \(trainer.config.iterations)")
        } else {
            let loaded = try loadTeacher()
            let config = distillConfig(loaded.net.config, ranks: ranks)
            // Before the trainer writes into the run folder (a batch that cannot fit leaves no files).
            try SystemMemory.check(2 * Double(config.batchSize) * loaded.net.config.trainingBytesPerImageLowerBound,
                                   for: "a distillation iteration of \(config.batchSize) images", option: "--batch")
            let dataset = config.readsRealImages ? try openDataset(channels: loaded.net.config.inChannels, resumedRun: nil).dataset : nil
            if realGuidance != nil && loaded.net.config.labelDropout == 0 {
                notes.append("warning: --real-guidance with a teacher trained without label dropout: its unconditional prediction D_∅ was never trained")
            }
            let names = loaded.metadata["class_names"].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
            trainer = try DistillTrainer<Float>(config: config, teacher: loaded.net, dataset: dataset,
                                                runDirectory: runURL, classNames: names ?? dataset?.classNames, dataParallel: setup)
        }
        let c = trainer.config, n = c.network
        // G, the fake critic and the real score each run forward (and G and the critic backward) on the batch.
        try SystemMemory.check(2 * Double(c.batchSize) * n.trainingBytesPerImageLowerBound,
                               for: "a distillation iteration of \(c.batchSize) images", option: "--batch")
        print("teacher: \(n.resolution)×\(n.resolution)×\(n.inChannels), \(n.labelDim) classes, \(n.parameterCount.formatted()) parameters per network (G, μ_real, μ_fake), head \(trainer.networks.head.parameters.scalarCount.formatted())")
        if let loader = trainer.loader { print("real images: \(loader.dataset.name), \(loader.count) images") }
        print("losses: \(c.distributionMatching ? "L_DM" : "no DM")\(c.gan ? String(format: " + %g·L_G; critic L_fake + %g·L_D", c.ganWeightGenerator, c.ganWeightCritic) : ", no GAN; critic L_fake")\(c.regression.map { String(format: "; + %g·L_reg (%@)", $0.weight, $0.pairsFile) } ?? "")\(c.realGuidance.map { String(format: "; real guidance %g", $0) } ?? "")")
        if c.generatorSteps > 1 {
            let s = c.generatorSchedule
            print("generator: \(s.steps) steps at σ = \(s.sigmas.map { String(format: "%.4g", $0) }.joined(separator: ", ")) (K[\(s.indices.map(String.init).joined(separator: "], K["))]); inputs: \(c.backwardSimulation ? "backward simulation (rollout of the current G)" : "noised real images (no backward simulation)")")
        }
        print("training: \(c.iterations) iterations × batch \(c.batchSize), TTUR ratio \(c.tturRatio), AdamW lr \(c.generatorOptimizer.learningRate) (warm-up \(c.generatorOptimizer.warmUpSteps)), wd \(c.generatorOptimizer.weightDecay), clip \(c.maxGradNorm), EMA \(c.ema?.summary ?? "off"), threads \(Threads.count)")
        if let line = MPIJob.describe(trainer.parallel, batch: c.batchSize) { print(line) }
        for note in notes { print(note) }
        print("run folder: \(runFolder)  (teacher.safetensors, log.jsonl, checkpoints/)")

        let progressBar = ProgressBar(total: c.iterations, label: "distill", startIteration: trainer.step)
        let started = ProcessInfo.processInfo.systemUptime, startStep = trainer.step
        var lastDM = Double.nan, lastG = Double.nan
        do {
            try trainer.run(onIteration: { r in
                if let v = r.lossDM { lastDM = v }
                if let v = r.lossG { lastG = v }
                let elapsed = ProcessInfo.processInfo.systemUptime - started
                let imagesPerSecond = Double((r.step - startStep) * c.batchSize) / max(elapsed, 1e-9)
                progressBar.update(r.step, status: String(format: "L_DM %.4g · L_fake %.4g · L_D %@ · L_G %.4g · %.2f img/s",
                                                          lastDM, r.lossFake, r.lossD.map { String(format: "%.4g", $0) } ?? "–",
                                                          lastG, imagesPerSecond))
            }, onCheckpoint: { url in
                progressBar.message("checkpoint: \(url.path)")
            })
        } catch let error as NonFiniteError {
            progressBar.finish()
            let last = DistillCheckpoint.latest(in: runURL).map { $0.path } ?? "none"
            throw CLIError("\(error)\nlast good checkpoint: \(last)")
        }
        progressBar.finish()
        let elapsed = ProcessInfo.processInfo.systemUptime - started
        let done = trainer.step - startStep
        print(String(format: "done: %d iterations in %@ (%.2f img/s)", done, ProgressBar.duration(elapsed), Double(done * c.batchSize) / max(elapsed, 1e-9)))
        print("sample: dmd2 sample --generator \(runFolder)")
    }

    /// The run's settings from the flags: the defaults with the given flags applied, or (on
    /// resume) the run's own with the given flags applied, to compare.
    /// `ranks` (under mpirun) is a new run's shard count when --shards is not given.
    func distillConfig(_ network: UNetConfig, base: DistillConfig? = nil, ranks: Int = 1) -> DistillConfig {
        var c = base ?? DistillConfig(network: network, batchSize: 8, iterations: 1000, learningRate: 2e-6, warmUpSteps: 0,
                                      weightDecay: 0.01, tturRatio: 5, ganWeightGenerator: 3e-3, ganWeightCritic: 1e-2, maxGradNorm: 10,
                                      seed: 0, checkpointInterval: 500, keepCheckpoints: 3)
        let o = runOptions
        if let batch = o.batch { c.batchSize = batch }
        if let iterations { c.iterations = iterations }
        if let shards = o.shards { c.shards = shards } else if base == nil && ranks > 1 { c.shards = ranks }
        o.apply(to: &c.generatorOptimizer)
        o.apply(to: &c.criticOptimizer)
        if let tturRatio { c.tturRatio = tturRatio }
        if noDM { c.distributionMatching = false }
        if noGAN { c.gan = false }
        if let ganWeightG { c.ganWeightGenerator = ganWeightG }
        if let ganWeightD { c.ganWeightCritic = ganWeightD }
        if let clip = o.clip { c.maxGradNorm = clip }
        if let ema { c.ema = .decay(ema) }
        if let realGuidance { c.realGuidance = realGuidance }
        if let regressionPairs {
            c.regression = RegressionSettings(pairsFile: URL(fileURLWithPath: regressionPairs).standardizedFileURL.path,
                                              weight: regressionWeight ?? c.regression?.weight ?? 0.25)
        } else if let regressionWeight, c.regression != nil {
            c.regression?.weight = regressionWeight
        }
        if let seed = o.seed { c.seed = seed }
        if let every = o.checkpointEvery { c.checkpointInterval = every }
        if let keep = o.keep { c.keepCheckpoints = keep }
        if let maxItems = o.maxItems { c.maxItems = maxItems }
        if let generatorSteps { c.generatorSteps = generatorSteps }
        if noBackwardSimulation { c.backwardSimulation = false }
        return c
    }

    /// The teacher network at --teacher (a train-teacher folder's EMA weights unless --raw-teacher
    /// or it kept none).
    func loadTeacher() throws -> LoadedCheckpoint<Float> {
        try loadTeacherNetwork(teacher ?? "runs/teacher", raw: rawTeacher)
    }

    /// The dataset at --data (its train split, without the validation split), read with the
    /// teacher's channel count; a resumed run from before the validation split reads it all (the note says so).
    func openDataset(channels: Int, resumedRun: String?) throws -> (dataset: any ImageDataset, note: String?) {
        let why = noGAN ? "a few-step generator without backward simulation trains on noised real images"
                        : "the GAN needs real images; or use --no-gan"
        return try openTrainingData(data, format: dataFormat, channels: channels, resumedRun: resumedRun, why: why)
    }

    func writeDebugState(to url: URL) throws {
        let started = ProcessInfo.processInfo.systemUptime
        let seed = runOptions.seed ?? 0, generatorSteps = generatorSteps ?? 1
        let inputs = DebugState.randomInputs(seed: seed, generatorSteps: generatorSteps, backwardSimulation: !noBackwardSimulation)
        let file = try DebugState.record(inputs)
        try file.write(to: url)
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        let c = inputs.config
        print("debug state: \(url.path), \(file.tensors.count) tensors, \(size.formatted()) bytes; network \(c.resolution)×\(c.resolution)×\(c.inChannels), \(c.parameterCount.formatted()) parameters, head \(inputs.head.scalarCount.formatted()), batch \(inputs.settings.batch), seed \(seed)\(generatorSteps > 1 ? ", \(generatorSteps) generator steps (trained step j = \(inputs.draws.fewStep!.step))" : "")")
        let comparisons = try DebugState.replay(try SafeTensorsFile(contentsOf: url))
        let failed = comparisons.filter { !$0.passed }
        let worst = comparisons.filter { $0.tolerance > 0 }.max { $0.error < $1.error }
        print(String(format: "replayed: %d tensors, %d outside tolerance; largest relative difference %.2e (%@); %.1f s",
                     comparisons.count, failed.count, worst?.error ?? 0, worst?.key ?? "–", ProcessInfo.processInfo.systemUptime - started))
        for f in failed.prefix(10) { print(String(format: "  %@: %.3e > %.0e", f.key, f.error, f.tolerance)) }
        if !failed.isEmpty { throw ExitCode(1) }
    }
}

/// The teacher network at `path` (a .safetensors file, or a train-teacher run or checkpoint
/// folder: its EMA weights unless `raw` or the run kept none).
func loadTeacherNetwork(_ path: String, raw: Bool) throws -> LoadedCheckpoint<Float> {
    let url = URL(fileURLWithPath: path)
    let file: URL
    if !raw, let ema = try? TeacherCheckpoint.networkFile(at: url, ema: true) {
        file = ema
    } else {
        file = try TeacherCheckpoint.networkFile(at: url, ema: false)
    }
    do { return try EDMCheckpoint.load(from: file) } catch {
        throw CLIError("cannot load the teacher from", path: file.path, error)
    }
}
