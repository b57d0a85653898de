// Parallel loops over the machine's cores, with one configured thread count.
//
// `Threads.count` (or the environment variable DMD2_NUM_THREADS, read at start-up) sets how
// many threads every parallel loop and every BLIS call uses. Work is split into
// `Threads.count` contiguous chunks whose boundaries depend only on the count, and every
// output element is written by exactly one chunk, so results are bitwise reproducible for a
// fixed count. (Reductions combine per-chunk partial sums in chunk order.)
import CBLIS
import Dispatch
import Foundation
import Synchronization

public enum Threads {
    private static let state = Mutex<Int>(Threads.initialCount())

    /// The most threads a loop or BLIS call may use: 256. More has never helped on a CPU (work is
    /// split into `count` chunks), and BLIS's OpenMP runtime (libgomp) crashes when asked for tens
    /// of thousands. The command line refuses more (`--threads`); DMD2_NUM_THREADS and `count`
    /// are clamped to it.
    public static let maximum = 256

    private static func initialCount() -> Int {
        let fromEnv = ProcessInfo.processInfo.environment["DMD2_NUM_THREADS"].flatMap(Int.init)
        let n = min(maximum, max(1, fromEnv ?? ProcessInfo.processInfo.activeProcessorCount))
        BLISRuntime.prepare()   // before BLIS starts: it picks its kernels then
        bli_thread_set_num_threads(Int64(n))
        return n
    }

    /// Threads used by parallel loops and BLIS. Setting it also configures BLIS.
    public static var count: Int {
        get { state.withLock { $0 } }
        set {
            precondition(newValue >= 1, "Threads.count must be ≥ 1, got \(newValue)")
            let n = min(newValue, maximum)
            state.withLock { $0 = n }
            bli_thread_set_num_threads(Int64(n))
        }
    }

    /// Run `body` with a temporary thread count, restoring the previous one afterwards.
    public static func with<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
        let old = count
        count = n
        defer { count = old }
        return try body()
    }
}

/// Split `0..<n` into at most `Threads.count` contiguous chunks of at least `minChunk`
/// items and run `body` on each chunk, concurrently. Chunk boundaries depend only on `n`,
/// `minChunk` and the thread count, never on timing.
@inlinable
public func parallelChunks(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    guard n > 0 else { return }
    let chunks = Swift.min(Threads.count, Swift.max(1, n / Swift.max(1, minChunk)))
    if chunks == 1 {
        body(0..<n)
        return
    }
    withoutActuallyEscaping(body) { body in
        let box = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            box.value(chunkRange(c, of: chunks, total: n))
        }
    }
}

/// Parallel loop over `0..<n`, one call per index (indices grouped into contiguous chunks).
@inlinable
public func parallelFor(_ n: Int, minChunk: Int = 1, _ body: (Int) -> Void) {
    parallelChunks(n, minChunk: minChunk) { range in
        for i in range { body(i) }
    }
}

/// The `c`-th of `chunks` near-equal contiguous ranges covering `0..<total`.
@inlinable
public func chunkRange(_ c: Int, of chunks: Int, total: Int) -> Range<Int> {
    let base = total / chunks, extra = total % chunks
    let start = c * base + Swift.min(c, extra)
    return start..<(start + base + (c < extra ? 1 : 0))
}

/// Wraps a value for crossing into `concurrentPerform`, whose workers only read shared inputs
/// and write disjoint outputs.
@usableFromInline
struct UncheckedSendable<V>: @unchecked Sendable {
    @usableFromInline let value: V
    @usableFromInline init(_ value: V) { self.value = value }
}
