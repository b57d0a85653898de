// Mean and covariance of feature vectors, in Double: the Gaussian FID compares.
//
// Letters: N samples, D feature dimension (2048 for Inception), X [N, D] the features.
//   μ = (1/N) Σₙ xₙ,   Σ = 1/(N − 1) Σₙ (xₙ − μ)(xₙ − μ)ᵀ      (unbiased, like np.cov and EDM)
//
// Streaming: `Accumulator` adds batches without keeping them. It sums around a fixed shift c
// (the first batch's mean): S₁ = Σ (x − c), S₂ = Σ (x − c)(x − c)ᵀ, then
//   μ = c + S₁/N,   Σ = (S₂ − S₁S₁ᵀ/N)/(N − 1),
// which is exact in real arithmetic for any c and, with c near μ, avoids the cancellation of
// EDM's Σxxᵀ − Nμμᵀ. `FeatureStatistics(features:)` is one batch through the same code.
//
// Files: EDM's reference statistics are an `.npz` with `mu` [D] and `sigma` [D, D] (float64);
// we read those (and float32), and write the same two members plus `count` (int64, ignored by
// EDM), so our files load in EDM's fid.py and theirs load here.
import DMD2Core
import DMD2Data
import Foundation
import ZIPFoundation

/// The Gaussian summary of a set of features: mean μ [D], covariance Σ [D, D], sample count.
public struct FeatureStatistics: Sendable, Equatable {
    /// μ [D].
    public var mu: Tensor<Double>
    /// Σ [D, D], symmetric.
    public var sigma: Tensor<Double>
    /// Number of samples behind μ and Σ; 0 when unknown (EDM's files do not store it).
    public var count: Int

    public var dimension: Int { mu.count }

    public init(mu: Tensor<Double>, sigma: Tensor<Double>, count: Int = 0) {
        precondition(mu.rank == 1 && sigma.shape == [mu.count, mu.count],
                     "FeatureStatistics: mu \(mu.shape) and sigma \(sigma.shape) must be [D] and [D, D]")
        self.mu = mu
        self.sigma = sigma
        self.count = count
    }

    /// μ and unbiased Σ of features [N, D], N ≥ 2.
    public init(features: Tensor<Float>) {
        precondition(features.rank == 2, "FeatureStatistics: features must be [N, D], got \(features.shape)")
        var accumulator = Accumulator(dimension: features.shape[1])
        accumulator.add(features)
        self = accumulator.statistics
    }

    /// Sums batches of features; `statistics` gives μ and Σ of everything added so far.
    public struct Accumulator: Sendable {
        public let dimension: Int
        public private(set) var count = 0
        private var shift: [Double]? = nil        // c, set by the first batch
        private var sum: [Double]                 // S₁ [D]
        private var outer: [Double]               // S₂ [D, D]

        public init(dimension D: Int) {
            precondition(D >= 1, "FeatureStatistics.Accumulator: dimension \(D) must be ≥ 1")
            dimension = D
            sum = [Double](repeating: 0, count: D)
            outer = [Double](repeating: 0, count: D * D)
        }

        /// Adds features [n, D].
        public mutating func add(_ features: Tensor<Float>) {
            let D = dimension
            precondition(features.rank == 2 && features.shape[1] == D,
                         "FeatureStatistics.Accumulator.add: features \(features.shape), expected [n, \(D)]")
            let n = features.shape[0]
            guard n > 0 else { return }
            let x = features.converted(to: Double.self)
            if shift == nil { shift = x.sum(axis: 0).scalars.map { $0 / Double(n) } }
            // A [n, D] = x − c (row by row), S₁ += Σ rows, S₂ += AᵀA.
            let centered = x - Tensor(shape: [1, D], scalars: shift!).broadcast(to: [n, D])
            for (j, s) in centered.sum(axis: 0).scalars.enumerated() { sum[j] += s }
            centered.withUnsafeBufferPointer { a in
                outer.withUnsafeMutableBufferPointer { s2 in
                    Compute.backend.gemm(transA: true, transB: false, m: D, n: D, k: n,
                                         alpha: 1, a: a.baseAddress!, lda: D, b: a.baseAddress!, ldb: D,
                                         beta: 1, c: s2.baseAddress!, ldc: D)
                }
            }
            count += n
        }

