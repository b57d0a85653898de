// DataLoader: seeded, resumable batches from an ImageDataset.
//
// Pipeline, fixed at init:
//   1. class subset  keep items whose label is in `classes` (e.g. Array(0..<10)); with
//                    `remapLabels` (the default) label classes[k] becomes k, so a 10-class model
//                    sees labels 0..<10; without it labels keep their dataset values.
//   2. size cap      keep at most `maxItems`, balanced: the first item of each kept class in
//                    turn, then the second of each, …, so a capped set of a class-sorted dataset
//                    still holds every class. The kept items are then put back in dataset order.
// Per epoch:
//   3. shuffle       a Fisher–Yates permutation of the kept items drawn from the generator
//                    (identity order when `shuffle` is false)
//   4. x-flip        with `xflip`, one draw per item after the shuffle: low bit 1 → mirrored
// Batches are Tensor<Float> [N, C, H, W] in [−1, 1] plus N labels. `next()` is an endless
// stream that runs on into the next epoch inside a batch (EDM's InfiniteSampler);
// `nextInEpoch()` stops at the epoch's end (the last batch may be short) and returns nil once.
//
// Reproducibility: everything random comes from one `RandomGenerator` (SplitMix64) seeded at
// init. `state` (Codable) holds the epoch, the position in it, the generator state at the
// epoch's start (which regenerates its permutation) and the current generator state; restoring
// it continues the exact same sequence of items and flips. Bounded draws use Lemire's
// multiply-and-reject, written out here so the sequence does not depend on the standard
// library's implementation of `Int.random(in:using:)`.
import DMD2Core

public struct DataLoader {
    /// Everything needed to resume the exact sequence of batches.
    public struct State: Codable, Equatable, Sendable {
        /// Epochs completed.
        public var epoch: Int
        /// Items of the current epoch already delivered (0 before the epoch has started).
        public var position: Int
        /// Generator state at the start of the current epoch, before its shuffle.
        public var epochStart: RandomGenerator
        /// Current generator state.
        public var generator: RandomGenerator
    }

    /// One batch.
    public struct Batch {
        /// [N, C, H, W] in [−1, 1].
        public var images: Tensor<Float>
        /// N labels (remapped when the loader remaps; −1 for unlabelled data).
        public var labels: [Int]
        /// The dataset indices of the N items.
        public var indices: [Int]
        /// Which items were mirrored.
        public var flipped: [Bool]
    }

    public let dataset: any ImageDataset
    public let batchSize: Int
    public let shuffle: Bool
    public let xflip: Bool
    /// The dataset classes kept, in the order that defines remapped labels (nil: all).
    public let classes: [Int]?
    public let remapLabels: Bool
    /// The dataset indices the loader draws from, in dataset order.
    public let indices: [Int]
    /// The number of classes a model trained on this loader sees.
    public let classCount: Int
    public private(set) var state: State

    private let labelMap: [Int: Int]
    /// Current epoch's permutation of 0..<indices.count, and the epoch it was built for.
    private var order: [Int] = []
    private var orderEpoch: Int? = nil

