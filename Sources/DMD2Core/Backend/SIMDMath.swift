// Vectorised single-precision transcendental functions for the CPU backend's hot loops.
//
// SiLU and sigmoid run on every UNet activation; a scalar `expf` per element costs more than the
// surrounding arithmetic. `SIMDMath.exp` evaluates eˣ for 8 floats at once:
//   n = round(x·log₂e),  r = x − n·ln2 (in two parts, so r is exact),  eˣ = 2ⁿ·P(r),
// with P a degree-6 Taylor/minimax-style polynomial on |r| ≤ ln2/2 (Cephes' expf coefficients,
// Moshier 1992) and 2ⁿ built directly in the exponent bits. Max relative error ≈ 2 ulp on
// [−87, 88] (tested against Double). Inputs are clamped so the result saturates at FLT_MAX-ish
// and 0 instead of overflowing the exponent field. Double never uses this path: it is the
// ground truth and goes through libm. Used by the CPU kernels of Formula.sigmoid, Formula.silu and
// their backward formulas (DMD2Ops/Elementwise.swift).

public enum SIMDMath {
    /// eˣ, lane-wise.
    @inlinable
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let hi = SIMD8<Float>(repeating: 88.3762626647949)
        let lo = SIMD8<Float>(repeating: -87.3365478515625)
        var x = x.replacing(with: hi, where: x .> hi)
        x = x.replacing(with: lo, where: x .< lo)
        // n = round(x·log₂e) by the float "magic number" trick: adding 1.5·2²³ pushes the
        // fraction out of the mantissa (round to nearest even), and the integer sits in the
        // low mantissa bits. (SIMD `rounded()` and Int32 conversion compiled to scalar code,
        // 28× slower, measured.)
        let magic = SIMD8<Float>(repeating: 12582912.0)
        let t = x.addingProduct(x, SIMD8<Float>(repeating: 0.44269504088896341)) + magic
        let n = t - magic
        // r = x − n·ln2 with ln2 split into a part exact in float and a remainder.
        var r = x.addingProduct(n, SIMD8<Float>(repeating: -0.693359375))
        r = r.addingProduct(n, SIMD8<Float>(repeating: 2.12194440e-4))
        let r2 = r * r
        // Horner form of Cephes' polynomial: e^r ≈ 1 + r + r²·(c0 + r(c1 + r(c2 + r(c3 + r(c4 + r c5))))).
        var q = SIMD8<Float>(repeating: 1.9875691500e-4)
        q = q * r + 1.3981999507e-3
        q = q * r + 8.3334519073e-3
        q = q * r + 4.1665795894e-2
        q = q * r + 1.6666665459e-1
        q = q * r + 5.0000001201e-1
        let er = q * r2 + r + 1
        // 2ⁿ: put n + 127 into the exponent field.
        let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let bits = (ni &+ 127) &<< 23
        return er * unsafeBitCast(bits, to: SIMD8<Float>.self)
    }

    /// σ(x) = 1/(1 + e^{−x}), lane-wise.
    @inlinable
    public static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        1 / (1 + exp(-x))
    }
}
