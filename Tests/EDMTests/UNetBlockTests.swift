// UNetBlock: forward against the naive reference, and Double gradient checks (random
// direction vᵀJu in the space of input, embedding and every parameter; Float vs Double) for
// each block type ADM uses: plain (with dropout), down, up, attention (2 heads), 1×1 skip.
import DMD2Core
import DMD2Ops
import EDM
import DMD2Checks
import DMD2TestSupport
import XCTest

final class UNetBlockTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    static let N = 2, E = 12

    /// The block types (DMD2Checks' `NetworkCases.blocks`): plain, down, up, attention, 1×1 skip.
    static let blocks = NetworkCases.blocks.map { (spec: $0.spec, inputSide: $0.inputSide) }
    static let labels = NetworkCases.blocks.map(\.label)

    /// A gradient-check case for a block: inputs x, emb, then every parameter; optional dropout.
    func blockCase(_ spec: UNetBlockSpec, inputSide: Int, label: String, dropoutP: Double = 0, seed: UInt64) -> OpCase {
        NetworkCases.blockCase(spec, inputSide: inputSide, label: label, dropoutP: dropoutP, seed: seed)
    }

    func testForwardMatchesNaiveReference() {
        for (i, (spec, side)) in Self.blocks.enumerated() {
            let c = blockCase(spec, inputSide: side, label: Self.labels[i], seed: UInt64(10 + i))
            let ours = GradCheck.evaluate(c.double, c.inputs)
            let names = spec.stateEntries.filter(\.isParameter).map(\.name)
            let byName = Dictionary(uniqueKeysWithValues: zip(names, c.inputs[2...]))
            let reference = Naive.block(spec, c.inputs[0], emb: c.inputs[1]) { byName[$0]! }
            XCTAssertEqual(ours.shape, [Self.N, spec.outChannels, spec.resolution, spec.resolution], Self.labels[i])
            XCTAssertLessThan(relativeError(ours, reference), 1e-12, "\(Self.labels[i]) block differs from the naive reference")
        }
    }

    func testGradientChecks() {
        for (i, (spec, side)) in Self.blocks.enumerated() {
            let c = blockCase(spec, inputSide: side, label: Self.labels[i], dropoutP: i == 0 ? 0.3 : 0, seed: UInt64(20 + i))
            check { try GradCheck.randomDirection(c, seed: 3) }
            check { try GradCheck.randomDirection(c, seed: 4) }
            check { try GradCheck.floatVsDouble(c) }
        }
    }

    /// The full Jacobian of the smallest block with respect to its input and embedding only.
    func testFullJacobianOfSmallBlock() {
        let spec = UNetBlockSpec(name: "enc.2x2_down", inChannels: 4, outChannels: 4, embChannels: 3, resolution: 2,
                                 resample: .down)
        var rng = RandomGenerator(seed: 5)
        let x: Tensor<Double> = rng.normal([1, 4, 4, 4]), emb: Tensor<Double> = rng.normal([1, 3])
        let entries = spec.stateEntries
        let params = randomParameterValues(entries, seed: 6)
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            spec(v[0], emb: v[1], parameters: store(entries, params.map { Variable($0.converted(to: T.self)) }))
        }
        let c = OpCase("UNetBlock.down", "Jacobian", inputs: [x, emb], double: { run($0) }, float: { run($0) })
        check { try GradCheck.jacobian(c) }
    }

    /// Dropout masks: drawn once per block and reused, so two passes agree; fixed masks apply.
    func testDropoutMasks() {
        let (spec, side) = Self.blocks[0]
        var rng = RandomGenerator(seed: 8)
        let x = Variable<Double>(rng.normal([2, 8, side, side])), emb = Variable<Double>(rng.normal([2, Self.E]))
        let entries = spec.stateEntries
        let p = store(entries, randomParameterValues(entries, seed: 9).map { Variable($0) })
        let masks = DropoutMasks<Double>(p: 0.5, rng: RandomGenerator(seed: 1))
        let a = spec(x, emb: emb, parameters: p, dropout: masks).value
        let b = spec(x, emb: emb, parameters: p, dropout: masks).value
        XCTAssertEqual(a, b)
        XCTAssertEqual(masks.masks.count, 1)
        let none = spec(x, emb: emb, parameters: p).value
        XCTAssertNotEqual(a, none)
        let allKept = DropoutMasks<Double>(p: 0.5, masks: [spec.name: .ones([2, 8, side, side])])
        let doubled = spec(x, emb: emb, parameters: p, dropout: allKept).value
        // Every element kept at p = 0.5 doubles conv1's input: conv1(2h) = 2·conv1(h) − b₁, so
        // doubled = 2·none − x − b₁ (the plain block's skip is x).
        let b1 = p[spec.key("conv1.bias")].value.reshaped([1, 8, 1, 1]).broadcast(to: none.shape)
        let predicted = none * 2 - x.value - b1
        XCTAssertLessThan(relativeError(doubled, predicted), 1e-12)
    }
}
