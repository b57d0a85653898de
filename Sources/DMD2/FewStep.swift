// The few-step generator and backward simulation (docs/METHOD.md §3).
//
// Schedule: k noise levels σ_0 > σ_1 > … > σ_{k−1} taken from the grid K (SigmaGrid.swift) at
//   t_i = 999 − i·⌊1000/k⌋,   i = 0 … k−1
// i.e. DMD2's DDPM timesteps 999, 749, 499, 249 for k = 4 carried over to EDM's σ through K:
//   k = 1: K[999] = 80                                   (the one-step generator)
//   k = 2: K[999] = 80, K[499] ≈ 2.504
//   k = 4: K[999] = 80, K[749] ≈ 17.50, K[499] ≈ 2.504, K[249] ≈ 0.1681
//
// Rollout (inference, and the first j steps of backward simulation — ONE function, `rollout`):
//   x_0 = σ_0·z
//   x̂_i = G(x_i; σ_i, y)                       one network evaluation per step, no gradient
//   x_{i+1} = x̂_i + σ_{i+1}·ε_{i+1}             fresh noise ε_{i+1} per step
// Inference runs the rollout to step k−1 and returns x̂_{k−1} = G(x_{k−1}; σ_{k−1}, y) (k NFE).
//
// Training input at step j (one j ~ U{0 … k−1} per batch):
//   backward simulation on:  x_j from the rollout of the current G (no grad) through steps
//                            0 … j−1 — exactly inference's input of step j (σ_0·z when j = 0)
//   backward simulation off: x_real + σ_j·ε_j, a noised real image (ε_0 = z); G is then
//                            conditioned on the real images' classes
// G is trained with gradient at (x_j, σ_j); DMD2's losses apply to x̂_j as in the one-step case.
//
// Noise: ε_0 is the iteration's latents z; ε_1 … ε_{k−1} are drawn by the caller (Draws.swift:
// `FewStepDraw`, appended after the one-step draws so a one-step run's stream is unchanged).
// With k = 1 the schedule is [K[999]] = [80] and step 0's input is σ_max·z, bitwise the
// one-step generator's input (`DMD2Networks.oneStepInput`).
import DMD2Core
import EDM
import Foundation

/// The k noise levels of a few-step generator, as indices into the σ grid K.
public struct GeneratorSchedule: Sendable, Equatable, Codable {
    /// t_0 > t_1 > … > t_{k−1}, indices into K.
    public let indices: [Int]
    /// σ_i = K[t_i], decreasing.
    public let sigmas: [Double]

    /// The levels K[t] for the given indices (strictly decreasing, inside the grid).
    public init(indices: [Int], grid: SigmaGrid = .dmd2) {
        precondition(!indices.isEmpty, "GeneratorSchedule: need at least one step")
        precondition(zip(indices, indices.dropFirst()).allSatisfy { $0 > $1 },
                     "GeneratorSchedule: indices \(indices) must be strictly decreasing (from high noise to low)")
        precondition(indices.allSatisfy { (0...grid.maxIndex).contains($0) },
                     "GeneratorSchedule: indices \(indices) outside the grid 0…\(grid.maxIndex)")
        self.indices = indices
        self.sigmas = grid.sigmas(at: indices)
    }

    /// k steps evenly spaced in grid index from the top: t_i = maxIndex − i·⌊count/k⌋
    /// (DMD2: 999, 749, 499, 249 for k = 4).
    public static func uniform(steps k: Int, grid: SigmaGrid = .dmd2) -> GeneratorSchedule {
        precondition(k >= 1 && k <= grid.count, "GeneratorSchedule: \(k) steps on a grid of \(grid.count) levels")
        let stride = grid.count / k
        return GeneratorSchedule(indices: (0..<k).map { grid.maxIndex - $0 * stride }, grid: grid)
    }

    /// One step at K[999] = σ_max = 80.
    public static let oneStep = uniform(steps: 1)

    /// k.
    public var steps: Int { indices.count }

    // MARK: Inputs and the rollout

    /// The input of step j for the previous step's output `previous` (x̂_{j−1}; nil for pure
    /// noise) and noise ε_j (ε_0 = z): σ_0·z when `previous` is nil and j = 0, else
    /// previous + σ_j·ε_j. One σ per image.
    public func input<T>(step j: Int, previous: Tensor<T>?, noise: Tensor<T>) -> GeneratorInput<T> {
        precondition((0..<steps).contains(j), "GeneratorSchedule: step \(j) outside 0..<\(steps)")
        let σ = sigmas[j]
        guard let previous else {
            precondition(j == 0, "GeneratorSchedule: step \(j) > 0 needs the previous step's output")
            return DMD2Networks<T>.oneStepInput(latents: noise, sigmaMax: σ)
        }
        precondition(previous.shape == noise.shape, "GeneratorSchedule: output \(previous.shape) and noise \(noise.shape) differ")
        return GeneratorInput(x: previous + noise * T(σ), sigma: [Double](repeating: σ, count: noise.shape[0]))
    }

