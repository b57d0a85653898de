// The DMD2 training loop on a CPU: iterations of the update rule (UpdateRule.swift), a JSON-lines
// log per iteration, atomic checkpoints and a resume that continues bitwise identically.
//
// One iteration i (0-based; `step` counts completed iterations, so i = step):
//   draws ← IterationDraws from the trainer's generator (z, y, every t and ε; a k-step
//           generator's step j and re-noising after them)
//   real  ← the loader's next batch (only when the GAN is on, or a few-step generator trains
//           on noised real images, i.e. without backward simulation)
//   pairs ← the next regression pairs (only on generator iterations of a regression run)
//   DMD2Objective.iterate: G's phase when i % ratio == 0, the critic's phase, NaN/±∞ checks
//   before any update, clipping and AdamW steps; then the EMA of G (if kept) after G's step
// Randomness: one seed gives three independent streams (SplitMix64 draws): the head's
// initialisation, the data order (DataLoader) and the trainer's generator (the draws).
//
// Run folder:
//   teacher.safetensors              the frozen teacher μ_real (copied in at the start, so a
//                                    resume needs no --teacher)
//   log.jsonl                        one line per iteration (DistillRecord)
//   checkpoints/step-00000500/       one checkpoint, complete or absent:
//       generator.safetensors        G (EDMCheckpoint: EDM's keys, config, step, class names)
//       generator_ema.safetensors    the EMA of G (when kept)
//       fake.safetensors             μ_fake (EDMCheckpoint)
//       head.safetensors             the GAN head (GANHead.file)
//       optimizer_generator.safetensors, optimizer_critic.safetensors    AdamW states
//       state.json                   the manifest: format, step, the run's config, the trainer's
//                                    random generator (`rng_state`), the loader's state, the
//                                    regression cursor, thread count, dtype, dataset, file sizes
//   run.lock                         held (flock) by the process training in the folder
// A checkpoint is written into a hidden sibling folder and renamed into place (atomic), then
// the oldest are pruned to `keepCheckpoints` (DMD2Train's `RunCheckpointLayout`, shared with the
// teacher's trainer). Nothing non-finite is saved: G, μ_fake, the head, both optimisers' moments
// and the EMA are checked after every iteration's updates and before every write
// (`NonFinite.checkState`). The run folder is locked from `init` until `run()` returns or the
// trainer is released (`RunFolderLock`). Data parallel (config.shards = S > 1, DMD2Train's
// DataParallel, docs/MPI.md): S shards with their own rows and random streams, computed here one
// after the other or on MPI ranks, G's and the critic's gradients averaged in shard order before
// the update; rank 0 locks, logs and writes checkpoints. Bitwise resume needs the same thread count
// (parallel reductions are chunked by it); the manifest records it and a mismatch is reported.
import DMD2Core
import DMD2Data
import DMD2Ops
import DMD2Train
import EDM
import Foundation
import SafeTensors

/// What one iteration did (one line of log.jsonl). Losses of a phase that did not run are nil.
public struct DistillRecord: Codable, Equatable, Sendable {
    public var step: Int
    /// Whether G was updated in this iteration.
    public var generatorStep: Bool
    /// The step j of a k-step generator trained this iteration (nil for one step).
    public var generatorStepIndex: Int?
    public var lossDM: Double?
    public var lossG: Double?
    public var lossRegression: Double?
    public var lossFake: Double
    public var lossD: Double?
    /// L_DM + w_G·L_G (+ w_reg·L_reg) and L_fake + w_D·L_D.
    public var generatorLoss: Double?
    public var criticLoss: Double
    /// Global gradient norms before clipping.
    public var gradNormGenerator: Double?
    public var gradNormCritic: Double
    public var lrGenerator: Double?
    public var lrCritic: Double
    /// Mean of G's batch x_g over all elements (TTUR oscillation shows here).
    public var brightness: Double
    /// σ of the DM loss per image (generator iterations) and of the critic's loss.
    public var sigmaDM: [Double]?
    public var sigmaFake: [Double]
    /// D's mean logits on fake and real images (critic phase, GAN on).
    public var logitFake: Double?
    public var logitReal: Double?
    public var seconds: Double
    public var imagesPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case step, brightness, seconds
        case generatorStep = "generator_step", generatorStepIndex = "generator_step_index", lossDM = "L_DM", lossG = "L_G", lossRegression = "L_reg", lossFake = "L_fake"
        case lossD = "L_D", generatorLoss = "generator_loss", criticLoss = "critic_loss"
        case gradNormGenerator = "grad_norm_generator", gradNormCritic = "grad_norm_critic"
        case lrGenerator = "lr_generator", lrCritic = "lr_critic", sigmaDM = "sigma_dm", sigmaFake = "sigma_fake"
        case logitFake = "logit_fake", logitReal = "logit_real", imagesPerSecond = "img_per_s"
    }
}

