// Parallel loops over the machine's cores: one thread pool of our own, fixed chunks, dynamic
// hand-out.
//
// `Threads.count` (or the environment variable DMD2_NUM_THREADS, read at start-up) sets how
// many threads work on a parallel loop: the calling thread plus `Threads.count − 1` persistent
// workers of `WorkPool`. BLIS is always called single-threaded (set once at start-up);
// `CPUBackend.gemm` splits a GEMM into column or row blocks and runs them as a parallel loop.
//
// Why not OpenMP's (or BLIS's) threading: an OpenMP team splits work into one share per
// thread and meets at a barrier, so when another process holds a core the whole team waits for
// the descheduled member (measured: 4–21× slower than one thread on this 2-core machine when
// something else ran beside it). Here a loop is cut into chunks whose number and boundaries
// depend only on the problem size, never on the thread count or on timing; every participant
// takes the next chunk from an atomic counter until none is left, then returns. A descheduled
// worker delays only the one chunk it holds; a worker that wakes late finds nothing left and
// goes back to sleep. Nobody spins at a barrier: the caller, once the counter is exhausted,
// waits (briefly polling, then asleep on a condition variable) only for chunks already taken.
//
// Determinism: every output element is written by exactly one chunk, and reductions combine
// per-chunk partials in chunk order, so results are bitwise identical for ANY thread count
// (DMD2CoreTests' ThreadCountInvarianceTests check ops, a conv and a small UNet at 1, 2, 3).
//
// Nesting: one loop runs on the pool at a time. A parallel loop started while the pool is
// busy — from inside a chunk (nested parallelism), or from another thread — runs its chunks
// inline, in order, on the calling thread: the same chunks, so the same result, and no
// thread ever waits for a pool that is waiting for it.
import CBLIS
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public enum Threads {
    private static let state = Mutex<Int>(Threads.initialCount())

    /// The most threads a parallel loop may use: 256 (a loop is cut into at most
    /// `parallelMaxChunks` = 256 chunks, so more threads could only idle). The command line
    /// refuses more (`--threads`); DMD2_NUM_THREADS and `count` are clamped to it.
    public static let maximum = 256

    private static func initialCount() -> Int {
        let fromEnv = ProcessInfo.processInfo.environment["DMD2_NUM_THREADS"].flatMap(Int.init)
        let n = min(maximum, max(1, fromEnv ?? ProcessInfo.processInfo.activeProcessorCount))
        BLISRuntime.prepare()   // before BLIS starts: it picks its kernels then
        // BLIS itself always runs one thread; our pool runs several BLIS calls at once.
        // (BLIS's runtime settings are process-wide, not per thread: checked with BLIS 0.9.)
        bli_thread_set_num_threads(1)
        return n
    }

    /// Threads that work on a parallel loop (the caller and `count − 1` pool workers).
    public static var count: Int {
        get { state.withLock { $0 } }
        set {
            precondition(newValue >= 1, "Threads.count must be ≥ 1, got \(newValue)")
            let n = min(newValue, maximum)
            state.withLock { $0 = n }
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

/// The most chunks one parallel loop is cut into (more only adds hand-out overhead).
public let parallelMaxChunks = 256

/// How many chunks `parallelChunks(n, minChunk:)` cuts `0..<n` into: ⌊n / minChunk⌋, at least
/// 1 and at most `parallelMaxChunks`. It depends on the sizes only, never on the thread count.
@inlinable
public func parallelChunkCount(_ n: Int, minChunk: Int = 1) -> Int {
    guard n > 0 else { return 0 }
    return Swift.min(parallelMaxChunks, Swift.max(1, n / Swift.max(1, minChunk)))
}

/// Split `0..<n` into `parallelChunkCount(n, minChunk:)` contiguous chunks of at least
/// `minChunk` items and run `body` on each chunk, concurrently on the pool. Chunk boundaries
/// depend only on `n` and `minChunk`, never on the thread count or on timing.
@inlinable
public func parallelChunks(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let chunks = parallelChunkCount(n, minChunk: minChunk)
    if chunks == 0 { return }
    if chunks == 1 {
        body(0..<n)
        return
    }
    parallelTasks(chunks) { c in body(chunkRange(c, of: chunks, total: n)) }
}

/// Parallel loop over `0..<n`, one call per index (indices grouped into contiguous chunks).
@inlinable
public func parallelFor(_ n: Int, minChunk: Int = 1, _ body: (Int) -> Void) {
    parallelChunks(n, minChunk: minChunk) { range in
        for i in range { body(i) }
    }
}

/// Run `body(0)`, …, `body(count − 1)` on the pool, each exactly once, in any order and
/// concurrently. Callers choose `count` from the problem size only.
public func parallelTasks(_ count: Int, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    if count == 1 { body(0); return }
    WorkPool.shared.run(count, body)
}

/// The `c`-th of `chunks` near-equal contiguous ranges covering `0..<total`.
@inlinable
public func chunkRange(_ c: Int, of chunks: Int, total: Int) -> Range<Int> {
    let base = total / chunks, extra = total % chunks
    let start = c * base + Swift.min(c, extra)
    return start..<(start + base + (c < extra ? 1 : 0))
}

/// Wraps a value for crossing into a parallel loop, whose chunks only read shared inputs and
/// write disjoint outputs.
@usableFromInline
struct UncheckedSendable<V>: @unchecked Sendable {
    @usableFromInline let value: V
    @usableFromInline init(_ value: V) { self.value = value }
}

// MARK: - The pool

/// One parallel loop in flight: `count` tasks handed out by an atomic counter.
final class PoolJob: @unchecked Sendable {
    let count: Int
    /// Workers with an index below this take part (`Threads.count − 1` when the job started).
    let helpers: Int
    /// The caller's closure; valid until every task has finished (the caller waits for that).
    let body: UnsafeMutablePointer<(Int) -> Void>
    let next = Atomic<Int>(0)
    let done = Atomic<Int>(0)

    init(count: Int, helpers: Int, body: UnsafeMutablePointer<(Int) -> Void>) {
        self.count = count
        self.helpers = helpers
        self.body = body
    }

    /// Take tasks until none is left; returns how many this thread ran.
    func work() -> Int {
        var ran = 0
        while true {
            let task = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if task >= count { return ran }
            body.pointee(task)
            ran += 1
        }
    }
}

/// The persistent worker threads. Workers sleep on a condition variable between loops (after a
/// short poll, so back-to-back loops do not pay a wake-up each); they never wait for each other.
final class WorkPool: @unchecked Sendable {
    static let shared = WorkPool()

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>       // workers: a new job
    private let finished: UnsafeMutablePointer<pthread_cond_t>   // caller: the last task is done
    /// The job workers should join (guarded by `mutex`).
    private var current: PoolJob?
    private var workerCount = 0                                  // guarded by `mutex`
    private let generation = Atomic<Int>(0)                      // bumped for every new job
    private let sleepers = Atomic<Int>(0)                        // workers asleep on `wake`
    private let callerAsleep = Atomic<Bool>(false)               // caller asleep on `finished`
    private let busy = Atomic<Bool>(false)                       // a job is in flight

    /// Polls of a shared flag before a waiting thread goes to sleep (tens of microseconds).
    private static let pollsBeforeSleep = 20_000

    private init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        wake = .allocate(capacity: 1)
        pthread_cond_init(wake, nil)
        finished = .allocate(capacity: 1)
        pthread_cond_init(finished, nil)
    }

    func run(_ count: Int, _ body: (Int) -> Void) {
        let helpers = Threads.count - 1
        guard helpers > 0, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for task in 0..<count { body(task) }   // one thread, or nested / concurrent: inline, in order
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        startWorkers(helpers)
        withoutActuallyEscaping(body) { body in
            let slot = UnsafeMutablePointer<(Int) -> Void>.allocate(capacity: 1)
            slot.initialize(to: body)
            let job = PoolJob(count: count, helpers: helpers, body: slot)
            pthread_mutex_lock(mutex)
            current = job
            pthread_mutex_unlock(mutex)
            generation.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(wake)
                pthread_mutex_unlock(mutex)
            }
            let ran = job.work()
            if ran > 0 { job.done.wrappingAdd(ran, ordering: .sequentiallyConsistent) }
            waitUntilDone(job)
            pthread_mutex_lock(mutex)
            current = nil
            pthread_mutex_unlock(mutex)
            slot.deinitialize(count: 1)
            slot.deallocate()
        }
    }

    /// Wait for tasks other threads took (the counter is exhausted by now).
    private func waitUntilDone(_ job: PoolJob) {
        var polls = 0
        while job.done.load(ordering: .acquiring) < job.count {
            polls += 1
            if polls < Self.pollsBeforeSleep { continue }
            pthread_mutex_lock(mutex)
            callerAsleep.store(true, ordering: .sequentiallyConsistent)
            while job.done.load(ordering: .sequentiallyConsistent) < job.count {
                pthread_cond_wait(finished, mutex)
            }
            callerAsleep.store(false, ordering: .sequentiallyConsistent)
            pthread_mutex_unlock(mutex)
            return
        }
    }

    private func startWorkers(_ wanted: Int) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while workerCount < wanted {
            let index = workerCount
            let thread = Thread { [unowned self] in self.workerLoop(index) }
            thread.name = "dmd2-worker-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
            workerCount += 1
        }
    }

    private func workerLoop(_ index: Int) -> Never {
        var seen = 0
        while true {
            var polls = 0
            while generation.load(ordering: .acquiring) == seen {
                polls += 1
                if polls < Self.pollsBeforeSleep { continue }
                pthread_mutex_lock(mutex)
                sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen {
                    pthread_cond_wait(wake, mutex)
                }
                sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(mutex)
            }
            pthread_mutex_lock(mutex)
            seen = generation.load(ordering: .acquiring)
            let job = current
            pthread_mutex_unlock(mutex)
            guard let job, index < job.helpers else { continue }
            let ran = job.work()
            guard ran > 0 else { continue }
            let total = job.done.wrappingAdd(ran, ordering: .sequentiallyConsistent).newValue
            if total == job.count, callerAsleep.load(ordering: .sequentiallyConsistent) {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(finished)
                pthread_mutex_unlock(mutex)
            }
        }
    }
}
