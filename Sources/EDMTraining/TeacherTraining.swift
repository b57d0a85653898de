// Training an EDM teacher (Karras et al. 2022, §5; docs/METHOD.md §1) on a CPU: the EDM loss with
// label dropout, AdamW with warm-up, optional gradient clipping, an EMA of the weights, JSON-lines
// logs, atomic checkpoints, and resume that continues bitwise identically.
//
// One step (B = batch size):
//   batch (x, y) ← loader.next()                      x [B, C, R, R] in [−1, 1], y one-hot [B, K]
//   masks ← dropout masks seeded by one draw of the trainer's generator
//   L ← EDMLoss(D; x, y) with σ, ε, label drops drawn from the trainer's generator
//   stop if L or any gradient is NaN/±∞ (NonFiniteError: step and tensor), before any update
//   ‖g‖ ← global gradient norm (clipped to maxGradNorm when set)
//   AdamW step; θ_ema ← θ + (θ_ema − θ)·β
// Randomness: one seed gives three independent streams (SplitMix64 draws): the initial weights,
// the data order (DataLoader), and the trainer's generator (dropout, σ, ε, label drops).
//
// Run folder:
//   log.jsonl                        one line per step: step, loss, grad_norm, lr, img_per_s, …
//   checkpoints/step-00000200/       one checkpoint, complete or absent:
//       net.safetensors              the network (EDMCheckpoint: EDM's keys, config, step, class names)
//       ema.safetensors              the EMA network (when the run keeps an EMA)
//       optimizer.safetensors        AdamW's m, v and steps (DMD2Train's format)
//       state.json                   the manifest: format, step, the training config, the trainer's
//                                    random generator (`rng_state`), the loader's state, thread count,
//                                    dtype, file sizes
//   run.lock                         held (flock) by the process training in the folder
// A checkpoint is written into a hidden sibling folder and renamed into place (rename(2) of a
// folder is atomic), so a crash leaves the previous checkpoints and no partial one; the oldest are
// then pruned down to `keepCheckpoints` (DMD2Train's `RunCheckpointLayout`, shared with DMD2's
// trainer). Nothing non-finite is saved: the weights, AdamW's moments and the EMA are checked
// after every update and before every write (`NonFinite.checkState`). The run folder is locked
// from `init` until `run()` returns or the trainer is released (`RunFolderLock`). Loading is strict: the manifest's files must exist with
// their recorded sizes, and the safetensors files load strictly (a missing, unexpected or
// mis-shaped key is an error naming it).
// Data parallel (config.shards = S > 1, DMD2Train's DataParallel, docs/MPI.md): the batch is cut
// into S shards, each with its own rows and random stream (seeded by one draw of the trainer's
// generator per step), computed one after the other here or spread over MPI ranks; their
// gradients are averaged in shard order, so any rank count dividing S gives the same bits. Rank 0
// locks, logs and writes checkpoints; every rank resumes from them.
// Bitwise resume needs the same thread count (parallel reductions are chunked by it) and the
// same dataset; the manifest records both and a mismatch is reported.
import DMD2Core
import DMD2Data
import DMD2Ops
import DMD2Train
import EDM
import Foundation
import SafeTensors

/// The settings of a teacher training run (stored in every checkpoint).
public struct TeacherTrainingConfig: Codable, Equatable, Sendable {
    /// The network (its `labelDropout` is the loss's label dropout).
    public var network: UNetConfig
    public var batchSize: Int
    public var optimizer: AdamWConfig
    /// nil: no EMA.
    public var ema: EMASchedule?
    /// Total steps of the run.
    public var steps: Int
    /// A checkpoint every this many steps (and at the last step); 0: only at the last step.
    public var checkpointInterval: Int
    /// Checkpoints kept (the newest); 0 keeps all.
    public var keepCheckpoints: Int
    public var seed: UInt64
    /// Mirror training images at random (EDM's `xflip` augmentation).
    public var xflip: Bool
    /// Clip the global gradient norm to this (nil: no clipping; the norm is still logged).
    public var maxGradNorm: Double?
    /// EDM's log-normal σ distribution: ln σ ~ N(pMean, pStd²).
    public var pMean: Double
    public var pStd: Double
    public var sigmaData: Double
    /// Train on at most this many images (balanced over classes); nil: all.
    public var maxItems: Int?
    /// Data-parallel shards S of the batch (DMD2Train's DataParallel: each shard has its own
    /// random stream, gradients averaged in shard order); nil or 1: the whole batch at once,
    /// one stream. Any number of ranks dividing S computes the same steps.
    public var shards: Int?
    /// The learning rate falls linearly over the run's last this many steps (nil: constant after
    /// the warm-up; AdamW.swift's schedule). Like `steps`, it may be set or changed on resume.
    public var coolDownSteps: Int?

