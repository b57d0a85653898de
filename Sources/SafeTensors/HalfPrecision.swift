// HalfPrecision.swift — exact bit-level conversions between Float and the two 16-bit float
// formats safetensors stores: IEEE 754 binary16 (F16) and bfloat16 (BF16).
//
// Widening (16 → 32 bits) is exact for every input, subnormals included. Narrowing
// (32 → 16 bits) rounds to nearest with ties to even, overflows to ±infinity, keeps the sign
// of zero, and maps every NaN to a quiet NaN of the same sign (keeping the top payload bits).
// Written out by hand rather than through `Float16` so it behaves the same on every platform.

enum HalfPrecision {
    // MARK: binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits

    /// Widens a binary16 bit pattern to the Float with the same value. Exact.
    static func float(fromHalfBits half: UInt16) -> Float {
        let sign = UInt32(half & 0x8000) << 16
        let exponent = UInt32(half >> 10) & 0x1F
        let mantissa = UInt32(half & 0x03FF)
        switch exponent {
        case 0:
            // Zero or subnormal: the value is mantissa × 2^-24, which Float represents exactly.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        case 0x1F:
            // Infinity (mantissa 0) or NaN; the payload moves to the top of Float's mantissa.
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            // Normal: re-bias the exponent from 15 to 127 and widen the mantissa.
            return Float(bitPattern: sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13))
        }
    }

    /// Narrows a Float to the nearest binary16 bit pattern (ties to even).
    static func halfBits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: bits >> 16) & 0x8000
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x007F_FFFF

        if exponent == 0xFF {
            // Infinity stays infinity; NaN becomes a quiet NaN keeping the top payload bits.
            if mantissa == 0 { return sign | 0x7C00 }
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)
        }

        let halfExponent = exponent - 127 + 15
        if halfExponent >= 0x1F {
            return sign | 0x7C00  // ≥ 2^16: beyond every finite binary16, even after rounding
        }
        if halfExponent >= 1 {
            // Normal result: keep 10 mantissa bits and round on the 13 dropped bits. A carry out
            // of the mantissa correctly bumps the exponent (and 65520 and up become infinity).
            let kept = UInt32(halfExponent << 10) | (mantissa >> 13)
            let dropped = mantissa & 0x1FFF
            let roundUp = dropped > 0x1000 || (dropped == 0x1000 && kept & 1 == 1)
            return sign | UInt16(kept + (roundUp ? 1 : 0))
        }

        // Subnormal (or zero) result, in units of 2^-24: the full 24-bit significand shifted right.
        let shift = 14 - halfExponent
        if shift > 24 {
            return sign  // below half the smallest subnormal (2^-25): rounds to ±0
        }
        let significand = mantissa | 0x0080_0000
        let kept = significand >> UInt32(shift)
        let dropped = significand & ((1 << UInt32(shift)) - 1)
        let halfway = UInt32(1) << UInt32(shift - 1)
        let roundUp = dropped > halfway || (dropped == halfway && kept & 1 == 1)
        return sign | UInt16(kept + (roundUp ? 1 : 0))  // may carry into the smallest normal: correct
    }

    // MARK: bfloat16: the top half of a binary32 (1 sign, 8 exponent, 7 mantissa bits)

    /// Widens a bfloat16 bit pattern to Float. Exact.
    static func float(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Narrows a Float to the nearest bfloat16 bit pattern (ties to even).
    static func bfloat16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN {
            // Truncation could clear every payload bit and turn NaN into infinity: force quiet.
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        // Adding 0x7FFF (+1 when the kept part is odd) carries into bit 16 exactly when the
        // dropped half is above halfway, or at halfway with an odd kept part. Overflow past the
        // largest finite value lands on infinity's bit pattern, as it should.
        let roundingBias = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }
}
