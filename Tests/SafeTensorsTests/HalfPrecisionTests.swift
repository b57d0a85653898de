// HalfPrecisionTests.swift — checks the bit-level F16 and BF16 conversions: exhaustively for
// widening, and for narrowing against round-to-nearest-even references (an independent search
// over all binary16 values, and Swift's Float16 where the platform has it), with explicit
// cases for ties, subnormals, overflow, infinities, signed zeros and NaN.

import XCTest
@testable import SafeTensors

final class HalfPrecisionTests: XCTestCase {
    // MARK: binary16

    /// Every binary16 bit pattern widens to the value the format defines.
    func testHalfToFloatExhaustive() {
        for bits in 0...UInt16.max {
            let value = HalfPrecision.float(fromHalfBits: bits)
            let sign: Float = bits & 0x8000 == 0 ? 1 : -1
            let exponent = Int(bits >> 10) & 0x1F
            let mantissa = Int(bits & 0x3FF)
            switch exponent {
            case 0:
                XCTAssertEqual(value, sign * Float(mantissa) * 0x1p-24, "bits \(bits)")
                XCTAssertEqual(value.sign, sign < 0 ? .minus : .plus)
            case 0x1F:
                if mantissa == 0 {
                    XCTAssertEqual(value, sign * .infinity)
                } else {
                    XCTAssertTrue(value.isNaN, "bits \(bits)")
                    XCTAssertEqual(value.sign, sign < 0 ? .minus : .plus)
                }
            default:
                let expected = sign * Float(1024 + mantissa) * Float(sign: .plus, exponent: exponent - 25, significand: 1)
                XCTAssertEqual(value, expected, "bits \(bits)")
            }
        }
    }

    /// Narrowing a widened value gives back the same bits, for every non-NaN pattern.
    func testHalfRoundTripExhaustive() {
        for bits in 0...UInt16.max where !HalfPrecision.float(fromHalfBits: bits).isNaN {
            XCTAssertEqual(HalfPrecision.halfBits(from: HalfPrecision.float(fromHalfBits: bits)), bits)
        }
    }

    func testHalfRoundingSpecialCases() {
        let cases: [(Float, UInt16, String)] = [
            (1 + 0x1p-11, 0x3C00, "tie between 1 and 1+2^-10 goes to even (1)"),
            (1 + 3 * 0x1p-11, 0x3C02, "tie between 1+2^-10 and 1+2^-9 goes to even (1+2^-9)"),
            ((1 + 0x1p-11).nextUp, 0x3C01, "just above a tie rounds up"),
            ((1 + 3 * 0x1p-11).nextDown, 0x3C01, "just below a tie rounds down"),
            (65504, 0x7BFF, "largest finite"),
            (65519.996, 0x7BFF, "below 65520 rounds to 65504"),
            (65520, 0x7C00, "65520 is the tie to infinity, which is even"),
            (1e10, 0x7C00, "overflow"),
            (-1e10, 0xFC00, "negative overflow"),
            (.infinity, 0x7C00, "+inf"),
            (-.infinity, 0xFC00, "-inf"),
            (0, 0x0000, "+0"),
            (-0.0, 0x8000, "-0 keeps its sign"),
            (0x1p-24, 0x0001, "smallest subnormal"),
            (0x1p-25, 0x0000, "half the smallest subnormal ties to even (0)"),
            (Float(0x1p-25).nextUp, 0x0001, "just above half the smallest subnormal"),
            (3 * 0x1p-25, 0x0002, "1.5 × smallest subnormal ties to even (2)"),
            (-3 * 0x1p-25, 0x8002, "negative subnormal tie"),
            (1023.5 * 0x1p-24, 0x0400, "tie between largest subnormal and smallest normal goes to even (normal)"),
            (0x1p-14, 0x0400, "smallest normal"),
            (1e-10, 0x0000, "underflow"),
            (-1e-10, 0x8000, "negative underflow keeps sign"),
            (.leastNonzeroMagnitude, 0x0000, "Float subnormal"),
            (0.1, 0x2E66, "0.1"),
            (-2.5, 0xC100, "-2.5"),
        ]
        for (value, expected, label) in cases {
            XCTAssertEqual(HalfPrecision.halfBits(from: value), expected, label)
        }
    }

    func testHalfNaN() {
        for nanBits: UInt32 in [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0x7FA0_0000, 0xFF80_1FFF] {
            let half = HalfPrecision.halfBits(from: Float(bitPattern: nanBits))
            XCTAssertEqual(half & 0x7C00, 0x7C00, "exponent all ones")
            XCTAssertNotEqual(half & 0x03FF, 0, "mantissa nonzero (still NaN) for \(nanBits)")
            XCTAssertEqual(half & 0x8000 != 0, nanBits & 0x8000_0000 != 0, "sign kept")
        }
    }

