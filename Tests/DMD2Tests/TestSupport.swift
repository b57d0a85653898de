// Shared helpers for DMD2Tests: the committed debug state, networks with random non-zero
// weights on the debug state's tiny UNet (16×16 RGB, 4 classes, 8×8 bottleneck of 16 channels,
// so every test runs in seconds), temporary run folders and bitwise comparisons.
import DMD2
import DMD2Core
import DMD2Data
import DMD2Ops
import EDM
import Foundation
import SafeTensors
import XCTest

/// The committed debug state, Tests/DMD2Tests/Resources/dmd2_debug_state.safetensors.
func debugStateURL() throws -> URL {
    guard let folder = Bundle.module.url(forResource: "Resources", withExtension: nil) else {
        throw DistillError.badCheckpoint("Tests/DMD2Tests/Resources is missing from the test bundle")
    }
    return folder.appendingPathComponent("dmd2_debug_state.safetensors")
}

/// DMD2's four networks in T from debug-state inputs (as `DebugState` builds them): G and
/// μ_fake trainable, μ_real frozen, the head trainable.
func networks<T: TensorScalar>(_ inputs: DebugState.Inputs, as: T.Type = T.self) -> DMD2Networks<T> {
    let c = inputs.config
    return DMD2Networks(generator: UNet(config: c, parameters: inputs.generator.converted(to: T.self)),
                        real: UNet(config: c, parameters: inputs.real.converted(to: T.self, requiresGrad: false)),
                        fake: UNet(config: c, parameters: inputs.fake.converted(to: T.self)),
                        head: GANHead(channels: c.bottleneckChannels, parameters: inputs.head.converted(to: T.self)))
}

/// Debug-state draws converted to T.
func converted<T: TensorScalar>(_ d: IterationDraws<Float>, to: T.Type = T.self) -> IterationDraws<T> {
    func c(_ n: NoiseDraw<Float>) -> NoiseDraw<T> { NoiseDraw(t: n.t, noise: n.noise.converted(to: T.self)) }
    return IterationDraws(latents: d.latents.converted(to: T.self), labels: d.labels, dm: c(d.dm), generatorGAN: c(d.generatorGAN),
                          fake: c(d.fake), discriminatorFake: c(d.discriminatorFake), discriminatorReal: c(d.discriminatorReal))
}

/// The real batch of debug-state inputs in T.
func realBatch<T: TensorScalar>(_ inputs: DebugState.Inputs, as: T.Type = T.self) -> RealBatch<T> {
    RealBatch(images: inputs.realImages.converted(to: T.self), labels: oneHot(inputs.realLabels, classes: inputs.config.labelDim))
}

/// A teacher with random non-zero weights (`DebugState.randomWeights`) on the debug network:
/// with a freshly initialised teacher out_conv is zero and most gradients vanish.
func randomTeacher(seed: UInt64) -> UNet<Float> {
    var rng = RandomGenerator(seed: seed)
    return UNet(config: DebugState.network, parameters: DebugState.randomWeights(DebugState.network, rng: &rng))
}

/// 16×16 RGB shapes in 4 classes: the real images of a tiny run.
func shapes(count: Int = 12) -> ShapesDataset { ShapesDataset(count: count, classCount: 4, resolution: 16, channels: 3, seed: 7) }

/// A fresh temporary folder path (not created), removed when the test case tears down.
func temporaryFolder(_ testCase: XCTestCase, _ prefix: String = "dmd2") -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// The values of a list of parameters (copies: Tensors are values).
func snapshot<T>(_ variables: [Variable<T>]) -> [Tensor<T>] { variables.map(\.value) }

/// Number of elements whose bit patterns differ (shapes must agree).
func differingBits(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Int {
    precondition(a.shape == b.shape, "differingBits: shapes \(a.shape) and \(b.shape)")
    return zip(a.scalars, b.scalars).filter { $0.bitPattern != $1.bitPattern }.count
}

/// Fails unless `a` and `b` are bitwise equal, naming `what` and how many elements differ.
func assertBitwiseEqual(_ a: Tensor<Float>, _ b: Tensor<Float>, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    guard a.shape == b.shape else { return XCTFail("\(what): shapes \(a.shape) and \(b.shape)", file: file, line: line) }
    let n = differingBits(a, b)
    XCTAssertEqual(n, 0, "\(what): \(n) of \(a.count) elements differ", file: file, line: line)
}

/// Whether any element differs from `b` (at all).
func changed<T: TensorScalar>(_ a: [Tensor<T>], _ b: [Tensor<T>]) -> Bool { zip(a, b).contains { $0 != $1 } }

/// ⟨a, b⟩ over lists of tensors, in Double.
func dot<T: TensorScalar>(_ a: [Tensor<T>], _ b: [Tensor<T>]) -> Double {
    zip(a, b).map { Double($0.converted(to: Double.self).dot($1.converted(to: Double.self))) }.reduce(0, +)
}

/// The Euclidean norm over a list of tensors, in Double.
func norm<T: TensorScalar>(_ a: [Tensor<T>]) -> Double { dot(a, a).squareRoot() }
