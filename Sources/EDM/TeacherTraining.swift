// Training an EDM teacher (Karras et al. 2022, §5; METHOD.md §1) on a CPU: the EDM loss with
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
//                                    generator, the loader's state, thread count, dtype, file sizes
// A checkpoint is written into a hidden sibling folder and renamed into place (rename(2) of a
// folder is atomic), so a crash leaves the previous checkpoints and no partial one; the oldest are
// then pruned down to `keepCheckpoints`. Loading is strict: the manifest's files must exist with
// their recorded sizes, and the safetensors files load strictly (a missing, unexpected or
// mis-shaped key is an error naming it).
// Bitwise resume needs the same thread count (parallel reductions are chunked by it) and the
// same dataset; the manifest records both and a mismatch is reported.
import DMD2Core
import DMD2Data
import DMD2Ops
import DMD2Train
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

    public init(network: UNetConfig, batchSize: Int, optimizer: AdamWConfig, ema: EMASchedule?, steps: Int,
                checkpointInterval: Int, keepCheckpoints: Int = 3, seed: UInt64, xflip: Bool = false,
                maxGradNorm: Double? = nil, pMean: Double = -1.2, pStd: Double = 1.2, sigmaData: Double = 0.5,
                maxItems: Int? = nil) {
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
    }

    /// The loss of this run.
    public var loss: EDMLoss { EDMLoss(pMean: pMean, pStd: pStd, labelDropout: network.labelDropout) }

    /// Throws a `TeacherTrainingError.badConfig` naming the first bad setting.
    public func validate() throws {
        func fail(_ m: String) -> TeacherTrainingError { .badConfig(m) }
        do { try network.validate() } catch { throw fail("\(error)") }
        guard batchSize > 0 else { throw fail("batch size \(batchSize) must be positive") }
        guard steps >= 0, checkpointInterval >= 0, keepCheckpoints >= 0 else {
            throw fail("steps \(steps), checkpoint interval \(checkpointInterval) and kept checkpoints \(keepCheckpoints) must be ≥ 0")
        }
        if let maxGradNorm, !(maxGradNorm > 0 && maxGradNorm.isFinite) { throw fail("max gradient norm \(maxGradNorm) must be finite and > 0") }
        if let maxItems, maxItems <= 0 { throw fail("max items \(maxItems) must be positive") }
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

    public var description: String {
        switch self {
        case .badConfig(let m): "training config: \(m)"
        case .dataMismatch(let m): "dataset: \(m)"
        case .badCheckpoint(let m): "checkpoint: \(m)"
        case .runExists(let m): m
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
public struct TeacherCheckpointManifest: Codable, Equatable, Sendable {
    public static let format = "swift-dmd2.teacher-checkpoint"
    public static let formatVersion = 1

    public var format: String
    public var formatVersion: Int
    public var step: Int
    public var imagesSeen: Int
    public var config: TeacherTrainingConfig
    /// The trainer's generator after this step.
    public var generator: RandomGenerator
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

    enum CodingKeys: String, CodingKey {
        case format, step, config, generator, loader, threads, dtype, dataset, files
        case formatVersion = "format_version", imagesSeen = "images_seen", datasetItems = "dataset_items"
        case classNames = "class_names"
    }
}

/// Checkpoint folders of a run: finding, reading, resolving a path to a network file.
public enum TeacherCheckpoint {
    public static let manifestName = "state.json"
    public static let networkName = "net.safetensors"
    public static let emaName = "ema.safetensors"
    public static let optimizerName = "optimizer.safetensors"

    /// `checkpoints/step-00000200`.
    public static func folderName(step: Int) -> String { CheckpointFolders.folderName(step: step) }

    /// The complete checkpoints under `run/checkpoints`, oldest first.
    public static func all(in run: URL) -> [(step: Int, url: URL)] { CheckpointFolders.all(in: run, manifestName: manifestName) }

    /// The newest complete checkpoint of a run, or nil.
    public static func latest(in run: URL) -> URL? { all(in: run).last?.url }

    /// A checkpoint folder's manifest, with every listed file present at its recorded size.
    public static func manifest(at folder: URL) throws -> TeacherCheckpointManifest {
        let url = folder.appendingPathComponent(manifestName)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TeacherTrainingError.badCheckpoint("\(url.path): cannot read (\(error.localizedDescription))")
        }
        let manifest: TeacherCheckpointManifest
        do { manifest = try JSONDecoder().decode(TeacherCheckpointManifest.self, from: data) } catch {
            throw TeacherTrainingError.badCheckpoint("\(url.path): not a teacher checkpoint manifest (\(error))")
        }
        guard manifest.format == TeacherCheckpointManifest.format, manifest.formatVersion == TeacherCheckpointManifest.formatVersion else {
            throw TeacherTrainingError.badCheckpoint("\(url.path): format \(manifest.format) v\(manifest.formatVersion), expected \(TeacherCheckpointManifest.format) v\(TeacherCheckpointManifest.formatVersion)")
        }
        do { try CheckpointFolders.checkFiles(manifest.files, in: folder, manifestName: manifestName) } catch let e as CheckpointFolderError {
            throw TeacherTrainingError.badCheckpoint(e.description)
        }
        return manifest
    }

    /// The network file a path designates: a `.safetensors` file as is; a checkpoint folder's
    /// EMA network (`ema: true`, when it has one) or raw network; a run folder's newest checkpoint.
    public static func networkFile(at url: URL, ema: Bool) throws -> URL {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TeacherTrainingError.badCheckpoint("\(url.path): no such file or folder")
        }
        guard isDirectory.boolValue else { return url }
        var folder = url
        if !FileManager.default.fileExists(atPath: url.appendingPathComponent(manifestName).path) {
            guard let latest = latest(in: url) else {
                throw TeacherTrainingError.badCheckpoint("\(url.path): neither a checkpoint folder (no \(manifestName)) nor a run folder with checkpoints/step-*")
            }
            folder = latest
        }
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
    private let log: JSONLinesLog
    private let report: (String) -> Void

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
    public init(config: TeacherTrainingConfig, dataset: any ImageDataset, runDirectory: URL,
                report: @escaping (String) -> Void = { _ in }) throws {
        try config.validate()
        try Self.checkDataset(dataset, config.network)
        if let existing = TeacherCheckpoint.latest(in: runDirectory) {
            throw TeacherTrainingError.runExists("\(runDirectory.path) already holds checkpoints (\(existing.lastPathComponent)); resume it or choose another --out")
        }
        try Self.createFolder(runDirectory.appendingPathComponent("checkpoints"))
        var seeds = RandomGenerator(seed: config.seed)
        var weights = RandomGenerator(seed: seeds.next())
        let loaderSeed = seeds.next()
        let net = UNet<T>(config: config.network, rng: &weights)
        self.config = config
        self.runDirectory = runDirectory
        self.denoiser = Denoiser(net: net, sigmaData: config.sigmaData)
        self.optimizer = AdamW(parameters: Array(zip(net.parameters.names, net.parameters.variables)).map { ($0, $1) },
                               config: config.optimizer)
        self.ema = config.ema.map { EMA(net.parameters.variables, schedule: $0) }
        self.loader = DataLoader(dataset: dataset, batchSize: config.batchSize, seed: loaderSeed, xflip: config.xflip,
                                 maxItems: config.maxItems)
        self.generator = RandomGenerator(seed: seeds.next())
        self.step = 0
        self.classNames = dataset.classNames
        self.datasetName = dataset.name
        self.report = report
        let logURL = runDirectory.appendingPathComponent("log.jsonl")
        try? FileManager.default.removeItem(at: logURL)                 // a run that never checkpointed
        self.log = try JSONLinesLog(url: logURL)
    }

    /// Resume the newest checkpoint of `runDirectory`. `steps` may extend (or shorten) the run;
    /// everything else comes from the checkpoint. The log is cut back to the checkpoint's step.
    public init(resuming runDirectory: URL, dataset: any ImageDataset, steps: Int? = nil,
                report: @escaping (String) -> Void = { _ in }) throws {
        guard let folder = TeacherCheckpoint.latest(in: runDirectory) else {
            throw TeacherTrainingError.badCheckpoint("\(runDirectory.path): no checkpoint to resume (checkpoints/step-*/\(TeacherCheckpoint.manifestName))")
        }
        let manifest = try TeacherCheckpoint.manifest(at: folder)
        guard manifest.dtype == T.dtypeTag else {
            throw TeacherTrainingError.badCheckpoint("\(folder.path): trained in \(manifest.dtype), resumed in \(T.dtypeTag)")
        }
        var config = manifest.config
        if let steps { config.steps = steps }
        try config.validate()
        try Self.checkDataset(dataset, config.network)

        let loaded: LoadedCheckpoint<T>
        do { loaded = try EDMCheckpoint.load(from: folder.appendingPathComponent(TeacherCheckpoint.networkName), config: config.network) } catch {
            throw TeacherTrainingError.badCheckpoint("\(folder.appendingPathComponent(TeacherCheckpoint.networkName).path): \(error)")
        }
        guard loaded.step == manifest.step else {
            throw TeacherTrainingError.badCheckpoint("\(folder.path): network file is from step \(loaded.step.map(String.init) ?? "?"), manifest says \(manifest.step)")
        }
        let net = loaded.net
        let optimizer = AdamW(parameters: Array(zip(net.parameters.names, net.parameters.variables)).map { ($0, $1) },
                              config: config.optimizer)
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
        self.generator = manifest.generator
        self.step = manifest.step
        self.classNames = manifest.classNames
        self.datasetName = dataset.name
        self.report = report
        let logURL = runDirectory.appendingPathComponent("log.jsonl")
        let resumedStep = manifest.step
        try JSONLinesLog.truncate(logURL) { ($0["step"] as? Int).map { $0 <= resumedStep } ?? false }
        self.log = try JSONLinesLog(url: logURL)
    }

    // MARK: Training

    /// One training step (see the file header); also appends its line to log.jsonl.
    @discardableResult
    public func trainStep() throws -> TeacherStepRecord {
        let started = ProcessInfo.processInfo.systemUptime
        let next = step + 1
        let batch = try loader.next()
        let x = Variable(T.self == Float.self ? batch.images as! Tensor<T> : batch.images.converted(to: T.self))
        let labels: Tensor<T>? = config.network.labelDim > 0 ? Self.oneHot(batch.labels, classes: config.network.labelDim) : nil
        let dropout = denoiser.net.trainingDropout(rng: &generator)
        let loss = config.loss(denoiser, images: x, classLabels: labels, rng: &generator, dropout: dropout)
        try NonFinite.check(loss.value, name: "EDM loss", step: next)

        let names = parameters.names, variables = parameters.variables
        optimizer.zeroGrad()
        loss.backward()
        try NonFinite.checkGradients(names: names, parameters: variables, step: next)
        let gradNorm = config.maxGradNorm.map { clipGradNorm(variables, maxNorm: $0) } ?? Self.globalNorm(variables)
        let lr = optimizer.step()
        optimizer.zeroGrad()
        step = next
        let images = step * config.batchSize
        let β = ema?.update(variables, batchImages: config.batchSize, imagesSeen: images)

        let seconds = ProcessInfo.processInfo.systemUptime - started
        let record = TeacherStepRecord(step: step, loss: Double(loss.value.scalar), gradNorm: gradNorm, lr: lr, emaBeta: β,
                                       images: images, epoch: loader.epoch, seconds: seconds,
                                       imagesPerSecond: Double(config.batchSize) / max(seconds, 1e-9))
        try log.write(record)
        return record
    }

    /// Train until `config.steps`, writing a checkpoint every `checkpointInterval` steps and at
    /// the end. `onStep` sees every step, `onCheckpoint` every checkpoint written. A
    /// `NonFiniteError` stops the run before its update; the checkpoints on disk stay as they were.
    public func run(onStep: (TeacherStepRecord) -> Void = { _ in }, onCheckpoint: (URL) -> Void = { _ in }) throws {
        while step < config.steps {
            let record = try trainStep()
            onStep(record)
            let interval = config.checkpointInterval
            if step == config.steps || (interval > 0 && step % interval == 0) {
                onCheckpoint(try saveCheckpoint())
            }
        }
    }

    // MARK: Checkpoints

    /// Write the current state as `checkpoints/step-<step>` atomically, then prune old ones.
    /// Returns the checkpoint folder.
    @discardableResult
    public func saveCheckpoint() throws -> URL {
        do {
            return try CheckpointFolders.write(step: step, run: runDirectory, manifestName: TeacherCheckpoint.manifestName,
                                               keep: config.keepCheckpoints) { partial in
                let json = JSONEncoder()
                json.outputFormatting = [.sortedKeys]                     // deterministic metadata
                var metadata: [String: String] = [:]
                if let classNames, let json = try? json.encode(classNames) {
                    metadata["class_names"] = String(decoding: json, as: UTF8.self)
                }
                try EDMCheckpoint.save(denoiser.net, to: partial.appendingPathComponent(TeacherCheckpoint.networkName),
                                       step: step, metadata: metadata)
                if let emaNetwork {
                    var emaMetadata = metadata
                    if let json = try? json.encode(config.ema) { emaMetadata["ema"] = String(decoding: json, as: UTF8.self) }
                    try EDMCheckpoint.save(emaNetwork, to: partial.appendingPathComponent(TeacherCheckpoint.emaName),
                                           step: step, metadata: emaMetadata)
                }
                try optimizer.save(to: partial.appendingPathComponent(TeacherCheckpoint.optimizerName))
                let files = CheckpointFolders.sizes(of: [TeacherCheckpoint.networkName, TeacherCheckpoint.emaName,
                                                         TeacherCheckpoint.optimizerName], in: partial)
                let manifest = TeacherCheckpointManifest(
                    format: TeacherCheckpointManifest.format, formatVersion: TeacherCheckpointManifest.formatVersion,
                    step: step, imagesSeen: step * config.batchSize, config: config, generator: generator,
                    loader: loader.state, threads: Threads.count, dtype: T.dtypeTag, dataset: datasetName,
                    datasetItems: loader.count, classNames: classNames, files: files)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(manifest).write(to: partial.appendingPathComponent(TeacherCheckpoint.manifestName), options: .atomic)
            }
        } catch let e as CheckpointFolderError {
            throw TeacherTrainingError.badCheckpoint(e.description)
        }
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

    static func createFolder(_ url: URL) throws {
        do { try CheckpointFolders.createFolder(url) } catch let e as CheckpointFolderError {
            throw TeacherTrainingError.badCheckpoint(e.description)
        }
    }

    /// One-hot rows [N, K].
    static func oneHot(_ labels: [Int], classes K: Int) -> Tensor<T> {
        var scalars = [T](repeating: 0, count: labels.count * K)
        for (n, label) in labels.enumerated() {
            precondition((0..<K).contains(label), "TeacherTrainer: label \(label) outside 0..<\(K)")
            scalars[n * K + label] = 1
        }
        return Tensor(shape: [labels.count, K], scalars: scalars)
    }

    /// √(Σ ‖grad‖²) over parameters with a gradient, in Double (as `clipGradNorm` measures it).
    static func globalNorm(_ parameters: [Variable<T>]) -> Double {
        var sum = 0.0
        for p in parameters {
            guard let g = p.grad else { continue }
            let g64 = (g as? Tensor<Double>) ?? g.converted(to: Double.self)
            sum += g64.dot(g64)
        }
        return sum.squareRoot()
    }
}