/// The manifest of a distillation checkpoint (`state.json`).
public struct DistillCheckpointManifest: RunCheckpointManifest, Equatable {
    public static let format = "swift-dmd2.distill-checkpoint"
    /// 2: the trainer's random generator is stored as `rng_state` (v1 called it `generator`,
    /// the name of G; still read).
    public static let formatVersion = 2
    public static let readableVersions = 1...2
    public static let kind = "distillation checkpoint"

    public var format: String
    public var formatVersion: Int
    public var step: Int
    public var config: DistillConfig
    /// The trainer's random generator after this step (not G).
    public var rngState: RandomGenerator
    /// The real-image loader (nil when the run reads no data).
    public var loader: DataLoader.State?
    /// The next regression pair to read.
    public var regressionCursor: Int
    public var threads: Int
    public var dtype: String
    public var dataset: String?
    public var datasetItems: Int?
    public var classNames: [String]?
    /// Files of the checkpoint and their sizes in bytes.
    public var files: [String: Int]

    public init(format: String = Self.format, formatVersion: Int = Self.formatVersion, step: Int, config: DistillConfig,
                rngState: RandomGenerator, loader: DataLoader.State?, regressionCursor: Int, threads: Int, dtype: String,
                dataset: String?, datasetItems: Int?, classNames: [String]?, files: [String: Int]) {
        self.format = format
        self.formatVersion = formatVersion
        self.step = step
        self.config = config
        self.rngState = rngState
        self.loader = loader
        self.regressionCursor = regressionCursor
        self.threads = threads
        self.dtype = dtype
        self.dataset = dataset
        self.datasetItems = datasetItems
        self.classNames = classNames
        self.files = files
    }

    enum CodingKeys: String, CodingKey {
        case format, step, config, loader, threads, dtype, dataset, files
        case formatVersion = "format_version", regressionCursor = "regression_cursor", datasetItems = "dataset_items"
        case classNames = "class_names", rngState = "rng_state"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        step = try c.decode(Int.self, forKey: .step)
        config = try c.decode(DistillConfig.self, forKey: .config)
        rngState = try ManifestRNGState.decode(RandomGenerator.self, from: decoder)   // or version 1's `generator`
        loader = try c.decodeIfPresent(DataLoader.State.self, forKey: .loader)
        regressionCursor = try c.decode(Int.self, forKey: .regressionCursor)
        threads = try c.decode(Int.self, forKey: .threads)
        dtype = try c.decode(String.self, forKey: .dtype)
        dataset = try c.decodeIfPresent(String.self, forKey: .dataset)
        datasetItems = try c.decodeIfPresent(Int.self, forKey: .datasetItems)
        classNames = try c.decodeIfPresent([String].self, forKey: .classNames)
        files = try c.decode([String: Int].self, forKey: .files)
    }
}

/// Checkpoint folders of a distillation run: the file names; finding, reading and writing them
/// (`folderName`, `all`, `latest`, `manifest(at:)`, `write`) is DMD2Train's `RunCheckpointLayout`.
public enum DistillCheckpoint: RunCheckpointLayout {
    public typealias Manifest = DistillCheckpointManifest
    public static let teacherName = "teacher.safetensors"
    public static let generatorName = "generator.safetensors"
    public static let generatorEMAName = "generator_ema.safetensors"
    public static let fakeName = "fake.safetensors"
    public static let headName = "head.safetensors"
    public static let generatorOptimizerName = "optimizer_generator.safetensors"
    public static let criticOptimizerName = "optimizer_critic.safetensors"

    public static func badCheckpoint(_ message: String) -> any Error { DistillError.badCheckpoint(message) }

    /// The generator file a path designates: a `.safetensors` file as is; a checkpoint folder's
    /// EMA generator (`ema` true, or nil and the run kept one) or raw generator; a run folder's
    /// newest checkpoint.
    public static func generatorFile(at url: URL, ema: Bool? = nil) throws -> URL {
        guard let folder = try checkpointFolder(designatedBy: url) else { return url }
        let manifest = try manifest(at: folder)
        let hasEMA = manifest.files[generatorEMAName] != nil
        if ema == true && !hasEMA { throw DistillError.badCheckpoint("\(folder.path): the run kept no EMA of G; use the raw generator") }
        return folder.appendingPathComponent((ema ?? hasEMA) && hasEMA ? generatorEMAName : generatorName)
    }
}

