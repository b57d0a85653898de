// The backends the suite runs on: every name in BackendRegistry (cpu; reference from DMD2Checks;
// cuda and cuda-emu from DMD2CUDA) that can start on this machine. A backend that cannot start is
// reported as skipped with its reason ("skipped: no CUDA device …"), never failed: a machine
// without a GPU is a normal machine.
import DMD2Checks
import DMD2Core
import DMD2CUDA
import XCTest

enum RegisteredBackends {
    /// The backends that started, in registry order, and the skip lines of those that did not.
    static func all() -> (backends: [any Backend], skipped: [String]) {
        CUDABackend.register()
        CheckBackends.register()
        var backends: [any Backend] = [], skipped: [String] = []
        for name in BackendRegistry.names {
            do {
                backends.append(try BackendRegistry.make(name))
            } catch {
                let what = name == "cuda" ? "no CUDA device" : "\(name) cannot run here"
                skipped.append("skipped: \(what) (\(error))")
            }
        }
        return (backends, skipped)
    }

    /// Print the skip lines once per test, prefixed with the test's name.
    static func printSkipped(_ skipped: [String], in test: String) {
        for line in skipped { print("\(test): \(line)") }
    }
}

/// |actual − truth| ≤ ρ·u·√K·max|truth| elementwise (ρ = 64, u of `precision`); K = 0 means
/// bitwise equality. NaN matches NaN. Returns the worst error/tolerance ratio and, when it
/// exceeds 1, a message naming the worst index and both values.
func conformanceError(_ actual: Tensor<Double>, _ truth: Tensor<Double>, reductionLength K: Int,
                      precision: any TensorScalar.Type, what: String) -> (ratio: Double, failure: String?) {
    guard actual.shape == truth.shape else { return (.infinity, "\(what): shape \(actual.shape) vs \(truth.shape)") }
    let scale = max(truth.scalars.filter(\.isFinite).map(abs).max() ?? 0, 1e-30)
    let tolerance = K == 0 ? 0 : 64 * precision.unitRoundoff * Double(K).squareRoot() * scale
    var worst = 0.0, worstIndex = -1
    for i in 0..<actual.count {
        let a = actual.scalars[i], t = truth.scalars[i]
        let error: Double = a == t || (a.isNaN && t.isNaN) ? 0 : (a.isFinite && t.isFinite ? abs(a - t) : .infinity)
        let ratio = error == 0 ? 0 : (tolerance == 0 ? .infinity : error / tolerance)
        if ratio > worst { worst = ratio; worstIndex = i }
    }
    guard worst > 1 else { return (worst, nil) }
    return (worst, """
        \(what): worst at flat index \(worstIndex) of \(actual.shape): \(actual.scalars[worstIndex]) vs truth \(truth.scalars[worstIndex]) \
        (error \(abs(actual.scalars[worstIndex] - truth.scalars[worstIndex])) > tolerance \(tolerance) = 64·u·√\(K)·\(scale))
        """)
}
