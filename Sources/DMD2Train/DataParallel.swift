// Data-parallel training: the global batch of B images is cut into S shards of B/S images; each
// process (rank) of a group computes the gradients of its S/N shards, and the shards' gradients
// are averaged across the group so that every rank takes the same optimiser step.
//
//   shard s ∈ 0…S−1   rows s·B/S ..< (s+1)·B/S of the global batch (the data loader's order is
//                     the same on every rank; a rank reads only its rows), and its own random
//                     stream: each iteration draws one seed from the trainer's generator, and
//                     shard s's stream is the s-th draw of a generator seeded with it
//   rank r            shards r·S/N ..< (r+1)·S/N (N ranks; N must divide S)
//   gradient          ḡ = (g_0 + g_1 + … + g_{S−1}) / S, each g_s the gradient of shard s's
//                     mean loss, so ḡ is the gradient of the global batch's mean loss
//
// Reductions (`GradientReduction`):
//   ordered    the sum is taken in shard order, element by element, whatever N: the flat gradient
//              is cut into N segments, an all-to-all sends every shard's segment j to rank j, rank
//              j sums its segment over s = 0…S−1 left to right and divides by S, and an all-gather
//              returns the segments to everyone. Bandwidth-optimal like a ring all-reduce (each
//              rank sends and receives (N−1)/N of the buffer twice per local shard), the same bits
//              on every rank, and the same bits for any N dividing S — one process computing
//              S shards one after the other (`SingleProcess`) gives exactly what N ranks give.
//   allreduce  each rank sums its own shards in order, then MPI_Allreduce (the MPI library's
//              choice of algorithm and order) and a division by S: equal to `ordered` within
//              a few units in the last place, not bitwise.
//
// Parameters are compared across ranks by a 64-bit checksum of their bits at the start, every
// `checkInterval` iterations and before every checkpoint; a difference is a `DataParallelError`
// naming the ranks (on every rank, so they all stop).
import DMD2Core
import Foundation

/// How the shards' gradients are summed (see the file header).
public enum GradientReduction: String, Codable, Sendable, CaseIterable {
    case ordered, allreduce
}

/// A data-parallel job that cannot go on: bad settings, ranks that disagree, a failed collective.
public struct DataParallelError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The element types collectives move.
public enum CollectiveElement: Sendable {
    case byte, float, double

    public var size: Int {
        switch self {
        case .byte: 1
        case .float: 4
        case .double: 8
        }
    }

    static func of<T: TensorScalar>(_: T.Type) -> CollectiveElement { T.self == Float.self ? .float : .double }
}

