// EMA: the update formula, EDM's half-life in images with ramp-up, and the half-life meaning.
import DMD2Core
import DMD2Train
import Foundation
import DMD2TestSupport
import XCTest

final class EMATests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// θ_ema ← θ + (θ_ema − θ)·β: from 0 towards θ = 1 with β = 0.9: 0.1, 0.19, 0.271.
    func testFixedDecay() {
        let p = Variable(Tensor<Double>(shape: [2], scalars: [0, 0]), requiresGrad: true)
        var ema = EMA([p], schedule: .decay(0.9))
        p.value = Tensor(shape: [2], scalars: [1, -2])
        var expected = [0.0, 0.0]
        for _ in 0..<3 {
            XCTAssertEqual(ema.update([p], batchImages: 4, imagesSeen: 4), 0.9)
            expected = zip(expected, [1.0, -2.0]).map { 0.9 * $0 + 0.1 * $1 }
        }
        XCTAssertEqual(expected[0], 0.271, accuracy: 1e-15)
        for (got, want) in zip(ema.values[0].scalars, expected) { XCTAssertEqual(got, want, accuracy: 1e-15) }
        // β = 1 keeps the average; β = 0 copies the parameters.
        var frozen = EMA([p], schedule: .decay(1))
        let before = frozen.values[0]
        p.value = Tensor(shape: [2], scalars: [5, 5])
        frozen.update([p], batchImages: 1, imagesSeen: 1)
        XCTAssertEqual(frozen.values[0], before)
        var copy = EMA([p], schedule: .decay(0))
        p.value = Tensor(shape: [2], scalars: [7, 8])
        copy.update([p], batchImages: 1, imagesSeen: 1)
        XCTAssertEqual(copy.values[0].scalars, [7, 8])
    }

    /// β = 0.5^(B/H_eff), H_eff = min(H, r·n).
    func testHalfLifeBeta() {
        let plain = EMASchedule.halfLife(images: 1000, rampUp: nil)
        XCTAssertEqual(plain.beta(batchImages: 10, imagesSeen: 10), Double.pow(0.5, 0.01), accuracy: 1e-16)
        let ramped = EMASchedule.halfLife(images: 1000, rampUp: 0.05)
        // n = 100: H_eff = 5 → β = 0.5² = 0.25; n = 10⁶: H_eff = 1000.
        XCTAssertEqual(ramped.beta(batchImages: 10, imagesSeen: 100), 0.25, accuracy: 1e-16)
        XCTAssertEqual(ramped.beta(batchImages: 10, imagesSeen: 1_000_000), Double.pow(0.5, 0.01), accuracy: 1e-16)
    }

    func testSummaryAndCodable() throws {
        XCTAssertEqual(EMASchedule.decay(0.999).summary, "decay 0.999")
        XCTAssertEqual(EMASchedule.halfLife(images: 500_000, rampUp: 0.05).summary, "half-life 500000 images, ramp-up 0.05")
        for schedule in [EMASchedule.decay(0.9), .halfLife(images: 1e4, rampUp: nil), .halfLife(images: 5e5, rampUp: 0.05)] {
            XCTAssertEqual(try JSONDecoder().decode(EMASchedule.self, from: JSONEncoder().encode(schedule)), schedule)
        }
    }

    /// After H images at a constant θ, the average has moved half way from where it started.
    func testHalfLifeMeansHalfWay() {
        let p = Variable(Tensor<Double>(shape: [1], scalars: [0]), requiresGrad: true)
        var ema = EMA([p], schedule: .halfLife(images: 64, rampUp: nil))
        p.value = Tensor(shape: [1], scalars: [1])
        for step in 1...8 { ema.update([p], batchImages: 8, imagesSeen: 8 * step) }
        XCTAssertEqual(ema.values[0].scalars[0], 0.5, accuracy: 1e-14)
    }

    func testFloatAverageFollowsDouble() {
        var rng = RandomGenerator(seed: 3)
        let start: Tensor<Double> = rng.normal([5])
        let p64 = Variable(start, requiresGrad: true), p32 = Variable(start.converted(to: Float.self), requiresGrad: true)
        var e64 = EMA([p64], schedule: .decay(0.99)), e32 = EMA([p32], schedule: .decay(0.99))
        for _ in 0..<20 {
            let next: Tensor<Double> = rng.normal([5])
            p64.value = next
            p32.value = next.converted(to: Float.self)
            e64.update([p64], batchImages: 1, imagesSeen: 1)
            e32.update([p32], batchImages: 1, imagesSeen: 1)
        }
        for (a, b) in zip(e32.values[0].scalars, e64.values[0].scalars) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }
    }
}
