// `elementwise`: memory bandwidth of the backend's elementwise and reduction primitives on
// 16M Float elements (64 MiB per buffer, far beyond the caches).
//
//   add     y = a + b          bytes = 3·4·n (two reads, one write)
//   affine  y = 1.5·x + 0.25   bytes = 2·4·n
//   silu    y = x·σ(x)         bytes = 2·4·n; also Gelem/s (it is the one with real arithmetic)
//   sum     s = Σ x            bytes = 4·n
//   memcpy  y = x              bytes = 2·4·n; one thread, not a backend primitive: the roof
// Bytes count what the kernel reads and writes, not the cache's write-allocate reads.
import DMD2Core

func runElementwiseSuite(_ settings: RunSettings) {
    let n = 1 << 24
    print("""
        == elementwise: n = \(n) Float elements, through Compute.backend primitives
           warm-up \(settings.warmup), repeats \(settings.repeats); cells: median (min–max)
        """)
    var rng = RandomGenerator(seed: 3)
    let a = Buffer(rng.normal([n], as: Float.self).scalars)
    let b = Buffer(rng.normal([n], as: Float.self).scalars)
    let y = Buffer([Float](repeating: 0, count: n))
    var table = Table(["primitive", "bytes/elem", "ms", "GB/s", "Gelem/s"])
    var sink: Float = 0

    let backend = Compute.backend
    let cases: [(name: String, bytesPerElement: Int, run: () -> Void)] = [
        ("add", 12, { backend.binary(.add, a.readOnly, b.readOnly, y.elements) }),
        ("affine", 8, { backend.affine(a.readOnly, scale: 1.5, shift: 0.25, y.elements) }),
        ("silu", 8, { backend.unary(.silu, a.readOnly, y.elements) }),
        ("sum", 4, { sink += backend.sum(a.readOnly) }),
        // Not a backend primitive: the memory system's roof for a read + write stream.
        ("memcpy (roof)", 8, { y.pointer.update(from: a.pointer, count: n) }),
    ]
    for c in cases {
        let t = measure(settings, c.run)
        let bytes = Double(c.bytesPerElement * n)
        table.add([c.name, "\(c.bytesPerElement)", msRange(t, digits: 2),
                   rateRange(t) { bytes / $0 / 1e9 },
                   rateRange(t, { Double(n) / $0 / 1e9 }, digits: 2)])
    }
    print(table.render())
    if sink.isNaN { print("(sum was NaN)") }   // keeps the sums observable
}