/// The processes of a data-parallel job and the three collectives the trainers need. Every rank
/// calls each collective in the same order with the same counts.
public protocol ProcessGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// For messages: "one process", "Open MPI v4.1.4, 2 ranks".
    var summary: String { get }
    /// `send` holds `size` blocks of `count` elements, block j for rank j; `receive` gets
    /// `size` blocks, block i from rank i.
    func alltoall(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws
    /// Every rank's `count` elements of `send`, in rank order, into `receive` (size·count).
    func allgather(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws
    /// The elementwise sum over ranks (float or double), in the library's order, into `receive`.
    func allreduceSum(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws
    /// Stop the whole job (every rank) after printing `message` on standard error.
    func abort(_ message: String, code: Int32) -> Never
}

/// One process: the collectives are copies. With S shards it computes what S ranks compute.
public final class SingleProcess: ProcessGroup {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var summary: String { "one process" }

    public func alltoall(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        receive.copyMemory(from: send, byteCount: count * element.size)
    }

    public func allgather(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        receive.copyMemory(from: send, byteCount: count * element.size)
    }

    public func allreduceSum(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        receive.copyMemory(from: send, byteCount: count * element.size)
    }

    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(code)
    }
}

/// How a trainer joins a data-parallel job: the group, the reduction and the drift check.
public struct DataParallelSetup {
    public var group: any ProcessGroup
    public var reduction: GradientReduction
    /// Parameters compared across ranks every this many iterations (0: only at the start and
    /// before checkpoints).
    public var checkInterval: Int

    public init(group: any ProcessGroup, reduction: GradientReduction = .ordered, checkInterval: Int = 100) {
        self.group = group
        self.reduction = reduction
        self.checkInterval = checkInterval
    }
}

/// One data-parallel run: S shards over the group's N ranks (see the file header).
public final class DataParallel {
    public let group: any ProcessGroup
    public let shards: Int
    public let reduction: GradientReduction
    public let checkInterval: Int

    /// Throws unless N divides S and S divides the batch.
    public init(setup: DataParallelSetup, shards: Int, batchSize: Int) throws {
        let n = setup.group.size
        guard shards >= 1, shards % n == 0 else {
            throw DataParallelError("\(n) ranks need a shard count that is a multiple of \(n) (the run has \(shards) shard\(shards == 1 ? "" : "s"); pass --shards \(n) or a multiple of it when the run starts)")
        }
        guard batchSize % shards == 0 else {
            throw DataParallelError("the batch of \(batchSize) cannot be cut into \(shards) equal shards")
        }
        guard setup.checkInterval >= 0 else { throw DataParallelError("check interval \(setup.checkInterval) must be ≥ 0") }
        self.group = setup.group
        self.shards = shards
        self.reduction = setup.reduction
        self.checkInterval = setup.checkInterval
    }

    public var rank: Int { group.rank }
    public var size: Int { group.size }
    /// Rank 0 writes checkpoints and logs.
    public var isRoot: Bool { group.rank == 0 }
    public var shardsPerRank: Int { shards / group.size }
    /// The shards this rank computes.
    public var localShards: Range<Int> { (rank * shardsPerRank)..<((rank + 1) * shardsPerRank) }

    /// The batch rows of each local shard.
    public func localRows(batchSize: Int) -> [Range<Int>] {
        let b = batchSize / shards
        return localShards.map { ($0 * b)..<(($0 + 1) * b) }
    }

    /// Every shard's random generator for one iteration: one draw of `rng` (the same on every
    /// rank) seeds a generator whose s-th draw seeds shard s.
    public func shardGenerators(_ rng: inout RandomGenerator) -> [RandomGenerator] {
        var seeds = RandomGenerator(seed: rng.next())
        return (0..<shards).map { _ in RandomGenerator(seed: seeds.next()) }
    }

    /// The average over all S shards of equal-length flat gradients; `local` holds this rank's
    /// shards in order. The same result on every rank.
    public func average<T: TensorScalar>(_ local: [[T]]) throws -> [T] {
        precondition(local.count == shardsPerRank, "DataParallel.average: \(local.count) local shards, expected \(shardsPerRank)")
        let n = local[0].count
        precondition(local.allSatisfy { $0.count == n }, "DataParallel.average: shards of different lengths")
        let element = CollectiveElement.of(T.self)
        let scale = T(Double(shards))
        switch reduction {
        case .ordered:
            let N = group.size, L = shardsPerRank
            let segment = (n + N - 1) / N
            try checkCount(L * segment)
            var send = [T](repeating: 0, count: N * L * segment)
            for j in 0..<N {
                for l in 0..<L {
                    let from = j * segment, to = min(n, from + segment)
                    if from < to {
                        let base = (j * L + l) * segment
                        send.withUnsafeMutableBufferPointer { s in
                            local[l].withUnsafeBufferPointer { g in
                                for i in from..<to { s[base + i - from] = g[i] }
                            }
                        }
                    }
                }
            }
            var received = [T](repeating: 0, count: N * L * segment)
            try send.withUnsafeBytes { s in
                try received.withUnsafeMutableBytes { r in
                    try group.alltoall(s.baseAddress!, r.baseAddress!, count: L * segment, element: element)
                }
            }
            // received: block i from rank i holds its L shards' segments, so shard s's segment
            // sits at s·segment: sum them in shard order.
            var sum = Array(received[0..<segment])
            sum.withUnsafeMutableBufferPointer { acc in
                received.withUnsafeBufferPointer { r in
                    for s in 1..<shards {
                        let base = s * segment
                        for i in 0..<segment { acc[i] += r[base + i] }
                    }
                    for i in 0..<segment { acc[i] = acc[i] / scale }
                }
            }
            var gathered = [T](repeating: 0, count: N * segment)
            try sum.withUnsafeBytes { s in
                try gathered.withUnsafeMutableBytes { g in
                    try group.allgather(s.baseAddress!, g.baseAddress!, count: segment, element: element)
                }
            }
            return Array(gathered[0..<n])
        case .allreduce:
            try checkCount(n)
            var sum = local[0]
            sum.withUnsafeMutableBufferPointer { acc in
                for l in 1..<max(1, local.count) {
                    local[l].withUnsafeBufferPointer { g in for i in 0..<n { acc[i] += g[i] } }
                }
            }
            var total = [T](repeating: 0, count: n)
            try sum.withUnsafeBytes { s in
                try total.withUnsafeMutableBytes { t in
                    try group.allreduceSum(s.baseAddress!, t.baseAddress!, count: n, element: element)
                }
            }
            total.withUnsafeMutableBufferPointer { t in for i in 0..<n { t[i] = t[i] / scale } }
            return total
        }
    }

    /// Every shard's values (`local`: this rank's shards in order, each of the same length on
    /// every rank), all S in shard order, on every rank.
    public func gatherShards(_ local: [[Double]]) throws -> [[Double]] {
        precondition(local.count == shardsPerRank, "DataParallel.gatherShards: \(local.count) local shards, expected \(shardsPerRank)")
        let m = local.first?.count ?? 0
        precondition(local.allSatisfy { $0.count == m }, "DataParallel.gatherShards: shards of different lengths")
        let flat = local.flatMap { $0 }
        try checkCount(flat.count)
        var all = [Double](repeating: 0, count: flat.count * group.size)
        try flat.withUnsafeBytes { s in
            try all.withUnsafeMutableBytes { a in
                try group.allgather(s.baseAddress!, a.baseAddress!, count: flat.count, element: .double)
            }
        }
        return (0..<shards).map { Array(all[($0 * m)..<(($0 + 1) * m)]) }
    }

    /// Throws on every rank unless every rank holds the same bits in `values` (the networks'
    /// parameters, in a fixed order). `what` and `step` name the check in the message.
    public func checkIdentical<T: TensorScalar>(_ values: [Tensor<T>], what: String, step: Int) throws {
        guard group.size > 1 else { return }
        let local = Self.checksum(values)
        var mine = [local]
        var all = [UInt64](repeating: 0, count: group.size)
        try mine.withUnsafeMutableBytes { s in
            try all.withUnsafeMutableBytes { a in
                try group.allgather(s.baseAddress!, a.baseAddress!, count: 8, element: .byte)
            }
        }
        guard all.contains(where: { $0 != all[0] }) else { return }
        let groups = Dictionary(grouping: all.indices, by: { all[$0] }).values.map { $0.sorted() }.sorted { $0[0] < $1[0] }
        let listing = groups.map { "ranks \($0.map(String.init).joined(separator: ","))" }.joined(separator: " vs ")
        throw DataParallelError("the ranks' \(what) differ at step \(step) (\(listing) hold different checksums): the ranks ran different code, data or settings, or a reduction returned different results; the checkpoints written so far were checked and agree")
    }

    /// A 64-bit checksum of the bits of `values` (FNV-1a over each element's bit pattern).
    public static func checksum<T: TensorScalar>(_ values: [Tensor<T>]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for t in values {
            t.withUnsafeBufferPointer { p in
                for x in p {
                    let bits: UInt64 = T.self == Float.self ? UInt64((x as! Float).bitPattern) : (x as! Double).bitPattern
                    h = (h ^ bits) &* 0x0000_0100_0000_01b3
                }
            }
        }
        return h
    }

    private func checkCount(_ count: Int) throws {
        guard count <= Int(Int32.max) else {
            throw DataParallelError("a collective of \(count) elements exceeds MPI's count limit (\(Int32.max)); use more ranks or a smaller network")
        }
    }
}

/// Gradients packed into one flat buffer (the order of the variables) and back.
public enum FlatGradients {
    /// The variables' gradients end to end (zeros for a variable without one), and which had one.
    public static func pack<T: TensorScalar>(_ variables: [Variable<T>]) -> (values: [T], present: [Bool]) {
        var values: [T] = []
        values.reserveCapacity(variables.reduce(0) { $0 + $1.value.count })
        var present: [Bool] = []
        for v in variables {
            if let g = v.grad {
                values += g.scalars
                present.append(true)
            } else {
                values += [T](repeating: 0, count: v.value.count)
                present.append(false)
            }
        }
        return (values, present)
    }

    /// Set each variable's gradient from `flat` (nil where `present` is false).
    public static func unpack<T: TensorScalar>(_ flat: [T], into variables: [Variable<T>], present: [Bool]) {
        precondition(present.count == variables.count, "FlatGradients.unpack: \(present.count) flags for \(variables.count) variables")
        var offset = 0
        for (v, has) in zip(variables, present) {
            let n = v.value.count
            v.grad = has ? Tensor(shape: v.value.shape, scalars: Array(flat[offset..<(offset + n)])) : nil
            offset += n
        }
        precondition(offset == flat.count, "FlatGradients.unpack: \(flat.count) values for \(offset) parameters")
    }
}