/// Distils a teacher into a one- or few-step generator (see the file header).
public final class DistillTrainer<T: TensorScalar> {
    public private(set) var config: DistillConfig
    public let runDirectory: URL
    public private(set) var networks: DMD2Networks<T>
    public let optimizers: DMD2Optimizers<T>
    public private(set) var ema: EMA<T>?
    /// The real-image loader (nil when the GAN is off).
    public private(set) var loader: DataLoader?
    /// The trainer's generator (every draw of every iteration).
    public private(set) var rng: RandomGenerator
    /// Iterations completed.
    public private(set) var step: Int
    /// The next regression pair.
    public private(set) var regressionCursor: Int
    public let classNames: [String]?

    private let pairs: RegressionPairs?
    private let datasetName: String?
    /// nil on data-parallel ranks other than 0 (rank 0 logs and writes checkpoints).
    private let log: JSONLinesLog?
    /// Held from `init` until `run()` returns (or the trainer is released).
    private var lock: RunFolderLock?
    /// The data-parallel run (nil: the whole batch at once, in this process).
    public let parallel: DataParallel?
    /// Whether this process writes the log and the checkpoints (rank 0, or no data parallelism).
    public var isRoot: Bool { parallel?.isRoot ?? true }

    /// The EMA of G as a network (nil without EMA).
    public var emaGenerator: UNet<T>? {
        ema.map { e in
            let g = networks.generator.parameters
            return UNet(config: networks.config, parameters: ParameterStore(zip(g.names, e.values).map {
                (name: $0, variable: Variable($1, requiresGrad: false, name: $0))
            }))
        }
    }

    /// A fresh run in `runDirectory` (created; it must not hold checkpoints yet). `dataset`
    /// supplies the real images (needed when the GAN is on); `classNames` go into the checkpoints.
    /// With `dataParallel`, this process is one rank of the group: rank 0 locks the folder and
    /// writes the teacher copy, the log and the checkpoints; the others touch no file.
    public init(config: DistillConfig, teacher: UNet<T>, dataset: (any ImageDataset)?, runDirectory: URL,
                classNames: [String]? = nil, dataParallel: DataParallelSetup? = nil) throws {
        var config = config
        config.network = teacher.config
        try config.validate(in: T.self)
        let parallel = try Self.makeParallel(dataParallel, config)
        let isRoot = parallel?.isRoot ?? true
        func refuseExisting() throws {
            guard let existing = DistillCheckpoint.latest(in: runDirectory) else { return }
            let user = RunFolderLock.holder(of: runDirectory).map { $0 > 0 ? " and is in use by PID \($0)" : " and is in use by another run" } ?? ""
            throw DistillError.badCheckpoint("\(runDirectory.path) already holds checkpoints (\(existing.lastPathComponent))\(user); resume it or choose another run folder")
        }
        if isRoot { try refuseExisting() }
        if let r = config.regression { config.regression?.pairsFile = URL(fileURLWithPath: r.pairsFile).standardizedFileURL.path }
        let pairs = try Self.openPairs(config)
        var seeds = RandomGenerator(seed: config.seed)
        var headRNG = RandomGenerator(seed: seeds.next())
        let loaderSeed = seeds.next()
        let networks = DMD2Networks<T>(teacher: teacher, headRNG: &headRNG)
        let loader = try Self.makeLoader(config, dataset: dataset, seed: loaderSeed)

        var lock: RunFolderLock?
        if isRoot {
            lock = try RunFolderLock(runDirectory)
            try refuseExisting()                                        // written before we locked
            try DistillCheckpoint.createFolder(runDirectory.appendingPathComponent("checkpoints"))
            do { try EDMCheckpoint.save(teacher, to: runDirectory.appendingPathComponent(DistillCheckpoint.teacherName)) } catch {
                throw DistillError.badCheckpoint("cannot write \(runDirectory.appendingPathComponent(DistillCheckpoint.teacherName).path): \(error)")
            }
        }
        self.config = config
        self.runDirectory = runDirectory
        self.networks = networks
        self.optimizers = DMD2Optimizers(networks: networks, generator: config.generatorOptimizer, critic: config.criticOptimizer,
                                         maxGradNorm: config.maxGradNorm)
        self.ema = config.ema.map { EMA(networks.generator.parameters.variables, schedule: $0) }
        self.loader = loader
        self.rng = RandomGenerator(seed: seeds.next())
        self.step = 0
        self.regressionCursor = 0
        self.classNames = classNames ?? dataset?.classNames
        self.pairs = pairs
        self.datasetName = loader == nil ? nil : dataset?.name
        self.lock = lock
        self.parallel = parallel
        let logURL = runDirectory.appendingPathComponent("log.jsonl")
        if isRoot {
            try? FileManager.default.removeItem(at: logURL)             // a run that never checkpointed
            self.log = try JSONLinesLog(url: logURL)
        } else {
            self.log = nil
        }
    }

