// DMD2Train's DataParallel without MPI: the ordered average is the left-to-right sum over
// shards divided by S, whatever the group size (a fake group of N "ranks" runs the collectives
// as N copies in one process); allreduce agrees; flat gradients round-trip; settings that cannot
// work are refused by name; the checksum sees one flipped bit. Two real ranks: MPITrainingTests.
import DMD2Core
import DMD2TestSupport
import DMD2Train
import XCTest

final class DataParallelTests: CheckedTestCase {
    /// S shards of n values with very different magnitudes (order-sensitive sums).
    private func shards(_ s: Int, _ n: Int) -> [[Float]] {
        var rng = RandomGenerator(seed: 7)
        return (0..<s).map { k in (0..<n).map { _ in Float(rng.nextUniform() - 0.5) * Float(pow(10.0, Double(k % 4) * 2 - 3)) } }
    }

    private func leftToRight(_ shards: [[Float]]) -> [Float] {
        (0..<shards[0].count).map { i in
            var acc = shards[0][i]
            for s in 1..<shards.count { acc += shards[s][i] }
            return acc / Float(shards.count)
        }
    }

    func testOrderedAverageIsTheShardOrderSumOnOneProcess() throws {
        for (s, n) in [(1, 5), (2, 7), (3, 1000), (4, 1)] {
            let local = shards(s, n)
            let parallel = try DataParallel(setup: DataParallelSetup(group: SingleProcess()), shards: s, batchSize: 4 * s)
            XCTAssertEqual(try parallel.average(local), leftToRight(local), "S = \(s), n = \(n)")
            let allreduce = try DataParallel(setup: DataParallelSetup(group: SingleProcess(), reduction: .allreduce), shards: s, batchSize: 4 * s)
            XCTAssertEqual(try allreduce.average(local), leftToRight(local), "one process: allreduce sums its shards in the same order")
        }
    }

    /// N ranks simulated in one process: each collective is called by all N "ranks" in turn
    /// (their buffers collected, then the results handed out), checking the alltoall/allgather
    /// bookkeeping gives every rank the shard-order sum, bitwise, for N = 2, 3 with 1–2 shards each.
    func testOrderedAverageIsTheSameOnEverySimulatedRankCount() throws {
        for (N, L, n) in [(2, 1, 9), (3, 2, 10), (2, 2, 1)] {
            let S = N * L
            let all = shards(S, n)
            let results = try SimulatedGroup.run(ranks: N) { group in
                let parallel = try DataParallel(setup: DataParallelSetup(group: group), shards: S, batchSize: S)
                XCTAssertEqual(parallel.localShards, (group.rank * L)..<((group.rank + 1) * L))
                return try parallel.average(Array(all[parallel.localShards]))
            }
            for (rank, result) in results.enumerated() {
                XCTAssertEqual(result, leftToRight(all), "N = \(N), rank \(rank)")
            }
        }
    }

    func testFlatGradientsRoundTripAndKeepMissingGradients() {
        let a = Variable(Tensor<Float>(shape: [2, 2], scalars: [1, 2, 3, 4]), requiresGrad: true)
        let b = Variable(Tensor<Float>(shape: [3], scalars: [5, 6, 7]), requiresGrad: true)
        a.grad = Tensor(shape: [2, 2], scalars: [0.5, -1, 2, 3])
        let packed = FlatGradients.pack([a, b])
        XCTAssertEqual(packed.values, [0.5, -1, 2, 3, 0, 0, 0])
        XCTAssertEqual(packed.present, [true, false])
        FlatGradients.unpack(packed.values.map { $0 * 2 }, into: [a, b], present: packed.present)
        XCTAssertEqual(a.grad?.scalars, [1, -2, 4, 6])
        XCTAssertEqual(a.grad?.shape, [2, 2])
        XCTAssertNil(b.grad)
    }

    func testSettingsThatCannotWorkAreRefused() {
        XCTAssertThrowsError(try DataParallel(setup: DataParallelSetup(group: SingleProcess()), shards: 3, batchSize: 8)) {
            XCTAssertTrue("\($0)".contains("cannot be cut into 3 equal shards"), "\($0)")
        }
        XCTAssertThrowsError(try SimulatedGroup.run(ranks: 2) { group in
            _ = try DataParallel(setup: DataParallelSetup(group: group), shards: 3, batchSize: 6)
        }) { XCTAssertTrue("\($0)".contains("2 ranks need a shard count that is a multiple of 2"), "\($0)") }
    }

    func testShardStreamsAreIndependentOfTheRankCount() throws {
        var r1 = RandomGenerator(seed: 3), r2 = RandomGenerator(seed: 3)
        let one = try DataParallel(setup: DataParallelSetup(group: SingleProcess()), shards: 4, batchSize: 8).shardGenerators(&r1)
        let four = try SimulatedGroup.run(ranks: 2) { group in
            var r = RandomGenerator(seed: 3)
            return try DataParallel(setup: DataParallelSetup(group: group), shards: 4, batchSize: 8).shardGenerators(&r)
        }
        XCTAssertEqual(four[0], one)
        XCTAssertEqual(four[1], one)
        _ = r2.next()
        XCTAssertEqual(r1, r2, "the trainer's generator advances by one draw per iteration, whatever S")
        XCTAssertEqual(Set(one.map(\.state)).count, 4)
    }