    /// Runs G (`denoise`, evaluated without recording a graph) through steps 0 … j−1 from
    /// x_0 = σ_0·z, re-noising with `renoise` = [ε_1, …, ε_{k−1}] (only the first j are read),
    /// and returns the input of step j with the outputs x̂_0 … x̂_{j−1} on the way.
    /// Inference (`sample`) and backward simulation (`trainingInput`) both come through here.
    public func rollout<T>(
        to j: Int, latents z: Tensor<T>, renoise: [Tensor<T>], denoise: (GeneratorInput<T>) -> Tensor<T>
    ) -> GeneratorRollout<T> {
        precondition((0..<steps).contains(j), "GeneratorSchedule: rollout to step \(j) outside 0..<\(steps)")
        precondition(renoise.count >= j, "GeneratorSchedule: rollout to step \(j) needs \(j) re-noising draws, got \(renoise.count)")
        var x = input(step: 0, previous: nil as Tensor<T>?, noise: z)
        var outputs: [Tensor<T>] = []
        for i in 0..<j {
            let x̂ = NoGrad.run { denoise(x) }
            outputs.append(x̂)
            x = input(step: i + 1, previous: x̂, noise: renoise[i])
        }
        return GeneratorRollout(step: j, input: x, outputs: outputs)
    }

    /// Inference: the rollout to step k−1, then x̂_{k−1} = G(x_{k−1}; σ_{k−1}, y) — k network
    /// evaluations. `renoise` holds ε_1 … ε_{k−1}.
    public func sample<T>(latents z: Tensor<T>, renoise: [Tensor<T>], denoise: (GeneratorInput<T>) -> Tensor<T>) -> Tensor<T> {
        let r = rollout(to: steps - 1, latents: z, renoise: renoise, denoise: denoise)
        return NoGrad.run { denoise(r.input) }
    }

    /// G's training input for one iteration's draws (docs/METHOD.md §3): step j = `draw.step`
    /// (0 without a draw); with `backwardSimulation` the rollout of the current G to step j
    /// (the same code as inference), else the noised real images x_real + σ_j·ε_j.
    public func trainingInput<T>(
        latents z: Tensor<T>, draw: FewStepDraw<T>?, backwardSimulation: Bool, realImages: Tensor<T>?,
        denoise: (GeneratorInput<T>) -> Tensor<T>
    ) -> GeneratorRollout<T> {
        let j = draw?.step ?? 0
        let renoise = draw?.renoise ?? []
        if backwardSimulation || steps == 1 {
            return rollout(to: j, latents: z, renoise: renoise, denoise: denoise)
        }
        guard let realImages else { preconditionFailure("GeneratorSchedule: training without backward simulation needs real images") }
        precondition(realImages.shape == z.shape, "GeneratorSchedule: real images \(realImages.shape) for latents \(z.shape)")
        return GeneratorRollout(step: j, input: input(step: j, previous: realImages, noise: j == 0 ? z : renoise[j - 1]), outputs: [])
    }
}

/// The result of a rollout to step j: the input of step j and G's outputs of steps 0 … j−1.
public struct GeneratorRollout<T: TensorScalar> {
    /// j.
    public var step: Int
    /// x_j at σ_j.
    public var input: GeneratorInput<T>
    /// x̂_0 … x̂_{j−1} (empty for j = 0 and for noised real images).
    public var outputs: [Tensor<T>]
}

// MARK: Checkpoint metadata

extension GeneratorSchedule {
    /// The schedule as generator-checkpoint metadata: `generator_steps` (k),
    /// `generator_sigma_indices` (JSON [t_0, …]) and `generator_sigmas` (JSON [σ_0, …], for
    /// readers without the grid). One-step checkpoints carry none of them.
    public var metadata: [String: String] {
        ["generator_steps": String(steps),
         "generator_sigma_indices": "[" + indices.map(String.init).joined(separator: ",") + "]",
         "generator_sigmas": "[" + sigmas.map { "\($0)" }.joined(separator: ",") + "]"]
    }

    /// The schedule stored in checkpoint metadata (see `metadata`); `.oneStep` when absent, nil
    /// when present but unreadable.
    public init?(metadata: [String: String], grid: SigmaGrid = .dmd2) {
        guard let text = metadata["generator_sigma_indices"] else {
            self = .oneStep
            return
        }
        let body = text.trimmingCharacters(in: CharacterSet(charactersIn: "[] \n"))
        let indices = body.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !indices.isEmpty, indices.allSatisfy({ $0 != nil }) else { return nil }
        let t = indices.map { $0! }
        guard zip(t, t.dropFirst()).allSatisfy({ $0 > $1 }), t.allSatisfy({ (0...grid.maxIndex).contains($0) }),
              metadata["generator_steps"].flatMap(Int.init).map({ $0 == t.count }) ?? true else { return nil }
        self.init(indices: t, grid: grid)
    }
}