    /// Resume the newest checkpoint of `runDirectory`. `iterations` may extend (or shorten, not
    /// below the checkpoint's step) the run; everything else comes from the checkpoint.
    /// `settings` and `teacher`, when given, are what the caller asked for: a setting that differs
    /// from the run's (other than `iterations`) or a teacher other than the run's is a
    /// `changedSettings` error naming each. The log is cut back to the checkpoint.
    /// With `dataParallel`, every rank reads the checkpoint; only rank 0 locks the folder (any
    /// rank count dividing the run's shard count S resumes it, bitwise as it would have gone on).
    public init(resuming runDirectory: URL, dataset: (any ImageDataset)?, iterations: Int? = nil,
                expecting settings: DistillConfig? = nil, teacher requestedTeacher: UNet<T>? = nil,
                dataParallel: DataParallelSetup? = nil, report: (String) -> Void = { _ in }) throws {
        func noCheckpoint() -> DistillError {
            .badCheckpoint("\(runDirectory.path): no checkpoint to resume (checkpoints/step-*/\(DistillCheckpoint.manifestName))")
        }
        guard DistillCheckpoint.latest(in: runDirectory) != nil else { throw noCheckpoint() }
        let isRoot = (dataParallel?.group.rank ?? 0) == 0
        let lock = isRoot ? try RunFolderLock(runDirectory) : nil
        guard let folder = DistillCheckpoint.latest(in: runDirectory) else { throw noCheckpoint() }
        let manifest = try DistillCheckpoint.manifest(at: folder)
        guard manifest.dtype == T.dtypeTag else {
            throw DistillError.badCheckpoint("\(folder.path): trained in \(manifest.dtype), resumed in \(T.dtypeTag)")
        }
        var changes: [SettingChange] = []
        if var settings {
            if let requestedTeacher { settings.network = requestedTeacher.config }
            changes = SettingChange.between(manifest.config, settings, ignoring: ["iterations"])
        }
        var config = manifest.config
        if let iterations { config.iterations = iterations }
        try config.validate(in: T.self)
        guard config.iterations >= manifest.step else {
            throw DistillError.badConfig("the run is at iteration \(manifest.step); iterations \(config.iterations) would end before it")
        }
        let network = DMD2Networks<T>.studentConfig(teacher: config.network)
        let parallel = try Self.makeParallel(dataParallel, config)

        func load(_ name: String, _ c: UNetConfig) throws -> UNet<T> {
            let url = name == DistillCheckpoint.teacherName ? runDirectory.appendingPathComponent(name) : folder.appendingPathComponent(name)
            do { return try EDMCheckpoint.load(from: url, config: c).net } catch {
                throw DistillError.badCheckpoint("\(url.path): \(error)")
            }
        }
        let teacher = try load(DistillCheckpoint.teacherName, config.network)
        if let requestedTeacher, requestedTeacher.config == teacher.config,
           zip(requestedTeacher.parameters.variables, teacher.parameters.variables).contains(where: { $0.value != $1.value }) {
            changes.append(SettingChange(key: "teacher", run: "the weights in \(runDirectory.appendingPathComponent(DistillCheckpoint.teacherName).path)",
                                         requested: "other weights"))
        }
        if !changes.isEmpty { throw DistillError.changedSettings(changes) }
        let generator = try load(DistillCheckpoint.generatorName, network)
        let fake = try load(DistillCheckpoint.fakeName, network)
        let head: GANHead<T> = try GANHead.load(from: folder.appendingPathComponent(DistillCheckpoint.headName))
        let networks = DMD2Networks(generator: generator, real: UNet(config: network, parameters: teacher.parameters),
                                    fake: fake, head: head)
        let optimizers = DMD2Optimizers(networks: networks, generator: config.generatorOptimizer, critic: config.criticOptimizer,
                                        maxGradNorm: config.maxGradNorm)
        for (optimizer, name) in [(optimizers.generator, DistillCheckpoint.generatorOptimizerName),
                                  (optimizers.critic, DistillCheckpoint.criticOptimizerName)] {
            let url = folder.appendingPathComponent(name)
            do { try optimizer.restore(from: url) } catch { throw DistillError.badCheckpoint("\(url.path): \(error)") }
        }
        var ema: EMA<T>?
        if let schedule = config.ema {
            let url = folder.appendingPathComponent(DistillCheckpoint.generatorEMAName)
            do { ema = EMA(values: try load(DistillCheckpoint.generatorEMAName, network).parameters.variables.map(\.value), schedule: schedule) } catch {
                throw DistillError.badCheckpoint("\(url.path): \(error)")
            }
        }
        var loader = try Self.makeLoader(config, dataset: dataset, seed: 0)
        if var l = loader {
            guard let state = manifest.loader, l.count == manifest.datasetItems else {
                throw DistillError.dataMismatch("\(dataset!.name) gives \(l.count) images, the run read \(manifest.datasetItems.map(String.init) ?? "none") from \(manifest.dataset ?? "no dataset")")
            }
            l.restore(state)
            loader = l
            if dataset!.name != manifest.dataset { report("note: the run read real images from \(manifest.dataset ?? "?"), resumed with \(dataset!.name)") }
        }
        if manifest.threads != Threads.count {
            report("note: the run was trained with \(manifest.threads) threads, resumed with \(Threads.count) (results do not depend on the thread count; a build before the thread pool's fixed chunks may differ in the last bits)")
        }

        self.config = config
        self.runDirectory = runDirectory
        self.networks = networks
        self.optimizers = optimizers
        self.ema = ema
        self.loader = loader
        self.rng = manifest.rngState
        self.step = manifest.step
        self.regressionCursor = manifest.regressionCursor
        self.classNames = manifest.classNames
        self.pairs = try Self.openPairs(config)
        self.datasetName = manifest.dataset
        self.lock = lock
        self.parallel = parallel
        let logURL = runDirectory.appendingPathComponent("log.jsonl")
        let resumedStep = manifest.step
        if isRoot {
            try JSONLinesLog.truncate(logURL) { ($0["step"] as? Int).map { $0 <= resumedStep } ?? false }
            self.log = try JSONLinesLog(url: logURL)
        } else {
            self.log = nil
        }
    }