    public init(network: UNetConfig, batchSize: Int, optimizer: AdamWConfig, ema: EMASchedule?, steps: Int,
                checkpointInterval: Int, keepCheckpoints: Int = 3, seed: UInt64, xflip: Bool = false,
                maxGradNorm: Double? = nil, pMean: Double = -1.2, pStd: Double = 1.2, sigmaData: Double = 0.5,
                maxItems: Int? = nil, shards: Int? = nil, coolDownSteps: Int? = nil) {
        self.network = network
        self.batchSize = batchSize
        self.optimizer = optimizer
        self.ema = ema
        self.steps = steps
        self.checkpointInterval = checkpointInterval
        self.keepCheckpoints = keepCheckpoints
        self.seed = seed
        self.xflip = xflip
        self.maxGradNorm = maxGradNorm
        self.pMean = pMean
        self.pStd = pStd
        self.sigmaData = sigmaData
        self.maxItems = maxItems
        self.shards = shards
        self.coolDownSteps = coolDownSteps
    }

    /// The optimiser's settings with the run's cool-down over its last `coolDownSteps` steps.
    public var optimizerSchedule: AdamWConfig {
        var o = optimizer
        o.coolDown = coolDownSteps.map { LinearCoolDown(last: $0, of: steps) }
        return o
    }

    /// S (1 without sharding).
    public var shardCount: Int { shards ?? 1 }

    /// The loss of this run.
    public var loss: EDMLoss { EDMLoss(pMean: pMean, pStd: pStd, labelDropout: network.labelDropout) }

    /// Throws a `TeacherTrainingError.badConfig` naming the first bad setting.
    public func validate() throws {
        func fail(_ m: String) -> TeacherTrainingError { .badConfig(m) }
        do { try network.validate() } catch { throw fail("\(error)") }
        guard batchSize > 0 else { throw fail("batch size \(batchSize) must be positive") }
        guard steps >= 1 else { throw fail("steps \(steps) must be ≥ 1 (a run of no steps writes no checkpoint)") }
        guard checkpointInterval >= 0, keepCheckpoints >= 0 else {
            throw fail("checkpoint interval \(checkpointInterval) and kept checkpoints \(keepCheckpoints) must be ≥ 0")
        }
        if let maxGradNorm, !(maxGradNorm > 0 && maxGradNorm.isFinite) { throw fail("max gradient norm \(maxGradNorm) must be finite and > 0") }
        if let maxItems, maxItems <= 0 { throw fail("max items \(maxItems) must be positive") }
        if let coolDownSteps, !(1...steps).contains(coolDownSteps) {
            throw fail("cool-down of \(coolDownSteps) steps must lie in 1…\(steps) (the run's steps)")
        }
        if let shards {
            guard shards >= 1, batchSize % shards == 0 else { throw fail("batch size \(batchSize) cannot be cut into \(shards) equal shards") }
        }
        guard pStd > 0, sigmaData > 0 else { throw fail("pStd \(pStd) and sigmaData \(sigmaData) must be > 0") }
        let o = optimizer
        guard o.learningRate >= 0, o.learningRate.isFinite, (0..<1).contains(o.beta1), (0..<1).contains(o.beta2),
              o.eps > 0, o.weightDecay >= 0, o.warmUpSteps >= 0 else { throw fail("optimizer settings out of range: \(o)") }
        switch ema {
        case .decay(let β)?: guard (0...1).contains(β) else { throw fail("EMA decay \(β) must lie in [0, 1]") }
        case .halfLife(let H, let r)?:
            guard H > 0, H.isFinite, r.map({ $0 > 0 && $0.isFinite }) ?? true else { throw fail("EMA half-life \(H) / ramp-up \(String(describing: r)) out of range") }
        case nil: break
        }
    }

