// GroupNorm and the attention core against PyTorch (reference/make_fixtures.py): forward
// outputs and vector-Jacobian products with the fixture's upstream gradient `gy`.
// Double within 1e-10 and Float within 1e-4 of the largest |value| of each reference tensor.
import DMD2Core
import DMD2Ops
import DMD2Checks
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class NormFixtureTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    static let doubleTolerance = 1e-10
    static let floatTolerance = 1e-4

    func testGroupNormMatchesPyTorch() throws {
        let file = try fixture("groupnorm")
        let cases = fixtureCases(file)
        XCTAssertEqual(cases, ["g1", "g2", "g3"], "groupnorm.safetensors cases changed")
        for name in cases {
            let meta = try caseMetadata(file, name)
            let groups = try XCTUnwrap(meta["groups"] as? Int, "\(name): no 'groups' in \(meta)")
            let eps = try XCTUnwrap(meta["eps"] as? Double, "\(name): no 'eps' in \(meta)")
            try checkGroupNorm(file, name, groups: groups, eps: eps, as: Double.self, tol: Self.doubleTolerance)
            try checkGroupNorm(file, name, groups: groups, eps: eps, as: Float.self, tol: Self.floatTolerance)
        }
    }

    func testAttentionMatchesPyTorch() throws {
        let file = try fixture("attention")
        let cases = fixtureCases(file)
        XCTAssertEqual(cases, ["h1d4", "h2d4", "h2d8"], "attention.safetensors cases changed")
        for name in cases {
            let meta = try caseMetadata(file, name)
            let heads = try XCTUnwrap(meta["heads"] as? Int, "\(name): no 'heads' in \(meta)")
            try checkAttention(file, name, heads: heads, as: Double.self, tol: Self.doubleTolerance)
            try checkAttention(file, name, heads: heads, as: Float.self, tol: Self.floatTolerance)
        }
    }

    // MARK: Per case

    func checkGroupNorm<T: TensorScalar>(
        _ file: SafeTensorsFile, _ name: String, groups: Int, eps: Double, as _: T.Type, tol: Double
    ) throws {
        let x = Variable(try file.tensor("\(name).x", as: T.self), requiresGrad: true)
        let w = Variable(try file.tensor("\(name).weight", as: T.self), requiresGrad: true)
        let b = Variable(try file.tensor("\(name).bias", as: T.self), requiresGrad: true)
        let gy: Tensor<T> = try file.tensor("\(name).gy")
        let y = groupNorm(x, groups: groups, weight: w, bias: b, eps: T(eps))
        let g = gradients(of: y, withRespectTo: [x, w, b], seed: gy)
        let what = "groupnorm.safetensors \(name) (\(T.self), G=\(groups))"
        try compare(y.value, file, "\(name).y", tol: tol, what: "\(what): y")
        try compare(g[0], file, "\(name).gx", tol: tol, what: "\(what): dx")
        try compare(g[1], file, "\(name).gweight", tol: tol, what: "\(what): dweight")
        try compare(g[2], file, "\(name).gbias", tol: tol, what: "\(what): dbias")
    }

    func checkAttention<T: TensorScalar>(
        _ file: SafeTensorsFile, _ name: String, heads: Int, as _: T.Type, tol: Double
    ) throws {
        let qkv = Variable(try file.tensor("\(name).qkv", as: T.self), requiresGrad: true)
        let gy: Tensor<T> = try file.tensor("\(name).gy")
        let y = attention(qkv: qkv, heads: heads)
        let g = gradients(of: y, withRespectTo: [qkv], seed: gy)
        let what = "attention.safetensors \(name) (\(T.self), heads=\(heads), qkv \(qkv.shape))"
        try compare(y.value, file, "\(name).y", tol: tol, what: "\(what): y")
        try compare(g[0], file, "\(name).gqkv", tol: tol, what: "\(what): dqkv")
    }

    // MARK: Helpers

    /// |ours − reference| ≤ tol·max|reference|, naming the worst index on failure.
    func compare<T: TensorScalar>(_ ours: Tensor<T>, _ file: SafeTensorsFile, _ key: String, tol: Double, what: String) throws {
        let reference: Tensor<Double> = try file.tensor(key)
        XCTAssertEqual(ours.shape, reference.shape, "\(what): shape differs from \(key)")
        guard ours.shape == reference.shape else { return }
        do {
            try GradCheck.compare(ours.converted(), reference, tol: tol, what: what)
        } catch {
            XCTFail("\(error) — if the op is right, the fixture may be stale: python3 reference/make_fixtures.py")
        }
    }

    /// A case's JSON parameters from the file metadata.
    func caseMetadata(_ file: SafeTensorsFile, _ name: String) throws -> [String: Any] {
        let json = try XCTUnwrap(file.metadata[name], "no metadata for case \(name)")
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8))
        return try XCTUnwrap(object as? [String: Any], "case \(name): metadata \(json) is not a JSON object")
    }
}
