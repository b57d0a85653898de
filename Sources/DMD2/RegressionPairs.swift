// The original DMD's regression pairs (docs/METHOD.md §2 "Original DMD for ablations"): noise z and
// the teacher's deterministic ODE sample from the same z, y_ref = Heun(x_0 = σ_max·z; y), so the
// generator can be pulled towards G(σ_max·z) ≈ y_ref with an L2 loss.
//
// File (`dmd2 make-pairs`), safetensors:
//   latents [P, C, R, R] F32   z ~ N(0, I), drawn in Float from the seed
//   labels  [P]          I64   classes i mod K (balanced; −1 for an unconditional teacher)
//   samples [P, C, R, R] F32   the teacher's Heun sample from σ_max·z (state in Double, rounded once)
// metadata: format "swift-dmd2.regression-pairs", format_version "1", config (the teacher's
// UNetConfig JSON), sampler "heun", steps, seed, teacher (path as given).
// A run reads the pairs in order, `batchSize` at a time, wrapping around (the cursor is part of
// the checkpoint).
import DMD2Core
import DMD2Ops
import EDM
import Foundation
import SafeTensors

/// Stored (z, label, teacher sample) triples.
public struct RegressionPairs {
    public static let format = "swift-dmd2.regression-pairs"

    public var latents: Tensor<Float>
    public var labels: [Int]
    public var samples: Tensor<Float>
    public var config: UNetConfig
    public var metadata: [String: String]

    /// Number of pairs.
    public var count: Int { labels.count }

    public init(latents: Tensor<Float>, labels: [Int], samples: Tensor<Float>, config: UNetConfig, metadata: [String: String] = [:]) {
        precondition(latents.rank == 4 && latents.shape == samples.shape && latents.shape[0] == labels.count,
                     "RegressionPairs: latents \(latents.shape), samples \(samples.shape) and \(labels.count) labels must agree")
        self.latents = latents
        self.labels = labels
        self.samples = samples
        self.config = config
        self.metadata = metadata
    }

    /// `count` pairs from `teacher`: latents drawn from `seed`, labels i mod K, each sample from
    /// EDM's deterministic Heun sampler with `steps` steps (NFE 2·steps − 1), `batch` at a time.
    /// `progress(done, count)` after each batch.
    public static func make(teacher: Denoiser<Float>, count: Int, steps: Int, seed: UInt64, batch: Int = 16,
                            metadata: [String: String] = [:], progress: (Int, Int) -> Void = { _, _ in }) -> RegressionPairs {
        precondition(count > 0 && steps > 0 && batch > 0, "RegressionPairs.make: count \(count), steps \(steps), batch \(batch) must be positive")
        let c = teacher.config
        var rng = RandomGenerator(seed: seed)
        let shape = [count, c.inChannels, c.resolution, c.resolution]
        let latents: Tensor<Float> = rng.normal(shape)
        let labels = (0..<count).map { c.labelDim > 0 ? $0 % c.labelDim : -1 }
        let sampler = EDMSampler(method: .heun, steps: steps)
        let size = c.inChannels * c.resolution * c.resolution
        var samples = [Float]()
        samples.reserveCapacity(count * size)
        for start in stride(from: 0, to: count, by: batch) {
            let n = min(batch, count - start)
            let z = Tensor<Float>(shape: [n] + Array(shape.dropFirst()), scalars: Array(latents.scalars[(start * size)..<((start + n) * size)]))
            let y: Tensor<Float>? = c.labelDim > 0 ? oneHot(Array(labels[start..<(start + n)]), classes: c.labelDim) : nil
            let result = sampler.sample(latents: z.converted(to: Double.self), churnNoise: { _ in
                preconditionFailure("RegressionPairs: the deterministic sampler adds no noise")
            }, denoise: teacher.samplingFunction(classLabels: y))
            samples += result.x.converted(to: Float.self).scalars
            progress(start + n, count)
        }
        var meta = metadata
        meta["sampler"] = "heun"
        meta["steps"] = String(steps)
        meta["seed"] = String(seed)
        return RegressionPairs(latents: latents, labels: labels, samples: Tensor(shape: shape, scalars: samples), config: c, metadata: meta)
    }

    /// The pairs as a safetensors file (see the file header).
    public func file() throws -> SafeTensorsFile {
        var meta = metadata
        meta["format"] = Self.format
        meta["format_version"] = "1"
        meta["config"] = try EDMCheckpoint.configJSON(config)
        var file = SafeTensorsFile(metadata: meta)
        file["latents"] = latents.safeTensor()
        file["labels"] = try SafeTensor(labels.map(Int64.init), shape: [labels.count])
        file["samples"] = samples.safeTensor()
        return file
    }

    /// Write the pairs atomically.
    public func write(to url: URL) throws { try file().write(to: url) }

    /// Pairs from a file written by `write(to:)`.
    public init(contentsOf url: URL) throws {
        let file = try SafeTensorsFile(contentsOf: url)
        func fail(_ m: String) -> DistillError { .dataMismatch("\(url.path): \(m)") }
        guard file.metadata["format"] == Self.format else {
            throw fail("metadata 'format' is \(file.metadata["format"] ?? "absent"), expected \(Self.format) (make one with `dmd2 make-pairs`)")
        }
        guard let json = file.metadata["config"], let config = try? JSONDecoder().decode(UNetConfig.self, from: Data(json.utf8)) else {
            throw fail("metadata 'config' is missing or not a UNetConfig")
        }
        let latents = try file.tensor("latents", as: Float.self), samples = try file.tensor("samples", as: Float.self)
        let labels = try file.tensor("labels").int64s().map(Int.init)
        guard latents.rank == 4, latents.shape == samples.shape, latents.shape[0] == labels.count, labels.count > 0 else {
            throw fail("latents \(latents.shape), samples \(samples.shape) and \(labels.count) labels do not agree")
        }
        self.init(latents: latents, labels: labels, samples: samples, config: config, metadata: file.metadata)
    }

    /// `size` pairs starting at `cursor` (wrapping around) as a generator batch: input σ_max·z at
    /// σ_max, one-hot labels, the teacher's samples as targets.
    public func batch<T: TensorScalar>(at cursor: Int, size: Int, as: T.Type = T.self) -> RegressionBatch<T> {
        precondition(size > 0, "RegressionPairs.batch: size \(size) must be positive")
        let itemSize = latents.count / count
        var z = [Float](), y = [Float](), index = [Int]()
        for k in 0..<size {
            let i = (cursor + k) % count
            index.append(labels[i])
            z += latents.scalars[(i * itemSize)..<((i + 1) * itemSize)]
            y += samples.scalars[(i * itemSize)..<((i + 1) * itemSize)]
        }
        let shape = [size] + Array(latents.shape.dropFirst())
        let zT = Tensor(shape: shape, scalars: z).converted(to: T.self)
        let labelTensor: Tensor<T>? = config.labelDim > 0 ? oneHot(index, classes: config.labelDim) : nil
        return RegressionBatch(input: DMD2Networks<T>.oneStepInput(latents: zT), labels: labelTensor,
                               targets: Tensor(shape: shape, scalars: y).converted(to: T.self))
    }
}