    /// The run's DataParallel: the given group's, a single process computing S > 1 shards, or nil.
    static func makeParallel(_ setup: DataParallelSetup?, _ config: DistillConfig) throws -> DataParallel? {
        do {
            if let setup { return try DataParallel(setup: setup, shards: config.shardCount, batchSize: config.batchSize) }
            guard config.shardCount > 1 else { return nil }
            return try DataParallel(setup: DataParallelSetup(group: SingleProcess()), shards: config.shardCount, batchSize: config.batchSize)
        } catch let e as DataParallelError {
            throw DistillError.badConfig(e.description)
        }
    }

    /// Every network's weights in a fixed order (G, μ_fake, the head), for the ranks' comparison.
    private var allWeights: [Tensor<T>] {
        (networks.generator.parameters.variables + networks.criticParameters.map(\.variable)).map(\.value)
    }

    /// Throws on every rank unless all ranks hold the same weights (a data-parallel run).
    public func checkRanksAgree(_ what: String = "weights") throws {
        guard let parallel else { return }
        try parallel.checkIdentical(allWeights, what: what, step: step)
    }

    // MARK: Training

    /// One iteration (see the file header); also appends its line to log.jsonl.
    @discardableResult
    public func iterate() throws -> DistillRecord {
        try holdingLock { try takeIteration() }
    }

    private func takeIteration() throws -> DistillRecord {
        if let parallel, parallel.shards > 1 { return try takeShardedIteration(parallel) }
        let started = ProcessInfo.processInfo.systemUptime
        let c = config.network, B = config.batchSize
        let updateGenerator = config.updatesGenerator(atIteration: step)
        let draws = IterationDraws<T>.draw(shape: [B, c.inChannels, c.resolution, c.resolution], classes: c.labelDim,
                                           dmSteps: config.dmSteps, generatorSteps: config.generatorSteps, rng: &rng)
        var real: RealBatch<T>?
        if config.readsRealImages, var l = loader {
            let batch = try l.next()
            loader = l
            let images = T.self == Float.self ? batch.images as! Tensor<T> : batch.images.converted(to: T.self)
            real = RealBatch(images: images, labels: c.labelDim > 0 ? oneHot(batch.labels, classes: c.labelDim) : nil)
        }
        let regression: RegressionBatch<T>? = updateGenerator ? pairs.map { $0.batch(at: regressionCursor, size: B) } : nil

        let outcome = try config.objective.iterate(networks: networks, optimizers: optimizers, draws: draws, real: real,
                                                   regression: regression, updateGenerator: updateGenerator, step: step + 1)
        try finishIteration(updateGenerator: updateGenerator, regression: regression != nil)

        let seconds = ProcessInfo.processInfo.systemUptime - started
        let g = outcome.generator, k = outcome.critic
        let mean = { (t: Tensor<T>) in Double(t.mean()) }
        let record = DistillRecord(
            step: step, generatorStep: updateGenerator, generatorStepIndex: config.generatorSteps > 1 ? outcome.rollout.step : nil,
            lossDM: (g?.dm?.loss.value.scalar).map(Double.init), lossG: (g?.gan?.loss.value.scalar).map(Double.init),
            lossRegression: (g?.regression).map(Double.init), lossFake: Double(k.fake.loss.value.scalar),
            lossD: (k.discriminator?.loss.value.scalar).map(Double.init), generatorLoss: (g?.total).map(Double.init),
            criticLoss: Double(k.total), gradNormGenerator: outcome.generatorGradNorm, gradNormCritic: outcome.criticGradNorm,
            lrGenerator: outcome.generatorLearningRate, lrCritic: outcome.criticLearningRate, brightness: mean(outcome.images),
            sigmaDM: g?.dm?.sigma, sigmaFake: k.fake.sigma, logitFake: k.discriminator.map { mean($0.logitsFake) },
            logitReal: k.discriminator.map { mean($0.logitsReal) }, seconds: seconds,
            imagesPerSecond: Double(B) / max(seconds, 1e-9))
        try log?.write(record)
        return record
    }

