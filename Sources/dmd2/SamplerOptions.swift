// The teacher-sampler options `sample` and `eval` share: which weights, which EDM sampler, how
// many steps, guidance and the stochastic sampler's churn.
import ArgumentParser
import EDM

struct SamplerOptions: ParsableArguments {
    enum Weights: String, EnumerableFlag {
        case ema, raw
        static func help(for value: Weights) -> ArgumentHelp? {
            value == .ema ? "Use the EMA weights of a checkpoint folder (default)." : "Use the raw (non-EMA) weights."
        }
    }

    enum SamplerKind: String, ExpressibleByArgument, CaseIterable {
        case heun, euler, stochastic
    }

    @Flag var weights: Weights = .ema
    @Option(name: .long, help: "heun (deterministic, NFE 2n − 1), euler (NFE n) or stochastic (Heun with EDM's churn).")
    var sampler: SamplerKind = .heun
    @Option(name: .long, parsing: .unconditional, help: "Sampler steps n.")
    var steps: Int = 18
    @Option(name: .long, help: "Classifier-free guidance scale w (1: conditional; needs a model trained with label dropout).")
    var guidance: Double?
    @Option(name: .long, help: "Stochastic sampler: S_churn, S_min, S_max, S_noise (EDM's ImageNet-64 values).")
    var churn: Double = 40
    @Option(name: .long) var sMin: Double = 0.05
    @Option(name: .long) var sMax: Double = 50
    @Option(name: .long) var sNoise: Double = 1.003

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be ≥ 1, got \(steps)") }
    }

    /// The EDM sampler these options describe.
    var edmSampler: EDMSampler {
        EDMSampler(method: sampler == .euler ? .euler : .heun, steps: steps,
                   stochastic: sampler == .stochastic ? StochasticSampling(churn: churn, sMin: sMin, sMax: sMax, sNoise: sNoise) : nil)
    }
}
