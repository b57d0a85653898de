// `conv`: DMD2Ops' conv2d (im2col + BLIS GEMM), forward and forward+backward, at the 3×3
// convolutions of the ADM UNet, beside PyTorch's CPU conv2d (reference/bench_conv.py) when
// torch is installed.
//
// N = 8, Cin = Cout = C, 3×3 kernel, stride 1, padding 1, Float:
//   C = 192 at 64×64, C = 384 at 32×32, C = 768 at 8×8.
// forward FLOPs = 2·N·Cout·Cin·9·H·W; forward+backward counts 3× that (forward, dX, dW).
// Our forward+backward also computes dBias (a sum over N·H·W per channel, ~0.1% of the work);
// bench_conv.py asks PyTorch for dX and dW only.
import DMD2Core
import DMD2Ops
import Foundation

struct ConvShape {
    var N: Int = 8
    var C: Int
    var H: Int

    var label: String { "N\(N) C\(C) \(H)x\(H)" }
    var flopsForward: Double { 2 * Double(N * C * C * 9 * H * H) }

    static let adm = [ConvShape(C: 192, H: 64), ConvShape(C: 384, H: 32), ConvShape(C: 768, H: 8)]
}

/// Our timings of one shape.
struct ConvResult {
    var shape: ConvShape
    var forward: Timing
    var forwardBackward: Timing
}

func runConvSuite(_ settings: RunSettings, python: String?) {
    print("""
        == conv: conv2d 3x3, stride 1, padding 1, Float, Cin = Cout = C, with bias
           warm-up \(settings.warmup), repeats \(settings.repeats); cells: median (min–max)
           GFLOP/s: forward 2·N·C·C·9·H·W per call, forward+backward 3× that
        """)
    var ours: [ConvResult] = []
    var table = Table(["shape", "fwd ms", "fwd GFLOP/s", "fwd+bwd ms", "fwd+bwd GFLOP/s"])
    for s in ConvShape.adm {
        var rng = RandomGenerator(seed: 2)
        let x = rng.normal([s.N, s.C, s.H, s.H], as: Float.self)
        let w = rng.normal([s.C, s.C, 3, 3], std: 1 / (Double(s.C) * 9).squareRoot(), as: Float.self)
        let b = rng.normal([s.C], as: Float.self)
        let seed = rng.normal([s.N, s.C, s.H, s.H], as: Float.self)

        // Forward: leaves that need no gradient, so nothing is recorded.
        let (xc, wc, bc) = (Variable(x), Variable(w), Variable(b))
        let forward = measure(settings) {
            _ = conv2d(xc, weight: wc, bias: bc, padding: 1)
        }
        // Forward + backward: fresh leaves each run, so gradients never accumulate across runs.
        let forwardBackward = measure(settings) {
            let xv = Variable(x, requiresGrad: true)
            let wv = Variable(w, requiresGrad: true)
            let bv = Variable(b, requiresGrad: true)
            conv2d(xv, weight: wv, bias: bv, padding: 1).backward(seed: seed)
        }
        ours.append(ConvResult(shape: s, forward: forward, forwardBackward: forwardBackward))
        table.add([s.label, msRange(forward), rateRange(forward) { s.flopsForward / $0 / 1e9 },
                   msRange(forwardBackward), rateRange(forwardBackward) { 3 * s.flopsForward / $0 / 1e9 }])
    }
    print(table.render())

    guard let python else {
        print("PyTorch comparison skipped (--no-torch).")
        return
    }
    guard pythonHasTorch(python) else {
        print("PyTorch comparison skipped: `\(python) -c \"import torch\"` failed (see reference/README.md to install it).")
        return
    }
    let script = referenceScript("bench_conv.py")
    let arguments = [script, "--threads", "\(Threads.count)", "--repeats", "\(settings.repeats)"]
    print("\nPyTorch: \(python) \(arguments.joined(separator: " "))")
    guard let lines = try? runProcess(python, arguments) else {
        print("PyTorch comparison skipped: could not run \(script).")
        return
    }
    let torch = lines.compactMap(TorchConvResult.init(jsonLine:))
    var compare = Table(["shape", "ours fwd ms", "torch fwd ms", "ours/torch fwd",
                         "ours fwd+bwd ms", "torch fwd+bwd ms", "ours/torch fwd+bwd"])
    for r in ours {
        guard let t = torch.first(where: { $0.C == r.shape.C && $0.H == r.shape.H && $0.N == r.shape.N }) else {
            compare.add([r.shape.label, fmt(r.forward.median * 1e3), "-", "-",
                         fmt(r.forwardBackward.median * 1e3), "-", "-"])
            continue
        }
        compare.add([r.shape.label,
                     fmt(r.forward.median * 1e3), fmt(t.forwardMs), fmt(r.forward.median * 1e3 / t.forwardMs, 2),
                     fmt(r.forwardBackward.median * 1e3), fmt(t.forwardBackwardMs),
                     fmt(r.forwardBackward.median * 1e3 / t.forwardBackwardMs, 2)])
    }
    print(compare.render())
    print("ours/torch is a time ratio (medians): below 1 means ours is faster. " +
          "The two run one after the other, not interleaved.")
}

/// One JSON line of bench_conv.py: {"shape": "N8 C192 64x64 k3s1p1", "fwd_ms": …, "fwdbwd_ms": …}.
struct TorchConvResult {
    var N, C, H: Int
    var forwardMs, forwardBackwardMs: Double

    init?(jsonLine: String) {
        guard let data = jsonLine.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let shape = object["shape"] as? String,
              let fwd = (object["fwd_ms"] as? NSNumber)?.doubleValue,
              let fwdbwd = (object["fwdbwd_ms"] as? NSNumber)?.doubleValue
        else { return nil }
        // "N8 C192 64x64 k3s1p1" → N 8, C 192, H 64
        let parts = shape.split(separator: " ")
        guard parts.count >= 3, let n = Int(parts[0].dropFirst()), let c = Int(parts[1].dropFirst()),
              let h = parts[2].split(separator: "x").first.flatMap({ Int($0) })
        else { return nil }
        (N, C, H, forwardMs, forwardBackwardMs) = (n, c, h, fwd, fwdbwd)
    }
}

/// Whether `python -c "import torch"` succeeds.
func pythonHasTorch(_ python: String) -> Bool {
    (try? runProcess(python, ["-c", "import torch"], discardingErrors: true)) != nil
}

/// The path of a file in the package's reference/ folder (found from this source file's path).
func referenceScript(_ name: String) -> String {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("reference").appendingPathComponent(name).path
}

struct ProcessFailed: Error { var status: Int32 }

/// Run `executable` (looked up on PATH) with `arguments`; its stdout split into lines, or an
/// error when it exits with a non-zero status. Its stderr passes through to ours unless discarded.
func runProcess(_ executable: String, _ arguments: [String], discardingErrors: Bool = false) throws -> [String] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [executable] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    if discardingErrors { process.standardError = FileHandle.nullDevice }
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw ProcessFailed(status: process.terminationStatus) }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
}