    /// After the optimiser steps: the step count, the regression cursor, G's EMA, the checks.
    private func finishIteration(updateGenerator: Bool, regression: Bool) throws {
        let B = config.batchSize
        step += 1
        if let pairs, regression { regressionCursor = (regressionCursor + B) % pairs.count }
        if updateGenerator, ema != nil {
            let updates = (step - 1) / config.tturRatio + 1                 // generator steps so far
            ema!.update(networks.generator.parameters.variables, batchImages: B, imagesSeen: updates * B)
        }
        if updateGenerator { try NonFinite.checkState(optimizers.generator, ema: ema?.values, prefix: "G ", step: step, phase: .afterUpdate) }
        try NonFinite.checkState(optimizers.critic, prefix: "critic ", step: step, phase: .afterUpdate)
    }

    /// One iteration over S shards (DMD2Train's DataParallel): this rank's shards one after the
    /// other, each with its own rows of the real batch and regression pairs and its own random
    /// stream (a few-step generator's step j is drawn once, from the trainer's generator, for
    /// the whole batch), their gradients averaged over all shards per optimiser, then one
    /// update. The logged losses are the shards' means; the σ lists are concatenated.
    private func takeShardedIteration(_ parallel: DataParallel) throws -> DistillRecord {
        let started = ProcessInfo.processInfo.systemUptime
        let c = config.network, B = config.batchSize, b = B / parallel.shards
        let updateGenerator = config.updatesGenerator(atIteration: step)
        let sharedStep: Int? = config.generatorSteps > 1 ? rng.int(in: 0...(config.generatorSteps - 1)) : nil
        let streams = parallel.shardGenerators(&rng)
        let rows = parallel.localRows(batchSize: B)
        var reals: [RealBatch<T>?] = rows.map { _ in nil }
        if config.readsRealImages, var l = loader {
            let batches = try l.next(shards: rows)
            loader = l
            reals = batches.map { batch in
                RealBatch(images: T.self == Float.self ? batch.images as! Tensor<T> : batch.images.converted(to: T.self),
                          labels: c.labelDim > 0 ? oneHot(batch.labels, classes: c.labelDim) : nil)
            }
        }
        let generatorVariables = networks.generator.parameters.variables
        let criticVariables = networks.criticParameters.map(\.variable)
        var generatorFlats: [[T]] = [], criticFlats: [[T]] = [], summaries: [[Double]] = []
        var generatorPresent: [Bool] = [], criticPresent: [Bool] = []
        var regressionUsed = false
        for (k, shard) in parallel.localShards.enumerated() {
            var stream = streams[shard]
            var draws = IterationDraws<T>.draw(shape: [b, c.inChannels, c.resolution, c.resolution], classes: c.labelDim,
                                               dmSteps: config.dmSteps, generatorSteps: config.generatorSteps, rng: &stream)
            if let sharedStep { draws.fewStep?.step = sharedStep }
            let regression: RegressionBatch<T>? = updateGenerator ? pairs.map { $0.batch(at: regressionCursor + rows[k].lowerBound, size: b) } : nil
            regressionUsed = regression != nil
            let outcome = try config.objective.gradients(networks: networks, optimizers: optimizers, draws: draws, real: reals[k],
                                                         regression: regression, updateGenerator: updateGenerator, step: step + 1)
            if updateGenerator {
                let packed = FlatGradients.pack(generatorVariables)
                generatorFlats.append(packed.values)
                generatorPresent = packed.present
            }
            let packed = FlatGradients.pack(criticVariables)
            criticFlats.append(packed.values)
            criticPresent = packed.present
            summaries.append(Self.summary(outcome, shardSize: b))
        }
        optimizers.generator.zeroGrad()
        optimizers.critic.zeroGrad()
        if updateGenerator {
            FlatGradients.unpack(try parallel.average(generatorFlats), into: generatorVariables, present: generatorPresent)
        }
        FlatGradients.unpack(try parallel.average(criticFlats), into: criticVariables, present: criticPresent)
        let all = try parallel.gatherShards(summaries)
        let g = networks.generator.parameters, f = networks.fake.parameters, h = networks.head.parameters
        if updateGenerator {
            try NonFinite.checkGradients(names: g.names.map { "generator.\($0)" }, parameters: g.variables, step: step + 1)
        }
        try NonFinite.checkGradients(names: f.names.map { "fake.\($0)" } + h.names.map { "head.\($0)" }, parameters: criticVariables, step: step + 1)
        let applied = optimizers.apply(updateGenerator: updateGenerator)
        try finishIteration(updateGenerator: updateGenerator, regression: regressionUsed)

        let seconds = ProcessInfo.processInfo.systemUptime - started
        func mean(_ i: Int) -> Double? {
            guard !all[0][i].isNaN else { return nil }                  // absent on every shard
            return all.map { $0[i] }.reduce(0, +) / Double(all.count)
        }
        let sigmaDM: [Double]? = updateGenerator && config.distributionMatching ? all.flatMap { Array($0[10..<(10 + b)]) } : nil
        let record = DistillRecord(
            step: step, generatorStep: updateGenerator, generatorStepIndex: sharedStep,
            lossDM: mean(0), lossG: mean(1), lossRegression: mean(2), lossFake: mean(3) ?? .nan, lossD: mean(4),
            generatorLoss: mean(5), criticLoss: mean(6) ?? .nan,
            gradNormGenerator: applied.generatorGradNorm, gradNormCritic: applied.criticGradNorm,
            lrGenerator: applied.generatorLearningRate, lrCritic: applied.criticLearningRate, brightness: mean(7) ?? .nan,
            sigmaDM: sigmaDM, sigmaFake: all.flatMap { Array($0[(10 + b)..<(10 + 2 * b)]) },
            logitFake: mean(8), logitReal: mean(9), seconds: seconds, imagesPerSecond: Double(B) / max(seconds, 1e-9))
        try log?.write(record)
        return record
    }

