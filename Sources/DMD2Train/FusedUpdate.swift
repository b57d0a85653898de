// The optimiser's per-parameter passes as single fused loops over a tensor's storage, in place.
//
// `AdamW.step` and `EMA.update` used to be a dozen whole-tensor `Tensor` operations per
// parameter, each allocating its result; here each is one pass, SIMD8 wide, cut into chunks by
// size and run on the thread pool (`parallelChunks`), with no allocation (a tensor whose
// storage is shared is copied once on write, as any `Tensor` mutation does).
//
// Bitwise the same as the composition they replace: every element goes through the same
// operations in the same order, each rounded to T. `Tensor * s` is the backend's affine map
// x·s + 0 (the + 0 turns a −0 product into +0), so the fused loops write `x * s + 0` where
// the composition multiplied by a scalar. `AdamWTests.testFusedStepMatchesTheComposition`
// checks this bit for bit.
import DMD2Core

/// Element count of one chunk of a fused update (a memory-bound pass: ~0.1 ms of work).
let fusedUpdateGrain = 1 << 15

/// AdamW's per-step scalars, already rounded to the parameter type (see AdamW's header).
struct AdamWScalars<S: TensorScalar> {
    /// 1 − lr·wd, applied only when `decays`.
    var decay: S
    var decays: Bool
    var oneMinusBeta1: S, beta2: S, oneMinusBeta2: S
    /// 1/√(1 − β₂ᵏ), ε, lr/(1 − β₁ᵏ).
    var inverseBiasCorrection2Root: S, eps: S, stepSize: S
}

enum FusedUpdate {
    /// One AdamW update of p, m, v (same count) with gradient g, in place.
    static func adamW<T: TensorScalar>(
        _ p: UnsafeMutableBufferPointer<T>, _ m: UnsafeMutableBufferPointer<T>, _ v: UnsafeMutableBufferPointer<T>,
        _ g: UnsafeBufferPointer<T>, _ s: AdamWScalars<Double>
    ) {
        precondition(p.count == m.count && p.count == v.count && p.count == g.count,
                     "AdamW: parameter, moments and gradient hold \(p.count), \(m.count), \(v.count), \(g.count) values")
        if T.self == Float.self {
            adamWKernel(p.viewed(Float.self), m.viewed(Float.self), v.viewed(Float.self),
                        UnsafeBufferPointer(g.viewedMutable(Float.self)), s.rounded(Float.self))
        } else if T.self == Double.self {
            adamWKernel(p.viewed(Double.self), m.viewed(Double.self), v.viewed(Double.self),
                        UnsafeBufferPointer(g.viewedMutable(Double.self)), s.rounded(Double.self))
        } else {
            adamWKernel(p, m, v, g, s.rounded(T.self))
        }
    }

    /// θ_ema ← θ + (θ_ema − θ)·β + 0, in place on `average`.
    static func ema<T: TensorScalar>(_ average: UnsafeMutableBufferPointer<T>, _ theta: UnsafeBufferPointer<T>, beta: Double) {
        precondition(average.count == theta.count, "EMA: average holds \(average.count) values, parameter \(theta.count)")
        if T.self == Float.self {
            lerpKernel(average.viewed(Float.self), UnsafeBufferPointer(theta.viewedMutable(Float.self)), Float(beta))
        } else if T.self == Double.self {
            lerpKernel(average.viewed(Double.self), UnsafeBufferPointer(theta.viewedMutable(Double.self)), beta)
        } else {
            lerpKernel(average, theta, T(beta))
        }
    }

    // MARK: Kernels (called with concrete S, so they compile to plain vector code)

