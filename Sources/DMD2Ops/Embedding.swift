// The sinusoidal (positional) embedding of a per-sample scalar: the first step of ADM's
// noise-level embedding (docs/ARCHITECTURE-ADM.md "Embedding", step 1; c is c_noise = ln(σ)/4).
//
// N samples, C output channels, H = C/2 frequencies:
//   f_j = (1/maxPeriod)^(j/H),  j = 0 … H−1        (the top frequency 1/maxPeriod is excluded)
//   y[n, j]     = cos(c_n·f_j)                      (cos first,
//   y[n, H + j] = sin(c_n·f_j)                       then sin)
// Backward: dc_n = Σ_j f_j·(−dY[n, j]·sin(c_n·f_j) + dY[n, H + j]·cos(c_n·f_j)).
import DMD2Core

/// The sinusoidal embedding of `c` ([N]) into `channels` features ([N, channels]):
/// `[cos(c·f_0), …, cos(c·f_{H−1}), sin(c·f_0), …, sin(c·f_{H−1})]` with
/// `f_j = (1/maxPeriod)^(j/H)`, `H = channels/2`.
///
/// Differentiable with respect to `c`: d cos(c·f)/dc = −f·sin(c·f), d sin(c·f)/dc = f·cos(c·f).
///
/// For c = 0.5, channels = 4 (f = [1, 0.01]): `[cos 0.5, cos 0.005, sin 0.5, sin 0.005]`
/// = `[0.87758, 0.99999, 0.47943, 0.0050000]`.
public func sinusoidalEmbedding<T>(_ c: Variable<T>, channels: Int, maxPeriod: Double = 10000) -> Variable<T> {
    precondition(c.value.rank == 1, "sinusoidalEmbedding: c must be [N], got shape \(c.shape)")
    precondition(channels > 0 && channels % 2 == 0, "sinusoidalEmbedding: channels must be even and positive, got \(channels)")
    precondition(maxPeriod > 0, "sinusoidalEmbedding: maxPeriod must be positive, got \(maxPeriod)")
    let N = c.shape[0], H = channels / 2
    // Frequencies in Double, rounded once to T.
    let f = Tensor<T>(shape: [1, H], scalars: (0..<H).map { j in T(Double.pow(1 / maxPeriod, Double(j) / Double(H))) })
    let F = f.broadcast(to: [N, H])
    let angle = c.value.reshaped([N, 1]).broadcast(to: [N, H]) * F     // c_n·f_j
    let cosine = angle.map(.cos), sine = angle.map(.sin)
    let y = concatTensors([cosine, sine], axis: 1)
    return Variable.record("sinusoidalEmbedding", y, parents: [c]) { dY, _ in
        let dCos = sliceTensor(dY, axis: 1, range: 0 ..< H), dSin = sliceTensor(dY, axis: 1, range: H ..< 2 * H)
        let dAngle = dSin * cosine - dCos * sine
        return [(dAngle * F).sum(axis: 1)]
    }
}