        /// μ and unbiased Σ (made exactly symmetric) of all features added; needs ≥ 2 of them.
        public var statistics: FeatureStatistics {
            precondition(count >= 2, "FeatureStatistics: need at least 2 samples for a covariance, have \(count)")
            let D = dimension, N = Double(count)
            let c = shift!
            let mu = (0..<D).map { c[$0] + sum[$0] / N }
            var sigma = [Double](repeating: 0, count: D * D)
            for i in 0..<D {
                for j in i..<D {
                    let sij = (outer[i * D + j] + outer[j * D + i]) / 2
                    let v = (sij - sum[i] * sum[j] / N) / (N - 1)
                    sigma[i * D + j] = v
                    sigma[j * D + i] = v
                }
            }
            return FeatureStatistics(mu: Tensor(shape: [D], scalars: mu),
                                     sigma: Tensor(shape: [D, D], scalars: sigma), count: count)
        }
    }

    // MARK: .npz files

    /// Reads `mu` and `sigma` (float64 or float32) and, if present, `count` from an .npz such as
    /// EDM's reference statistics (`fid-refs/imagenet-64x64.npz`).
    public init(contentsOf url: URL) throws {
        let npz = try NPZArchive(url: url)
        let mu = try npz.doubles("mu"), sigma = try npz.doubles("sigma")
        guard mu.shape.count == 1 else { throw DataError(file: url, entry: "mu.npy", "shape \(mu.shape); expected [D]") }
        let D = mu.shape[0]
        guard sigma.shape == [D, D] else {
            throw DataError(file: url, entry: "sigma.npy", "shape \(sigma.shape); expected [\(D), \(D)] to match mu")
        }
        var count = 0
        if npz.memberNames.contains("count") {
            let c = try npz.integers("count")
            guard c.values.count == 1, c.values[0] >= 0 else {
                throw DataError(file: url, entry: "count.npy", "expected one non-negative integer, got shape \(c.shape)")
            }
            count = c.values[0]
        }
        self.init(mu: Tensor(shape: [D], scalars: mu.values), sigma: Tensor(shape: [D, D], scalars: sigma.values), count: count)
    }

    /// Writes `mu`, `sigma` (float64) and `count` (int64) as an uncompressed .npz, like
    /// `np.savez(path, mu=…, sigma=…, count=…)`; replaces the file atomically.
    public func write(to url: URL) throws {
        let members: [(String, Data)] = [
            ("mu.npy", npyData(descr: "<f8", shape: [dimension], mu.scalars)),
            ("sigma.npy", npyData(descr: "<f8", shape: [dimension, dimension], sigma.scalars)),
            ("count.npy", npyData(descr: "<i8", shape: [], [Int64(count)])),
        ]
        let fm = FileManager.default
        let partial = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: partial)
        do {
            // The archive flushes and closes its file when it goes out of scope, before the rename.
            try {
                let archive = try Archive(url: partial, accessMode: .create)
                for (name, data) in members {
                    try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count),
                                         compressionMethod: .none) { position, size in
                        data.subdata(in: Int(position)..<(Int(position) + size))
                    }
                }
            }()
            // rename(2) replaces an existing file atomically.
            guard rename(partial.path, url.path) == 0 else {
                throw DataError(file: url, "cannot move \(partial.lastPathComponent) into place (errno \(errno))")
            }
        } catch {
            try? fm.removeItem(at: partial)
            throw error as? DataError ?? DataError(file: url, "cannot write statistics: \(error)")
        }
    }
}

/// A version 1.0 .npy file: magic, version, little-endian header length, the header dict padded
/// with spaces to a multiple of 64 bytes (ending in a newline), then the raw little-endian values.
func npyData<V: FixedWidthInteger>(descr: String, shape: [Int], _ values: [V]) -> Data {
    npyData(descr: descr, shape: shape, count: values.count) { data in
        for v in values { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    }
}

func npyData(descr: String, shape: [Int], _ values: [Double]) -> Data {
    npyData(descr: descr, shape: shape, count: values.count) { data in
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
    }
}

private func npyData(descr: String, shape: [Int], count: Int, body: (inout Data) -> Void) -> Data {
    precondition(shape.reduce(1, *) == count, "npy: shape \(shape) does not hold \(count) values")
    let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])          // "\x93NUMPY", v1.0
    let length = UInt16(header.utf8.count)
    data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
    data.append(contentsOf: Array(header.utf8))
    data.reserveCapacity(data.count + count * 8)
    body(&data)
    return data
}
