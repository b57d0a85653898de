// Pictures of the toy as SVG: G's samples over the mixture at each snapshot, and the real and
// fake score fields with their difference (the direction DMD moves G's samples).
import DMD2Core
import DMD2Ops
import Foundation

/// A square panel mapping the plane's [−extent, extent]² to pixels.
struct ToyPanel {
    var originX: Double
    var originY: Double
    var size: Double
    var extent: Double

    func px(_ x: Double) -> Double { originX + (x + extent) / (2 * extent) * size }
    func py(_ y: Double) -> Double { originY + (extent - y) / (2 * extent) * size }
}

public enum ToyFigures {
    static let extent = 1.6
    static let panel = 240.0
    static let margin = 30.0

    static func header(width: Double, height: Double) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>

        """
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    /// The mixture's components as circles of radius 1 and 2 std, and the panel frame.
    static func background(_ p: ToyPanel, _ mixture: GaussianMixture2D, title: String) -> String {
        var s = "<rect x=\"\(f(p.originX))\" y=\"\(f(p.originY))\" width=\"\(f(p.size))\" height=\"\(f(p.size))\" fill=\"none\" stroke=\"#999\"/>\n"
        s += "<text x=\"\(f(p.originX + p.size / 2))\" y=\"\(f(p.originY - 8))\" text-anchor=\"middle\">\(title)</text>\n"
        let scale = p.size / (2 * p.extent)
        for mu in mixture.means {
            for k in [1.0, 2.0] {
                s += "<circle cx=\"\(f(p.px(mu.0)))\" cy=\"\(f(p.py(mu.1)))\" r=\"\(f(k * mixture.std * scale))\" fill=\"#dbe8f5\" fill-opacity=\"\(k == 1 ? 0.9 : 0.5)\" stroke=\"none\"/>\n"
            }
        }
        return s
    }

    /// One panel per snapshot: G's samples (dots) over the mixture (shaded discs at 1 and 2 std).
    public static func samplesSVG(_ toy: ToyDMD, maxPoints: Int = 600) -> String {
        let n = toy.snapshots.count
        let width = margin + Double(n) * (panel + margin), height = panel + 2 * margin + 20
        var s = header(width: width, height: height)
        for (i, snap) in toy.snapshots.enumerated() {
            let p = ToyPanel(originX: margin + Double(i) * (panel + margin), originY: margin, size: panel, extent: extent)
            let q = ToyDMD.quality(of: snap.samples, toy.mixture)
            s += background(p, toy.mixture, title: "iteration \(snap.iteration)")
            let count = min(maxPoints, snap.samples.shape[0])
            for j in 0..<count {
                let x = snap.samples.scalars[2 * j], y = snap.samples.scalars[2 * j + 1]
                guard Swift.abs(x) < extent, Swift.abs(y) < extent else { continue }
                s += "<circle cx=\"\(f(p.px(x)))\" cy=\"\(f(p.py(y)))\" r=\"1.6\" fill=\"#d62728\" fill-opacity=\"0.6\"/>\n"
            }
            s += "<text x=\"\(f(p.originX + p.size / 2))\" y=\"\(f(p.originY + p.size + 18))\" text-anchor=\"middle\">precision \(String(format: "%.2f", q.precision)), coverage \(String(format: "%.2f", q.coverage))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Arrows of the real score, the fake score and the DMD direction s_real − s_fake on a grid,
    /// at noise level σ, for G's current samples (dots).
    public static func scoresSVG(_ toy: ToyDMD, sigma: Double, grid: Int = 17) -> String {
        let width = margin + 3 * (panel + margin), height = panel + 2 * margin + 20
        var s = header(width: width, height: height)
        var points: [Double] = []
        for r in 0..<grid {
            for c in 0..<grid {
                points.append(-extent + (Double(c) + 0.5) * 2 * extent / Double(grid))
                points.append(extent - (Double(r) + 0.5) * 2 * extent / Double(grid))
            }
        }
        let x = Tensor<Double>(shape: [grid * grid, 2], scalars: points)
        let sigmas = [Double](repeating: sigma, count: grid * grid)
        let real = toy.mixture.score(x, sigma: sigmas)
        let fakeD = NoGrad.run { toy.fake(Variable(x), sigma: sigmas).value }
        let fake = (fakeD - x) * (1 / (sigma * sigma))
        let fields: [(String, Tensor<Double>, String)] = [
            ("real score s_real", real, "#1f77b4"), ("fake score s_fake", fake, "#ff7f0e"),
            ("s_real − s_fake (G's update)", real - fake, "#000000"),
        ]
        let samples = toy.samples(toy.evaluationNoise)
        for (i, field) in fields.enumerated() {
            let p = ToyPanel(originX: margin + Double(i) * (panel + margin), originY: margin, size: panel, extent: extent)
            s += background(p, toy.mixture, title: field.0)
            for j in 0..<min(400, samples.shape[0]) {
                let sx = samples.scalars[2 * j], sy = samples.scalars[2 * j + 1]
                guard Swift.abs(sx) < extent, Swift.abs(sy) < extent else { continue }
                s += "<circle cx=\"\(f(p.px(sx)))\" cy=\"\(f(p.py(sy)))\" r=\"1.2\" fill=\"#d62728\" fill-opacity=\"0.35\"/>\n"
            }
            // Arrow lengths: direction exact, length ∝ |v|^½ scaled to the largest in the panel.
            let v = field.1.scalars
            let norms: [Double] = (0..<(grid * grid)).map { j in
                let vx = v[2 * j], vy = v[2 * j + 1]
                return (vx * vx + vy * vy).squareRoot()
            }
            let top = max(norms.max() ?? 1, 1e-12).squareRoot()
            let cell = p.size / Double(grid)
            for j in 0..<(grid * grid) where norms[j] > 0 {
                let len = 0.9 * cell * norms[j].squareRoot() / top
                let ux = v[2 * j] / norms[j], uy = v[2 * j + 1] / norms[j]
                let x0 = p.px(points[2 * j]), y0 = p.py(points[2 * j + 1])
                let x1: Double = x0 + len * ux
                let y1: Double = y0 - len * uy
                // Arrow head: two strokes at ±30° back from the tip (screen y points down).
                let head: Double = min(4.0, 0.4 * len)
                let c30 = 0.87, s30 = 0.5
                let hx1: Double = x1 - head * (ux * c30 - uy * s30)
                let hy1: Double = y1 + head * (uy * c30 + ux * s30)
                let hx2: Double = x1 - head * (ux * c30 + uy * s30)
                let hy2: Double = y1 + head * (uy * c30 - ux * s30)
                s += "<path d=\"M\(f(x0)),\(f(y0)) L\(f(x1)),\(f(y1)) M\(f(hx1)),\(f(hy1)) L\(f(x1)),\(f(y1)) L\(f(hx2)),\(f(hy2))\" stroke=\"\(field.2)\" stroke-width=\"1\" fill=\"none\"/>\n"
            }
        }
        s += "<text x=\"\(f(width / 2))\" y=\"\(f(height - 6))\" text-anchor=\"middle\">σ = \(String(format: "%.3g", sigma)); arrow length ∝ √|v| (directions exact); dots: G's samples</text>\n"
        return s + "</svg>\n"
    }
}