    /// `validate()`, and the optimiser's settings representable in `T` (the network's precision).
    public func validate<T: TensorScalar>(in _: T.Type) throws {
        try validate()
        if let problem = optimizer.precisionProblem(in: T.self) { throw TeacherTrainingError.badConfig(problem) }
    }
}

/// Why a run could not start, resume or save.
public enum TeacherTrainingError: Error, CustomStringConvertible, Equatable {
    case badConfig(String)
    /// The dataset does not fit the network.
    case dataMismatch(String)
    /// A run folder or checkpoint that cannot be used (the message names the file).
    case badCheckpoint(String)
    /// A fresh run in a folder that already has checkpoints.
    case runExists(String)
    /// A resume asked to change settings of the run (each change named).
    case changedSettings([SettingChange])

    public var description: String {
        switch self {
        case .badConfig(let m): "training config: \(m)"
        case .dataMismatch(let m): "dataset: \(m)"
        case .badCheckpoint(let m): "checkpoint: \(m)"
        case .runExists(let m): m
        case .changedSettings(let changes):
            "resuming would change the run's settings:\n" + changes.map { "  \($0)" }.joined(separator: "\n")
        }
    }
}

/// What one step did (one line of log.jsonl).
public struct TeacherStepRecord: Codable, Equatable, Sendable {
    public var step: Int
    public var loss: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    public var lr: Double
    /// EMA β of this step (nil without EMA).
    public var emaBeta: Double?
    /// Images seen after this step.
    public var images: Int
    public var epoch: Int
    /// Wall-clock seconds of this step and the images per second they give.
    public var seconds: Double
    public var imagesPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case step, loss, lr, images, epoch, seconds
        case gradNorm = "grad_norm", emaBeta = "ema_beta", imagesPerSecond = "img_per_s"
    }
}

/// The manifest of a checkpoint folder (`state.json`).
public struct TeacherCheckpointManifest: RunCheckpointManifest, Equatable {
    public static let format = "swift-dmd2.teacher-checkpoint"
    /// 2: the trainer's random generator is stored as `rng_state` (v1: `generator`; still read).
    public static let formatVersion = 2
    public static let readableVersions = 1...2
    public static let kind = "teacher checkpoint"

    public var format: String
    public var formatVersion: Int
    public var step: Int
    public var imagesSeen: Int
    public var config: TeacherTrainingConfig
    /// The trainer's random generator after this step.
    public var rngState: RandomGenerator
    public var loader: DataLoader.State
    public var threads: Int
    /// "F32" or "F64".
    public var dtype: String
    /// The dataset trained on (path as given) and its size after the class subset and cap.
    public var dataset: String
    public var datasetItems: Int
    public var classNames: [String]?
    /// Files of the checkpoint and their sizes in bytes.
    public var files: [String: Int]

    public init(format: String = Self.format, formatVersion: Int = Self.formatVersion, step: Int, imagesSeen: Int,
                config: TeacherTrainingConfig, rngState: RandomGenerator, loader: DataLoader.State, threads: Int, dtype: String,
                dataset: String, datasetItems: Int, classNames: [String]?, files: [String: Int]) {
        self.format = format
        self.formatVersion = formatVersion
        self.step = step
        self.imagesSeen = imagesSeen
        self.config = config
        self.rngState = rngState
        self.loader = loader
        self.threads = threads
        self.dtype = dtype
        self.dataset = dataset
        self.datasetItems = datasetItems
        self.classNames = classNames
        self.files = files
    }