    func testChecksumSeesOneFlippedBitAndDriftIsReported() throws {
        let t = Tensor<Float>(shape: [3], scalars: [1, 2, 3])
        var u = t
        u.scalars[1] = Float(bitPattern: u.scalars[1].bitPattern ^ 1)
        XCTAssertNotEqual(DataParallel.checksum([t]), DataParallel.checksum([u]))
        XCTAssertEqual(DataParallel.checksum([t]), DataParallel.checksum([Tensor<Float>(shape: [3], scalars: [1, 2, 3])]))
        XCTAssertThrowsError(try SimulatedGroup.run(ranks: 3) { group in
            let parallel = try DataParallel(setup: DataParallelSetup(group: group), shards: 3, batchSize: 3)
            try parallel.checkIdentical([group.rank == 2 ? u : t], what: "weights", step: 40)
        }) { error in
            XCTAssertTrue("\(error)".contains("the ranks' weights differ at step 40 (ranks 0,1 vs ranks 2 hold different checksums)"), "\(error)")
        }
    }
}

/// N ranks in one process, one thread each, whose collectives meet at a barrier: every rank
/// deposits its send buffer, the last to arrive computes all results, every rank takes its own.
final class SimulatedGroup: ProcessGroup, @unchecked Sendable {
    let rank: Int
    let size: Int
    let shared: Shared
    var summary: String { "simulated, \(size) ranks" }

    final class Shared: @unchecked Sendable {
        let condition = NSCondition()
        var deposits: [Int: Data] = [:]
        var results: [Int: Data] = [:]
        var generation = 0
    }

    init(rank: Int, size: Int, shared: Shared) {
        self.rank = rank
        self.size = size
        self.shared = shared
    }

    /// `body` on `ranks` threads; their results in rank order, or the first error.
    static func run<R>(ranks: Int, _ body: @escaping (SimulatedGroup) throws -> R) throws -> [R] {
        let shared = Shared()
        let box = RunBox(ranks, body)
        let done = DispatchGroup()
        for r in 0..<ranks {
            done.enter()
            Thread.detachNewThread {
                let result = Result { try box.body(SimulatedGroup(rank: r, size: ranks, shared: shared)) }
                box.lock.lock(); box.results[r] = result; box.lock.unlock()
                done.leave()
            }
        }
        done.wait()
        return try box.results.map { try $0!.get() }
    }

    /// Deposit `send`; when all have, `combine` maps the deposits (rank order) to each rank's result.
    private func exchange(_ send: Data, _ combine: ([Data]) -> [Data]) -> Data {
        let s = shared
        s.condition.lock()
        defer { s.condition.unlock() }
        let generation = s.generation
        s.deposits[rank] = send
        if s.deposits.count == size {
            let out = combine((0..<size).map { s.deposits[$0]! })
            s.results = Dictionary(uniqueKeysWithValues: out.enumerated().map { ($0.offset, $0.element) })
            s.deposits = [:]
            s.generation += 1
            s.condition.broadcast()
        } else {
            while s.generation == generation { s.condition.wait() }
        }
        let mine = s.results[rank]!
        return mine
    }

    func alltoall(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        let block = count * element.size
        let out = exchange(Data(bytes: send, count: block * size)) { all in
            (0..<size).map { j in all.reduce(into: Data()) { $0 += $1[(j * block)..<((j + 1) * block)] } }
        }
        out.copyBytes(to: receive.assumingMemoryBound(to: UInt8.self), count: out.count)
    }

    func allgather(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        let out = exchange(Data(bytes: send, count: count * element.size)) { all in
            let joined = all.reduce(into: Data()) { $0 += $1 }
            return [Data](repeating: joined, count: size)
        }
        out.copyBytes(to: receive.assumingMemoryBound(to: UInt8.self), count: out.count)
    }

    func allreduceSum(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        precondition(element == .float, "SimulatedGroup: Float sums only")
        let out = exchange(Data(bytes: send, count: count * 4)) { all in
            let values = all.map { d in d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
            let sum = (0..<count).map { i in values.dropFirst().reduce(values[0][i]) { $0 + $1[i] } }
            return [Data](repeating: sum.withUnsafeBytes { Data($0) }, count: size)
        }
        out.copyBytes(to: receive.assumingMemoryBound(to: UInt8.self), count: out.count)
    }

    func abort(_ message: String, code: Int32) -> Never { fatalError(message) }
}

/// The ranks' bodies and results, shared with their threads (results guarded by `lock`).
final class RunBox<R>: @unchecked Sendable {
    var results: [Result<R, Error>?]
    let body: (SimulatedGroup) throws -> R
    let lock = NSLock()
    init(_ n: Int, _ body: @escaping (SimulatedGroup) throws -> R) { results = Array(repeating: nil, count: n); self.body = body }
}
