// The σ grid K of DMD2's losses (docs/METHOD.md §2 "Sigma grid K").
//
// K is the Karras schedule (ρ = 7) with 1000 points from σ_max = 80 down to σ_min = 0.002,
// reversed so that the index grows with the noise level:
//   K[t] = (σ_max^{1/ρ} + (999 − t)/999·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,   t = 0 … 999
//   K[0] = 0.002, K[20] ≈ 0.00323, K[250] ≈ 0.170, K[500] ≈ 2.527, K[750] ≈ 17.62,
//   K[980] ≈ 72.05, K[999] = 80.
// The losses draw an index t per image (the DM loss from 20…980, i.e. DMD2's min/max step
// percent 0.02/0.98; the critic and GAN noise from 0…999) and use σ = K[t]. The grid is Double,
// like every σ in the project; a network rounds its coefficients to its own precision.
import EDM

/// The noise levels K[0] < K[1] < … < K[count − 1] (Karras, ascending).
public struct SigmaGrid: Sendable, Equatable {
    /// K, ascending.
    public let sigmas: [Double]

    /// The Karras schedule of `count` levels between `sigmaMin` and `sigmaMax`, ascending.
    public init(count: Int = 1000, sigmaMin: Double = 0.002, sigmaMax: Double = 80, rho: Double = 7) {
        precondition(count >= 2, "SigmaGrid: need at least 2 levels, got \(count)")
        // KarrasSchedule gives the levels decreasing and appends σ = 0; drop the 0 and reverse.
        sigmas = Array(KarrasSchedule.sigmas(steps: count, sigmaMin: sigmaMin, sigmaMax: sigmaMax, rho: rho).dropLast().reversed())
    }

    /// DMD2's grid: 1000 levels, 0.002 … 80, ρ = 7.
    public static let dmd2 = SigmaGrid()

    /// Number of levels (1000 for DMD2).
    public var count: Int { sigmas.count }

    /// The largest index (999 for DMD2).
    public var maxIndex: Int { sigmas.count - 1 }

    /// K[t].
    public subscript(t: Int) -> Double {
        precondition(t >= 0 && t < sigmas.count, "SigmaGrid: index \(t) outside 0…\(sigmas.count - 1)")
        return sigmas[t]
    }

    /// K[t] for each index.
    public func sigmas(at indices: [Int]) -> [Double] { indices.map { self[$0] } }
}
