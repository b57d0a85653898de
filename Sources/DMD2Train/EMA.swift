// Exponential moving average of parameters (Polyak averaging), as EDM keeps for its networks.
//
//   θ_ema ← θ + (θ_ema − θ)·β          (= β·θ_ema + (1 − β)·θ; PyTorch's `θ.lerp(θ_ema, β)`)
// β per update, two schedules:
//   .decay(β)                          a fixed β (e.g. 0.999)
//   .halfLife(images: H, rampUp: r)    EDM's: the average's half-life is counted in training
//                                      images, not steps, so it does not depend on the batch:
//                                        H_eff = min(H, r·n)   (r = nil: H_eff = H)
//                                        β = 0.5^(B/H_eff)
//                                      n = images seen after this step, B = images in this step.
//                                      The ramp-up keeps early averages short while n is small
//                                      (EDM: H = 500k images, r = 0.05).
// The EMA starts as a copy of the parameters. Values are kept in the parameters' type T; β is
// computed in Double and rounded once. Off by default in DMD2 (docs/METHOD.md), used by the teacher.
import DMD2Core

/// How β is chosen at each EMA update.
public enum EMASchedule: Codable, Equatable, Sendable {
    /// A fixed β.
    case decay(Double)
    /// EDM's half-life in images with an optional ramp-up ratio.
    case halfLife(images: Double, rampUp: Double?)

    /// β for an update that adds `batchImages` images, `imagesSeen` counted after it.
    public func beta(batchImages B: Int, imagesSeen n: Int) -> Double {
        switch self {
        case .decay(let β):
            return β
        case .halfLife(let H, let r):
            precondition(B > 0 && n >= B, "EMASchedule: batch \(B) and images seen \(n) (≥ batch) must be positive")
            let effective = r.map { Swift.min(H, $0 * Double(n)) } ?? H
            return Double.pow(0.5, Double(B) / Swift.max(effective, 1e-8))
        }
    }

    /// "decay 0.999" or "half-life 500000 images, ramp-up 0.05".
    public var summary: String {
        switch self {
        case .decay(let β): "decay \(β)"
        case .halfLife(let H, let r):
            "half-life \(H.rounded() == H ? String(Int(H)) : String(H)) images" + (r.map { ", ramp-up \($0)" } ?? "")
        }
    }

    /// Traps with the value if the schedule is out of range.
    public func validate() {
        switch self {
        case .decay(let β): precondition((0...1).contains(β), "EMA: decay \(β) must lie in [0, 1]")
        case .halfLife(let H, let r):
            precondition(H > 0 && H.isFinite, "EMA: half-life \(H) images must be finite and > 0")
            if let r { precondition(r > 0 && r.isFinite, "EMA: ramp-up ratio \(r) must be finite and > 0") }
        }
    }
}

/// The EMA of an ordered list of parameters, held as plain tensors.
public struct EMA<T: TensorScalar> {
    public let schedule: EMASchedule
    /// The averaged values, in the parameters' order.
    public private(set) var values: [Tensor<T>]

    /// An average starting at the current values of `parameters`.
    public init(_ parameters: [Variable<T>], schedule: EMASchedule) {
        schedule.validate()
        self.schedule = schedule
        self.values = parameters.map(\.value)
    }

    /// An average with the given values (restored from a checkpoint).
    public init(values: [Tensor<T>], schedule: EMASchedule) {
        schedule.validate()
        self.schedule = schedule
        self.values = values
    }

    /// θ_ema ← θ + (θ_ema − θ)·β for every parameter; returns β.
    @discardableResult
    public mutating func update(_ parameters: [Variable<T>], batchImages: Int, imagesSeen: Int) -> Double {
        precondition(parameters.count == values.count, "EMA: \(parameters.count) parameters for an average of \(values.count)")
        let β = schedule.beta(batchImages: batchImages, imagesSeen: imagesSeen)
        for (i, p) in parameters.enumerated() {
            precondition(p.shape == values[i].shape, "EMA: parameter \(i) has shape \(p.shape), average \(values[i].shape)")
            // In place, one fused pass: bitwise `p.value + (values[i] − p.value) * T(β)`.
            p.value.withUnsafeBufferPointer { theta in
                values[i].withUnsafeMutableBufferPointer { FusedUpdate.ema($0, theta, beta: β) }
            }
        }
        return β
    }
}