    /// - Parameters:
    ///   - classes: dataset labels to keep (e.g. `Array(0..<10)`); nil keeps all.
    ///   - remapLabels: map `classes[k]` to k (default) or keep dataset labels.
    ///   - maxItems: cap on the items kept (balanced over classes, see the file comment).
    public init(dataset: any ImageDataset, batchSize: Int, seed: UInt64, shuffle: Bool = true, xflip: Bool = false,
                classes: [Int]? = nil, remapLabels: Bool = true, maxItems: Int? = nil) {
        precondition(batchSize > 0, "DataLoader: batchSize \(batchSize) must be positive")
        if let maxItems { precondition(maxItems > 0, "DataLoader: maxItems \(maxItems) must be positive") }
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.xflip = xflip
        self.classes = classes
        self.remapLabels = remapLabels

        // 1. Class subset.
        var kept: [Int]
        if let classes {
            precondition(dataset.classCount > 0, "DataLoader: class subset \(classes) asked of unlabelled dataset \(dataset.name)")
            precondition(!classes.isEmpty && Set(classes).count == classes.count,
                         "DataLoader: class subset \(classes) must be non-empty without repeats")
            precondition(classes.allSatisfy { (0..<dataset.classCount).contains($0) },
                         "DataLoader: class subset \(classes) outside 0..<\(dataset.classCount) of \(dataset.name)")
            let keep = Set(classes)
            kept = (0..<dataset.count).filter { keep.contains(dataset.label($0)) }
            precondition(!kept.isEmpty, "DataLoader: no items of classes \(classes) in \(dataset.name)")
            labelMap = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($0.element, remapLabels ? $0.offset : $0.element) })
            classCount = remapLabels ? classes.count : dataset.classCount
        } else {
            kept = Array(0..<dataset.count)
            labelMap = [:]
            classCount = dataset.classCount
        }
        precondition(!kept.isEmpty, "DataLoader: dataset \(dataset.name) is empty")

        // 2. Balanced size cap.
        if let maxItems, maxItems < kept.count {
            var byClass: [Int: [Int]] = [:]
            for i in kept { byClass[dataset.label(i), default: []].append(i) }
            let groups = byClass.keys.sorted().map { byClass[$0]! }
            var chosen: [Int] = []
            var k = 0
            while chosen.count < maxItems {
                for group in groups where k < group.count && chosen.count < maxItems { chosen.append(group[k]) }
                k += 1
            }
            kept = chosen.sorted()
        }
        indices = kept
        let start = RandomGenerator(seed: seed)
        state = State(epoch: 0, position: 0, epochStart: start, generator: start)
    }

    /// Items per epoch.
    public var count: Int { indices.count }
    /// Batches per epoch from `nextInEpoch()` (the last may be short).
    public var batchesPerEpoch: Int { (count + batchSize - 1) / batchSize }
    /// Epochs completed.
    public var epoch: Int { state.epoch }

    /// Continue from a saved state (from a loader built with the same dataset and options).
    public mutating func restore(_ saved: State) {
        precondition(saved.position >= 0 && saved.position <= count,
                     "DataLoader.restore: position \(saved.position) outside 0…\(count) items")
        state = saved
        orderEpoch = nil
        if saved.position > 0 { buildOrder(from: saved.epochStart) }
    }

    /// The next `batchSize` items, running on into the next epoch when this one ends.
    public mutating func next() throws -> Batch {
        try makeBatch((0..<batchSize).map { _ in nextItem() })
    }

    /// The next `batchSize` items, like `next()` (the stream advances by the whole batch), but
    /// only the rows in each of `shards` are read: one batch per range, in the order given. A
    /// data-parallel rank reads its share of the global batch this way (DMD2Train's DataParallel).
    public mutating func next(shards: [Range<Int>]) throws -> [Batch] {
        precondition(shards.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= batchSize },
                     "DataLoader.next(shards:): rows \(shards) outside the batch of \(batchSize)")
        let items = (0..<batchSize).map { _ in nextItem() }
        return try shards.map { try makeBatch(Array(items[$0])) }
    }

    /// The next batch of this epoch (the last may be short), or nil when the epoch is over,
    /// after which the next call starts the next epoch.
    public mutating func nextInEpoch() throws -> Batch? {
        if state.position >= count {
            state.epoch += 1
            state.position = 0
            orderEpoch = nil
            return nil
        }
        return try makeBatch((0..<min(batchSize, count - state.position)).map { _ in nextItem() })
    }

    // MARK: Internals

    /// The next (dataset index, flip) of the stream, starting a new epoch when needed.
    private mutating func nextItem() -> (index: Int, flip: Bool) {
        if state.position >= count {
            state.epoch += 1
            state.position = 0
            orderEpoch = nil
        }
        if orderEpoch != state.epoch {
            // Starting an epoch: remember the generator, then draw the permutation from it.
            state.epochStart = state.generator
            order = shuffle ? shuffled(using: &state.generator) : Array(0..<count)
            orderEpoch = state.epoch
        }
        let index = indices[order[state.position]]
        state.position += 1
        let flip = xflip && state.generator.next() & 1 == 1
        return (index, flip)
    }

    /// Rebuild `order` for the current, already started epoch (after `restore`).
    private mutating func buildOrder(from start: RandomGenerator) {
        var generator = start
        order = shuffle ? shuffled(using: &generator) : Array(0..<count)
        orderEpoch = state.epoch
    }

    /// A Fisher–Yates permutation of 0..<count.
    private func shuffled(using generator: inout RandomGenerator) -> [Int] {
        var permutation = Array(0..<count)
        var i = count - 1
        while i > 0 {
            permutation.swapAt(i, Self.bounded(i + 1, using: &generator))
            i -= 1
        }
        return permutation
    }

    /// Uniform in 0..<n without bias (Lemire 2019, "Fast random integer generation in an interval").
    public static func bounded(_ n: Int, using generator: inout RandomGenerator) -> Int {
        let bound = UInt64(n)
        var product = generator.next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = generator.next().multipliedFullWidth(by: bound) }
        }
        return Int(product.high)
    }

    private func makeBatch(_ items: [(index: Int, flip: Bool)]) throws -> Batch {
        let C = dataset.channels, R = dataset.resolution, size = C * R * R
        var images = Tensor<Float>.zeros([items.count, C, R, R])
        var labels: [Int] = []
        labels.reserveCapacity(items.count)
        for (n, item) in items.enumerated() {
            var (image, label) = try dataset.item(item.index)
            precondition(image.width == R && image.height == R && image.channels == C,
                         "DataLoader: \(dataset.name) item \(item.index) is \(image.width)×\(image.height)×\(image.channels), expected \(R)×\(R)×\(C)")
            if item.flip { image = image.flippedHorizontally() }
            images.withUnsafeMutableBufferPointer { image.write(intoCHW: $0.baseAddress! + n * size) }
            labels.append(labelMap.isEmpty ? label : labelMap[label]!)
        }
        return Batch(images: images, labels: labels, indices: items.map(\.index), flipped: items.map(\.flip))
    }
}