    static func adamWKernel<S: TensorScalar>(
        _ p: UnsafeMutableBufferPointer<S>, _ m: UnsafeMutableBufferPointer<S>, _ v: UnsafeMutableBufferPointer<S>,
        _ g: UnsafeBufferPointer<S>, _ s: AdamWScalars<S>
    ) {
        guard let pp = p.baseAddress, let mp = m.baseAddress, let vp = v.baseAddress, let gp = g.baseAddress else { return }
        let box = UncheckedBox((pp, mp, vp, gp))
        parallelChunks(p.count, minChunk: fusedUpdateGrain) { range in
            let (pp, mp, vp, gp) = box.value
            var i = range.lowerBound
            let decay = SIMD8<S>(repeating: s.decay), c1 = SIMD8<S>(repeating: s.oneMinusBeta1)
            let b2 = SIMD8<S>(repeating: s.beta2), c2 = SIMD8<S>(repeating: s.oneMinusBeta2)
            let ib = SIMD8<S>(repeating: s.inverseBiasCorrection2Root), eps = SIMD8<S>(repeating: s.eps)
            let step = SIMD8<S>(repeating: s.stepSize), zero = SIMD8<S>(repeating: 0)
            while i + 8 <= range.upperBound {
                var value = load(pp + i)
                if s.decays { value = value * decay + zero }
                let g = load(gp + i), m0 = load(mp + i), v0 = load(vp + i)
                let m1 = m0 + ((g - m0) * c1 + zero)
                let v1 = (v0 * b2 + zero) + ((g * g) * c2 + zero)
                let denominator = (v1.squareRoot() * ib + zero) + eps
                store(value - ((m1 / denominator) * step + zero), pp + i)
                store(m1, mp + i)
                store(v1, vp + i)
                i += 8
            }
            while i < range.upperBound {
                var value = pp[i]
                if s.decays { value = value * s.decay + 0 }
                let g = gp[i], m0 = mp[i], v0 = vp[i]
                let m1 = m0 + ((g - m0) * s.oneMinusBeta1 + 0)
                let v1 = (v0 * s.beta2 + 0) + ((g * g) * s.oneMinusBeta2 + 0)
                let denominator = (v1.squareRoot() * s.inverseBiasCorrection2Root + 0) + s.eps
                pp[i] = value - ((m1 / denominator) * s.stepSize + 0)
                mp[i] = m1
                vp[i] = v1
                i += 1
            }
        }
    }

    static func lerpKernel<S: TensorScalar>(_ average: UnsafeMutableBufferPointer<S>, _ theta: UnsafeBufferPointer<S>, _ beta: S) {
        guard let ap = average.baseAddress, let tp = theta.baseAddress else { return }
        let box = UncheckedBox((ap, tp))
        parallelChunks(average.count, minChunk: fusedUpdateGrain) { range in
            let (ap, tp) = box.value
            let b = SIMD8<S>(repeating: beta), zero = SIMD8<S>(repeating: 0)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let t = load(tp + i)
                store(t + ((load(ap + i) - t) * b + zero), ap + i)
                i += 8
            }
            while i < range.upperBound { ap[i] = tp[i] + ((ap[i] - tp[i]) * beta + 0); i += 1 }
        }
    }

    @inline(__always)
    static func load<S: TensorScalar>(_ p: UnsafePointer<S>) -> SIMD8<S> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<S>.self) }
    @inline(__always)
    static func load<S: TensorScalar>(_ p: UnsafeMutablePointer<S>) -> SIMD8<S> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<S>.self) }
    @inline(__always)
    static func store<S: TensorScalar>(_ v: SIMD8<S>, _ p: UnsafeMutablePointer<S>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<S>.self)
    }
}

extension AdamWScalars where S == Double {
    func rounded<U: TensorScalar>(_: U.Type) -> AdamWScalars<U> {
        AdamWScalars<U>(decay: U(decay), decays: decays, oneMinusBeta1: U(oneMinusBeta1), beta2: U(beta2),
                        oneMinusBeta2: U(oneMinusBeta2), inverseBiasCorrection2Root: U(inverseBiasCorrection2Root),
                        eps: U(eps), stepSize: U(stepSize))
    }
}

/// Pointers carried into a parallel loop whose chunks write disjoint elements.
struct UncheckedBox<V>: @unchecked Sendable {
    let value: V
    init(_ value: V) { self.value = value }
}

extension UnsafeMutableBufferPointer where Element: TensorScalar {
    /// The same memory as another scalar type (only ever the type it already holds).
    @inline(__always)
    func viewed<U: TensorScalar>(_: U.Type) -> UnsafeMutableBufferPointer<U> {
        UnsafeMutableRawBufferPointer(self).assumingMemoryBound(to: U.self)
    }
}

extension UnsafeBufferPointer where Element: TensorScalar {
    @inline(__always)
    func viewedMutable<U: TensorScalar>(_: U.Type) -> UnsafeMutableBufferPointer<U> {
        UnsafeMutableRawBufferPointer(mutating: UnsafeRawBufferPointer(self)).assumingMemoryBound(to: U.self)
    }
}