    /// A shard's logged values: L_DM, L_G, L_reg, L_fake, L_D, G's total, the critic's total,
    /// x_g's mean, D's mean logits on fake and real (NaN where absent), then σ_DM and σ_fake per image.
    static func summary(_ outcome: IterationOutcome<T>, shardSize b: Int) -> [Double] {
        let g = outcome.generator, k = outcome.critic
        let mean = { (t: Tensor<T>) in Double(t.mean()) }
        var values: [Double] = [
            (g?.dm?.loss.value.scalar).map(Double.init) ?? .nan, (g?.gan?.loss.value.scalar).map(Double.init) ?? .nan,
            (g?.regression).map(Double.init) ?? .nan, Double(k.fake.loss.value.scalar),
            (k.discriminator?.loss.value.scalar).map(Double.init) ?? .nan, (g?.total).map(Double.init) ?? .nan,
            Double(k.total), mean(outcome.images), k.discriminator.map { mean($0.logitsFake) } ?? .nan,
            k.discriminator.map { mean($0.logitsReal) } ?? .nan,
        ]
        values += g?.dm?.sigma ?? [Double](repeating: .nan, count: b)
        values += k.fake.sigma
        return values
    }

    /// Run until `config.iterations`, writing a checkpoint every `checkpointInterval` iterations
    /// and at the end. A `NonFiniteError` stops the run before its updates; the checkpoints on
    /// disk stay as they were. The run folder's lock is released when this returns or throws.
    public func run(onIteration: (DistillRecord) -> Void = { _ in }, onCheckpoint: (URL) -> Void = { _ in }) throws {
        defer { lock = nil }
        if lock == nil && isRoot { lock = try RunFolderLock(runDirectory) }
        try checkRanksAgree("starting weights")
        while step < config.iterations {
            let record = try iterate()
            onIteration(record)
            if let k = parallel?.checkInterval, k > 0, step % k == 0 { try checkRanksAgree() }
            let interval = config.checkpointInterval
            if step == config.iterations || (interval > 0 && step % interval == 0) {
                onCheckpoint(try saveCheckpoint())
            }
        }
    }

    // MARK: Checkpoints