    /// Random Floats across the whole range against an independent nearest-even search.
    func testHalfNarrowingMatchesReferenceSearch() {
        // All finite non-negative binary16 values in increasing order (bit order is value order).
        let finite = (UInt16(0)...0x7BFF).map { Double(HalfPrecision.float(fromHalfBits: $0)) }
        func reference(_ x: Float) -> UInt16 {
            let magnitude = Double(abs(x))
            let sign: UInt16 = x.sign == .minus ? 0x8000 : 0
            if magnitude >= 65520 { return sign | 0x7C00 }
            // Largest index with finite[index] <= magnitude.
            var low = 0, high = finite.count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                if finite[middle] <= magnitude { low = middle } else { high = middle - 1 }
            }
            guard low + 1 < finite.count else { return sign | UInt16(low) }
            let below = magnitude - finite[low], above = finite[low + 1] - magnitude
            if below < above || (below == above && low % 2 == 0) { return sign | UInt16(low) }
            return sign | UInt16(low + 1)
        }
        var rng = SplitMix64(seed: 0x5AFE)
        for _ in 0..<200_000 {
            // Bias toward the binary16 range: exponent field 90...160 most of the time.
            var bits = UInt32(truncatingIfNeeded: rng.next())
            if bits & 1 == 0 {
                bits = (bits & 0x807F_FFFF) | (UInt32(90 + rng.next() % 71) << 23)
            }
            let x = Float(bitPattern: bits)
            guard !x.isNaN else { continue }
            XCTAssertEqual(HalfPrecision.halfBits(from: x), reference(x), "x = \(x) (bits \(String(bits, radix: 16)))")
        }
    }

    #if !(os(macOS) && arch(x86_64))
    /// Against the platform's Float16: every widening, and narrowing at every halfway point.
    func testHalfAgainstPlatformFloat16() {
        for bits in 0...UInt16.max {
            let platform = Float(Float16(bitPattern: bits))
            let ours = HalfPrecision.float(fromHalfBits: bits)
            if platform.isNaN { XCTAssertTrue(ours.isNaN); continue }
            XCTAssertEqual(ours.bitPattern, platform.bitPattern, "bits \(bits)")
        }
        for bits in UInt16(0)..<0x7C00 {
            // The midpoint between consecutive halves is exact in Float; test it and its neighbours.
            let low = HalfPrecision.float(fromHalfBits: bits)
            let high = HalfPrecision.float(fromHalfBits: bits + 1)
            let middle = (low + high) / 2
            for x in [middle, middle.nextUp, middle.nextDown, -middle, low, -high] {
                XCTAssertEqual(HalfPrecision.halfBits(from: x), Float16(x).bitPattern, "x = \(x)")
            }
        }
    }
    #endif

    // MARK: bfloat16

    func testBFloat16WideningAndRoundTripExhaustive() {
        for bits in 0...UInt16.max {
            let value = HalfPrecision.float(fromBFloat16Bits: bits)
            XCTAssertEqual(value.bitPattern, UInt32(bits) << 16)
            if value.isNaN {
                XCTAssertTrue(HalfPrecision.float(fromBFloat16Bits: HalfPrecision.bfloat16Bits(from: value)).isNaN)
            } else {
                XCTAssertEqual(HalfPrecision.bfloat16Bits(from: value), bits)
            }
        }
    }

    func testBFloat16RoundingSpecialCases() {
        let cases: [(UInt32, UInt16, String)] = [
            (0x3F80_8000, 0x3F80, "tie goes to even (down)"),
            (0x3F81_8000, 0x3F82, "tie goes to even (up)"),
            (0x3F80_8001, 0x3F81, "above the tie rounds up"),
            (0x3F80_7FFF, 0x3F80, "below the tie rounds down"),
            (0x7F7F_FFFF, 0x7F80, "Float's largest finite rounds to infinity"),
            (0x7F7F_7FFF, 0x7F7F, "stays finite below the tie"),
            (0xFF7F_FFFF, 0xFF80, "negative overflow"),
            (0x7F80_0000, 0x7F80, "+inf"),
            (0xFF80_0000, 0xFF80, "-inf"),
            (0x8000_0000, 0x8000, "-0"),
            (0x0000_8000, 0x0000, "subnormal tie to even (0)"),
            (0x0001_8000, 0x0002, "subnormal tie to even (2)"),
        ]
        for (input, expected, label) in cases {
            XCTAssertEqual(HalfPrecision.bfloat16Bits(from: Float(bitPattern: input)), expected, label)
        }
        for nanBits: UInt32 in [0x7F80_0001, 0xFF80_0001, 0x7FC0_0000, 0x7F80_FFFF] {
            let bf = HalfPrecision.bfloat16Bits(from: Float(bitPattern: nanBits))
            XCTAssertTrue(HalfPrecision.float(fromBFloat16Bits: bf).isNaN, "NaN \(String(nanBits, radix: 16)) stays NaN")
            XCTAssertEqual(bf & 0x8000 != 0, nanBits & 0x8000_0000 != 0, "sign kept")
        }
    }

    /// Random Floats against a nearest-even choice between the two bfloat16 neighbours, in Double.
    func testBFloat16NarrowingMatchesReference() {
        var rng = SplitMix64(seed: 0xBF16)
        for _ in 0..<200_000 {
            let bits = UInt32(truncatingIfNeeded: rng.next())
            let x = Float(bitPattern: bits)
            guard x.isFinite else { continue }
            let down = UInt16(truncatingIfNeeded: bits >> 16)  // toward zero
            let up = down &+ 1                                 // away from zero (may be infinity)
            let distanceDown = abs(Double(x) - Double(HalfPrecision.float(fromBFloat16Bits: down)))
            let upValue = HalfPrecision.float(fromBFloat16Bits: up)
            let expected: UInt16
            if upValue.isInfinite {
                // The tie with "2^128" decides overflow: Float's max-magnitude region rounds to infinity.
                let distanceUp = abs(Double(x).magnitude - 0x1p128)
                expected = distanceDown < distanceUp || (distanceDown == distanceUp && down & 1 == 0) ? down : up
            } else {
                let distanceUp = abs(Double(x) - Double(upValue))
                expected = distanceDown < distanceUp || (distanceDown == distanceUp && down & 1 == 0) ? down : up
            }
            XCTAssertEqual(HalfPrecision.bfloat16Bits(from: x), expected, "bits \(String(bits, radix: 16))")
        }
    }
}

/// A small deterministic generator for reproducible random tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