    enum CodingKeys: String, CodingKey {
        case format, step, config, loader, threads, dtype, dataset, files
        case formatVersion = "format_version", imagesSeen = "images_seen", datasetItems = "dataset_items"
        case classNames = "class_names", rngState = "rng_state"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        step = try c.decode(Int.self, forKey: .step)
        imagesSeen = try c.decode(Int.self, forKey: .imagesSeen)
        config = try c.decode(TeacherTrainingConfig.self, forKey: .config)
        rngState = try ManifestRNGState.decode(RandomGenerator.self, from: decoder)   // or version 1's `generator`
        loader = try c.decode(DataLoader.State.self, forKey: .loader)
        threads = try c.decode(Int.self, forKey: .threads)
        dtype = try c.decode(String.self, forKey: .dtype)
        dataset = try c.decode(String.self, forKey: .dataset)
        datasetItems = try c.decode(Int.self, forKey: .datasetItems)
        classNames = try c.decodeIfPresent([String].self, forKey: .classNames)
        files = try c.decode([String: Int].self, forKey: .files)
    }
}

/// Checkpoint folders of a teacher run: the file names; finding, reading and writing them
/// (`folderName`, `all`, `latest`, `manifest(at:)`, `write`) is DMD2Train's `RunCheckpointLayout`.
public enum TeacherCheckpoint: RunCheckpointLayout {
    public typealias Manifest = TeacherCheckpointManifest
    public static let networkName = "net.safetensors"
    public static let emaName = "ema.safetensors"
    public static let optimizerName = "optimizer.safetensors"

    public static func badCheckpoint(_ message: String) -> any Error { TeacherTrainingError.badCheckpoint(message) }

    /// The network file a path designates: a `.safetensors` file as is; a checkpoint folder's
    /// EMA network (`ema: true`, when it has one) or raw network; a run folder's newest checkpoint.
    public static func networkFile(at url: URL, ema: Bool) throws -> URL {
        guard let folder = try checkpointFolder(designatedBy: url) else { return url }
        let manifest = try manifest(at: folder)
        if ema {
            guard manifest.files[emaName] != nil else {
                throw TeacherTrainingError.badCheckpoint("\(folder.path): the run kept no EMA; use the raw network")
            }
            return folder.appendingPathComponent(emaName)
        }
        return folder.appendingPathComponent(networkName)
    }
}

/// Trains an EDM denoiser on a dataset (see the file header).
public final class TeacherTrainer<T: TensorScalar> {
    public private(set) var config: TeacherTrainingConfig
    public let runDirectory: URL
    public private(set) var denoiser: Denoiser<T>
    public let optimizer: AdamW<T>
    public private(set) var ema: EMA<T>?
    public private(set) var loader: DataLoader
    /// The trainer's generator (dropout, σ, ε, label drops).
    public private(set) var generator: RandomGenerator
    /// Steps completed.
    public private(set) var step: Int
    public let classNames: [String]?

    private let datasetName: String
    /// nil on data-parallel ranks other than 0 (rank 0 logs and writes checkpoints).
    private let log: JSONLinesLog?
    private let report: (String) -> Void
    /// The data-parallel run (nil: the whole batch at once, in this process).
    public let parallel: DataParallel?
    /// Whether this process writes the log and the checkpoints (rank 0, or no data parallelism).
    public var isRoot: Bool { parallel?.isRoot ?? true }
    /// Held from `init` until `run()` returns (or the trainer is released).
    private var lock: RunFolderLock?

    public var parameters: ParameterStore<T> { denoiser.parameters }
    /// The EMA network (nil without EMA).
    public var emaNetwork: UNet<T>? {
        ema.map { e in
            UNet(config: config.network, parameters: ParameterStore(zip(parameters.names, e.values).map {
                (name: $0, variable: Variable($1, requiresGrad: false, name: $0))
            }))
        }
    }