    /// Write the current state as `checkpoints/step-<step>` atomically, then prune old ones.
    /// Throws a `NonFiniteError` (and writes nothing) if any weight, moment or the EMA is not finite.
    /// In a data-parallel run every rank calls it: the ranks' weights are compared, then rank 0
    /// writes (the others return the folder's URL and write nothing).
    @discardableResult
    public func saveCheckpoint() throws -> URL {
        try checkRanksAgree()
        guard isRoot else { return runDirectory.appendingPathComponent("checkpoints").appendingPathComponent(DistillCheckpoint.folderName(step: step)) }
        return try holdingLock {
            try NonFinite.checkState(optimizers.generator, ema: ema?.values, prefix: "G ", step: step, phase: .beforeSave)
            try NonFinite.checkState(optimizers.critic, prefix: "critic ", step: step, phase: .beforeSave)
            var metadata = ["sigma_max": String(DMD2Networks<T>.sigmaMax)]
            if config.generatorSteps > 1 { metadata.merge(config.generatorSchedule.metadata) { $1 } }
            let json = JSONEncoder()
            json.outputFormatting = [.sortedKeys]
            if let classNames, let data = try? json.encode(classNames) { metadata["class_names"] = String(decoding: data, as: UTF8.self) }
            let files = [DistillCheckpoint.generatorName, DistillCheckpoint.generatorEMAName, DistillCheckpoint.fakeName,
                         DistillCheckpoint.headName, DistillCheckpoint.generatorOptimizerName, DistillCheckpoint.criticOptimizerName]
            return try DistillCheckpoint.write(step: step, run: runDirectory, keep: config.keepCheckpoints, files: files, fill: { partial in
                func save(_ net: UNet<T>, _ file: String, role: String) throws {
                    var m = metadata
                    m["role"] = role
                    try EDMCheckpoint.save(net, to: partial.appendingPathComponent(file), step: step, metadata: m)
                }
                try save(networks.generator.net, DistillCheckpoint.generatorName, role: "dmd2-generator")
                if let emaGenerator { try save(emaGenerator, DistillCheckpoint.generatorEMAName, role: "dmd2-generator-ema") }
                try save(networks.fake.net, DistillCheckpoint.fakeName, role: "dmd2-fake-critic")
                try networks.head.file(step: step).write(to: partial.appendingPathComponent(DistillCheckpoint.headName))
                try optimizers.generator.save(to: partial.appendingPathComponent(DistillCheckpoint.generatorOptimizerName))
                try optimizers.critic.save(to: partial.appendingPathComponent(DistillCheckpoint.criticOptimizerName))
            }, manifest: { files in
                DistillCheckpointManifest(
                    step: step, config: config, rngState: rng, loader: loader?.state, regressionCursor: regressionCursor,
                    threads: Threads.count, dtype: T.dtypeTag, dataset: datasetName, datasetItems: loader?.count,
                    classNames: classNames, files: files)
            })
        }
    }

    /// `body` with the run folder locked: the lock held since `init`, or one taken for the call
    /// when `run()` has released it.
    private func holdingLock<R>(_ body: () throws -> R) throws -> R {
        guard isRoot else { return try body() }
        return try RunFolderLock.holding(lock, runDirectory, body)
    }

    // MARK: Helpers

    /// The real-image loader of a run that reads real images (the GAN, or a few-step generator
    /// without backward simulation; nil otherwise), after checking the dataset fits the teacher.
    static func makeLoader(_ config: DistillConfig, dataset: (any ImageDataset)?, seed: UInt64) throws -> DataLoader? {
        guard config.readsRealImages else { return nil }
        guard let dataset else {
            throw DistillError.dataMismatch(config.gan ? "the GAN terms need real images: pass a dataset (or turn the GAN off)"
                                                       : "a few-step generator without backward simulation trains on noised real images: pass a dataset")
        }
        let n = config.network
        guard dataset.resolution == n.resolution, dataset.channels == n.inChannels else {
            throw DistillError.dataMismatch("\(dataset.name) holds \(dataset.resolution)×\(dataset.resolution)×\(dataset.channels) images, the teacher takes \(n.resolution)×\(n.resolution)×\(n.inChannels)")
        }
        if n.labelDim > 0 {
            guard dataset.classCount == n.labelDim else {
                throw DistillError.dataMismatch("\(dataset.name) has \(dataset.classCount) classes, the teacher is conditioned on \(n.labelDim)")
            }
        }
        return DataLoader(dataset: dataset, batchSize: config.batchSize, seed: seed, maxItems: config.maxItems)
    }

    static func openPairs(_ config: DistillConfig) throws -> RegressionPairs? {
        guard let r = config.regression else { return nil }
        let pairs = try RegressionPairs(contentsOf: URL(fileURLWithPath: r.pairsFile))
        let n = config.network
        guard Array(pairs.latents.shape.dropFirst()) == [n.inChannels, n.resolution, n.resolution], pairs.config.labelDim == n.labelDim else {
            throw DistillError.dataMismatch("\(r.pairsFile): pairs of \(pairs.latents.shape) with \(pairs.config.labelDim) classes do not fit the teacher (\(n.inChannels)×\(n.resolution)×\(n.resolution), \(n.labelDim) classes)")
        }
        return pairs
    }
}
