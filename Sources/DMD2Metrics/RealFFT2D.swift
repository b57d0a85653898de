// 2-D discrete Fourier transform of real images through FFTW 3 (Frigo & Johnson).
//
// X[u, v] = Σ_{h,w} x[h, w]·e^{−2πi(uh/H + vw/W)} for u < H, v ≤ W/2 (the other half of the
// spectrum is the complex conjugate, so FFTW's r2c transform returns only [H, W/2 + 1]).
// Used for radially averaged power spectra (over-smoothing and block artefacts show there).
// FFTW's planner is not thread-safe, so planning is serialised; execution is not.
import CFFTW
import Foundation

public enum RealFFT2D {
    private static let plannerLock = NSLock()

    /// The half spectrum of a real H×W image (row-major): real and imaginary parts, [H, W/2+1].
    public static func forward(_ x: [Double], height H: Int, width W: Int) -> (re: [Double], im: [Double]) {
        precondition(H > 0 && W > 0 && x.count == H * W, "RealFFT2D: \(x.count) values for a \(H)×\(W) image")
        let Wc = W / 2 + 1
        let input = fftw_alloc_real(H * W)!, output = fftw_alloc_complex(H * Wc)!
        defer { fftw_free(input); fftw_free(output) }
        let plan = plannerLock.withLock {
            fftw_plan_dft_r2c_2d(Int32(H), Int32(W), input, output, UInt32(FFTW_ESTIMATE))
        }!
        defer { plannerLock.withLock { fftw_destroy_plan(plan) } }
        x.withUnsafeBufferPointer { input.update(from: $0.baseAddress!, count: H * W) }
        fftw_execute(plan)
        let pairs = UnsafeRawPointer(output).assumingMemoryBound(to: Double.self)
        return ((0..<(H * Wc)).map { pairs[2 * $0] }, (0..<(H * Wc)).map { pairs[2 * $0 + 1] })
    }

    /// The same transform in single precision (FFTW's `fftwf_` interface).
    public static func forward(_ x: [Float], height H: Int, width W: Int) -> (re: [Float], im: [Float]) {
        precondition(H > 0 && W > 0 && x.count == H * W, "RealFFT2D: \(x.count) values for a \(H)×\(W) image")
        let Wc = W / 2 + 1
        let input = fftwf_alloc_real(H * W)!, output = fftwf_alloc_complex(H * Wc)!
        defer { fftwf_free(input); fftwf_free(output) }
        let plan = plannerLock.withLock {
            fftwf_plan_dft_r2c_2d(Int32(H), Int32(W), input, output, UInt32(FFTW_ESTIMATE))
        }!
        defer { plannerLock.withLock { fftwf_destroy_plan(plan) } }
        x.withUnsafeBufferPointer { input.update(from: $0.baseAddress!, count: H * W) }
        fftwf_execute(plan)
        let pairs = UnsafeRawPointer(output).assumingMemoryBound(to: Float.self)
        return ((0..<(H * Wc)).map { pairs[2 * $0] }, (0..<(H * Wc)).map { pairs[2 * $0 + 1] })
    }

    /// |X[u, v]|² over the half spectrum, [H, W/2+1].
    public static func power(_ x: [Double], height H: Int, width W: Int) -> [Double] {
        let (re, im) = forward(x, height: H, width: W)
        return zip(re, im).map { $0 * $0 + $1 * $1 }
    }
}