    /// A fresh run in `runDirectory` (created; it must not hold checkpoints yet).
    /// - Parameter report: notes for the user (resume warnings, pruned checkpoints).
    /// With `dataParallel`, this process is one rank of the group: rank 0 locks the folder and
    /// writes the log and checkpoints, the others touch no file.
    public init(config: TeacherTrainingConfig, dataset: any ImageDataset, runDirectory: URL,
                dataParallel: DataParallelSetup? = nil, report: @escaping (String) -> Void = { _ in }) throws {
        try config.validate(in: T.self)
        try Self.checkDataset(dataset, config.network)
        let parallel = try Self.makeParallel(dataParallel, config)
        let isRoot = parallel?.isRoot ?? true
        func refuseExisting() throws {
            guard let existing = TeacherCheckpoint.latest(in: runDirectory) else { return }
            let user = RunFolderLock.holder(of: runDirectory).map { $0 > 0 ? " and is in use by PID \($0)" : " and is in use by another run" } ?? ""
            throw TeacherTrainingError.runExists("\(runDirectory.path) already holds checkpoints (\(existing.lastPathComponent))\(user); resume it or choose another --out")
        }
        var lock: RunFolderLock?
        if isRoot {
            try refuseExisting()
            lock = try RunFolderLock(runDirectory)
            try refuseExisting()                                        // written before we locked
            try TeacherCheckpoint.createFolder(runDirectory.appendingPathComponent("checkpoints"))
        }
        var seeds = RandomGenerator(seed: config.seed)
        var weights = RandomGenerator(seed: seeds.next())
        let loaderSeed = seeds.next()
        let net = UNet<T>(config: config.network, rng: &weights)
        self.config = config
        self.runDirectory = runDirectory
        self.denoiser = Denoiser(net: net, sigmaData: config.sigmaData)
        self.optimizer = AdamW(parameters: Array(zip(net.parameters.names, net.parameters.variables)).map { ($0, $1) },
                               config: config.optimizerSchedule)
        self.ema = config.ema.map { EMA(net.parameters.variables, schedule: $0) }
        self.loader = DataLoader(dataset: dataset, batchSize: config.batchSize, seed: loaderSeed, xflip: config.xflip,
                                 maxItems: config.maxItems)
        self.generator = RandomGenerator(seed: seeds.next())
        self.step = 0
        self.classNames = dataset.classNames
        self.datasetName = dataset.name
        self.report = report
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

    /// Resume the newest checkpoint of `runDirectory`. `steps` may extend (or shorten, not below
    /// the checkpoint's step) the run; everything else comes from the checkpoint. `settings`, when
    /// given, are the settings the caller asked for: any that differ from the run's (other than
    /// `steps`) is a `changedSettings` error naming each. The log is cut back to the checkpoint's step.
    /// With `dataParallel`, every rank reads the checkpoint; only rank 0 locks the folder (any
    /// rank count dividing the run's shard count S resumes it, bitwise as it would have gone on).
    public init(resuming runDirectory: URL, dataset: any ImageDataset, steps: Int? = nil, coolDownSteps: Int? = nil,
                expecting settings: TeacherTrainingConfig? = nil, dataParallel: DataParallelSetup? = nil,
                report: @escaping (String) -> Void = { _ in }) throws {
        func noCheckpoint() -> TeacherTrainingError {
            .badCheckpoint("\(runDirectory.path): no checkpoint to resume (checkpoints/step-*/\(TeacherCheckpoint.manifestName))")
        }
        guard TeacherCheckpoint.latest(in: runDirectory) != nil else { throw noCheckpoint() }
        let isRoot = (dataParallel?.group.rank ?? 0) == 0
        let lock = isRoot ? try RunFolderLock(runDirectory) : nil
        guard let folder = TeacherCheckpoint.latest(in: runDirectory) else { throw noCheckpoint() }
        let manifest = try TeacherCheckpoint.manifest(at: folder)
        guard manifest.dtype == T.dtypeTag else {
            throw TeacherTrainingError.badCheckpoint("\(folder.path): trained in \(manifest.dtype), resumed in \(T.dtypeTag)")
        }
        if let settings {
            let changes = SettingChange.between(manifest.config, settings, ignoring: ["steps", "coolDownSteps"])
            if !changes.isEmpty { throw TeacherTrainingError.changedSettings(changes) }
        }
        var config = manifest.config
        if let steps { config.steps = steps }
        if let coolDownSteps { config.coolDownSteps = coolDownSteps }
        try config.validate(in: T.self)
        guard config.steps >= manifest.step else {
            throw TeacherTrainingError.badConfig("the run is at step \(manifest.step); steps \(config.steps) would end before it")
        }
        // A cool-down added or moved on resume starts at the checkpoint or later: the steps already
        // taken keep the rate they had, so the run stays what a run with it from the start is.
        let before = manifest.config.optimizerSchedule.coolDown, after = config.optimizerSchedule.coolDown
        if let before, after != before, before.start < manifest.step {
            throw TeacherTrainingError.badConfig("the run is in its cool-down (since step \(before.start + 1)); it cannot be moved or extended at step \(manifest.step)")
        }
        if let after, after != before, after.start < manifest.step {
            throw TeacherTrainingError.badConfig("a cool-down of \(config.coolDownSteps!) steps would lower the rate from step \(after.start + 1), but the run has already taken \(manifest.step) steps; lengthen the run (--steps) or shorten the cool-down")
        }
        try Self.checkDataset(dataset, config.network)
        let parallel = try Self.makeParallel(dataParallel, config)

        let loaded: LoadedCheckpoint<T>
        do { loaded = try EDMCheckpoint.load(from: folder.appendingPathComponent(TeacherCheckpoint.networkName), config: config.network) } catch {
            throw TeacherTrainingError.badCheckpoint("\(folder.appendingPathComponent(TeacherCheckpoint.networkName).path): \(error)")
        }
        guard loaded.step == manifest.step else {
            throw TeacherTrainingError.badCheckpoint("\(folder.path): network file is from step \(loaded.step.map(String.init) ?? "?"), manifest says \(manifest.step)")
        }
        let net = loaded.net
        let optimizer = AdamW(parameters: Array(zip(net.parameters.names, net.parameters.variables)).map { ($0, $1) },
                              config: config.optimizerSchedule)
        let optimizerURL = folder.appendingPathComponent(TeacherCheckpoint.optimizerName)
        do { try optimizer.restore(from: optimizerURL) } catch {
            throw TeacherTrainingError.badCheckpoint("\(optimizerURL.path): \(error)")
        }
        guard optimizer.stepCount == manifest.step else {
            throw TeacherTrainingError.badCheckpoint("\(optimizerURL.path): optimizer at step \(optimizer.stepCount), manifest says \(manifest.step)")
        }
        var ema: EMA<T>?
        if let schedule = config.ema {
            let url = folder.appendingPathComponent(TeacherCheckpoint.emaName)
            do {
                let store: ParameterStore<T> = try EDMCheckpoint.parameters(from: try SafeTensorsFile(contentsOf: url), layout: net.layout)
                ema = EMA(values: store.variables.map(\.value), schedule: schedule)
            } catch {
                throw TeacherTrainingError.badCheckpoint("\(url.path): \(error)")
            }
        }
        var loader = DataLoader(dataset: dataset, batchSize: config.batchSize, seed: 0, xflip: config.xflip, maxItems: config.maxItems)
        guard loader.count == manifest.datasetItems else {
            throw TeacherTrainingError.dataMismatch("\(dataset.name) gives \(loader.count) training items, the run was trained on \(manifest.datasetItems) from \(manifest.dataset)")
        }
        loader.restore(manifest.loader)
        if manifest.threads != Threads.count {
            report("note: the run was trained with \(manifest.threads) threads, resumed with \(Threads.count) (results do not depend on the thread count; a build before the thread pool's fixed chunks may differ in the last bits)")
        }
        if dataset.name != manifest.dataset {
            report("note: the run was trained on \(manifest.dataset), resumed on \(dataset.name)")
        }

        self.config = config
        self.runDirectory = runDirectory
        self.denoiser = Denoiser(net: net, sigmaData: config.sigmaData)
        self.optimizer = optimizer
        self.ema = ema
        self.loader = loader
        self.generator = manifest.rngState
        self.step = manifest.step
        self.classNames = manifest.classNames
        self.datasetName = dataset.name
        self.report = report
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
    static func makeParallel(_ setup: DataParallelSetup?, _ config: TeacherTrainingConfig) throws -> DataParallel? {
        do {
            if let setup { return try DataParallel(setup: setup, shards: config.shardCount, batchSize: config.batchSize) }
            guard config.shardCount > 1 else { return nil }
            return try DataParallel(setup: DataParallelSetup(group: SingleProcess()), shards: config.shardCount, batchSize: config.batchSize)
        } catch let e as DataParallelError {
            throw TeacherTrainingError.badConfig(e.description)
        }
    }

    // MARK: Training

    /// One training step (see the file header); also appends its line to log.jsonl.
    @discardableResult
    public func trainStep() throws -> TeacherStepRecord {
        try holdingLock { try takeStep() }
    }

    private func takeStep() throws -> TeacherStepRecord {
        if let parallel, parallel.shards > 1 { return try takeShardedStep(parallel) }
        let started = ProcessInfo.processInfo.systemUptime
        let next = step + 1
        let batch = try loader.next()
        let x = Variable(T.self == Float.self ? batch.images as! Tensor<T> : batch.images.converted(to: T.self))
        let labels: Tensor<T>? = config.network.labelDim > 0 ? oneHot(batch.labels, classes: config.network.labelDim) : nil
        let dropout = denoiser.net.trainingDropout(rng: &generator)
        let loss = config.loss(denoiser, images: x, classLabels: labels, rng: &generator, dropout: dropout)
        try NonFinite.check(loss.value, name: "EDM loss", step: next)

        let names = parameters.names, variables = parameters.variables
        optimizer.zeroGrad()
        loss.backward()
        try NonFinite.checkGradients(names: names, parameters: variables, step: next)
        return try update(loss: Double(loss.value.scalar), started: started)
    }

    /// The step's update once every gradient is in place: clipping, AdamW, EMA, the record.
    private func update(loss: Double, started: Double) throws -> TeacherStepRecord {
        let variables = parameters.variables
        let gradNorm = config.maxGradNorm.map { clipGradNorm(variables, maxNorm: $0) } ?? globalGradNorm(variables)
        let lr = optimizer.step()
        optimizer.zeroGrad()
        step += 1
        let images = step * config.batchSize
        let β = ema?.update(variables, batchImages: config.batchSize, imagesSeen: images)
        try NonFinite.checkState(optimizer, ema: ema?.values, step: step, phase: .afterUpdate)

        let seconds = ProcessInfo.processInfo.systemUptime - started
        let record = TeacherStepRecord(step: step, loss: loss, gradNorm: gradNorm, lr: lr, emaBeta: β,
                                       images: images, epoch: loader.epoch, seconds: seconds,
                                       imagesPerSecond: Double(config.batchSize) / max(seconds, 1e-9))
        try log?.write(record)
        return record
    }

    /// One step over S shards (DMD2Train's DataParallel): this rank's shards one after the
    /// other, each with its own rows of the batch and its own random stream, their gradients
    /// averaged over all shards; the logged loss is the mean of the shards' losses.
    private func takeShardedStep(_ parallel: DataParallel) throws -> TeacherStepRecord {
        let started = ProcessInfo.processInfo.systemUptime
        let next = step + 1
        let streams = parallel.shardGenerators(&generator)
        let batches = try loader.next(shards: parallel.localRows(batchSize: config.batchSize))
        let names = parameters.names, variables = parameters.variables
        var flats: [[T]] = [], present: [Bool] = [], losses: [[Double]] = []
        for (k, shard) in parallel.localShards.enumerated() {
            var rng = streams[shard]
            let batch = batches[k]
            let x = Variable(T.self == Float.self ? batch.images as! Tensor<T> : batch.images.converted(to: T.self))
            let labels: Tensor<T>? = config.network.labelDim > 0 ? oneHot(batch.labels, classes: config.network.labelDim) : nil
            let dropout = denoiser.net.trainingDropout(rng: &rng)
            let loss = config.loss(denoiser, images: x, classLabels: labels, rng: &rng, dropout: dropout)
            try NonFinite.check(loss.value, name: "EDM loss (shard \(shard))", step: next)
            optimizer.zeroGrad()
            loss.backward()
            let packed = FlatGradients.pack(variables)
            flats.append(packed.values)
            present = packed.present
            losses.append([Double(loss.value.scalar)])
        }
        optimizer.zeroGrad()
        FlatGradients.unpack(try parallel.average(flats), into: variables, present: present)
        let all = try parallel.gatherShards(losses)
        try NonFinite.checkGradients(names: names, parameters: variables, step: next)
        return try update(loss: all.map { $0[0] }.reduce(0, +) / Double(all.count), started: started)
    }

    /// Throws on every rank unless all ranks hold the same weights (a data-parallel run).
    public func checkRanksAgree(_ what: String = "weights") throws {
        guard let parallel else { return }
        try parallel.checkIdentical(parameters.variables.map(\.value), what: what, step: step)
    }

    /// Train until `config.steps`, writing a checkpoint every `checkpointInterval` steps and at
    /// the end. `onStep` sees every step, `onCheckpoint` every checkpoint written. A
    /// `NonFiniteError` stops the run before its update; the checkpoints on disk stay as they were.
    /// The run folder's lock is released when this returns or throws.
    public func run(onStep: (TeacherStepRecord) -> Void = { _ in }, onCheckpoint: (URL) -> Void = { _ in }) throws {
        defer { lock = nil }
        if lock == nil && isRoot { lock = try RunFolderLock(runDirectory) }
        try checkRanksAgree("starting weights")
        while step < config.steps {
            let record = try trainStep()
            onStep(record)
            if let k = parallel?.checkInterval, k > 0, step % k == 0 { try checkRanksAgree() }
            let interval = config.checkpointInterval
            if step == config.steps || (interval > 0 && step % interval == 0) {
                onCheckpoint(try saveCheckpoint())
            }
        }
    }

    // MARK: Checkpoints

    /// Write the current state as `checkpoints/step-<step>` atomically, then prune old ones.
    /// Returns the checkpoint folder.
    /// In a data-parallel run every rank calls it: the ranks' weights are compared, then rank 0
    /// writes (the others return the folder's URL and write nothing).
    @discardableResult
    public func saveCheckpoint() throws -> URL {
        try checkRanksAgree()
        guard isRoot else { return runDirectory.appendingPathComponent("checkpoints").appendingPathComponent(TeacherCheckpoint.folderName(step: step)) }
        return try holdingLock {
            try NonFinite.checkState(optimizer, ema: ema?.values, step: step, phase: .beforeSave)
            let json = JSONEncoder()
            json.outputFormatting = [.sortedKeys]                         // deterministic metadata
            var metadata: [String: String] = [:]
            if let classNames, let json = try? json.encode(classNames) {
                metadata["class_names"] = String(decoding: json, as: UTF8.self)
            }
            let files = [TeacherCheckpoint.networkName, TeacherCheckpoint.emaName, TeacherCheckpoint.optimizerName]
            return try TeacherCheckpoint.write(step: step, run: runDirectory, keep: config.keepCheckpoints, files: files, fill: { partial in
                try EDMCheckpoint.save(denoiser.net, to: partial.appendingPathComponent(TeacherCheckpoint.networkName),
                                       step: step, metadata: metadata)
                if let emaNetwork {
                    var emaMetadata = metadata
                    if let json = try? json.encode(config.ema) { emaMetadata["ema"] = String(decoding: json, as: UTF8.self) }
                    try EDMCheckpoint.save(emaNetwork, to: partial.appendingPathComponent(TeacherCheckpoint.emaName),
                                           step: step, metadata: emaMetadata)
                }
                try optimizer.save(to: partial.appendingPathComponent(TeacherCheckpoint.optimizerName))
            }, manifest: { files in
                TeacherCheckpointManifest(
                    step: step, imagesSeen: step * config.batchSize, config: config, rngState: generator,
                    loader: loader.state, threads: Threads.count, dtype: T.dtypeTag, dataset: datasetName,
                    datasetItems: loader.count, classNames: classNames, files: files)
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

    static func checkDataset(_ dataset: any ImageDataset, _ network: UNetConfig) throws {
        guard dataset.resolution == network.resolution else {
            throw TeacherTrainingError.dataMismatch("\(dataset.name) holds \(dataset.resolution)×\(dataset.resolution) images, the network takes \(network.resolution)×\(network.resolution)")
        }
        guard dataset.channels == network.inChannels else {
            throw TeacherTrainingError.dataMismatch("\(dataset.name) is read with \(dataset.channels) channels, the network takes \(network.inChannels)")
        }
        if network.labelDim > 0 {
            guard dataset.classCount == network.labelDim else {
                throw TeacherTrainingError.dataMismatch("\(dataset.name) has \(dataset.classCount) classes, the network is conditioned on \(network.labelDim)")
            }
        }
    }
}
