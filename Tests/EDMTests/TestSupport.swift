// Shared helpers for EDMTests: resources, random parameters for gradient checks, small configs.
import DMD2Core
import DMD2Ops
import EDM
import Foundation
import DMD2Checks
import XCTest

/// The tiny config shaped like `small16` the network checks use (DMD2Checks' NetworkCases).
let tinyConfig = NetworkCases.tinyConfig

/// The EDM state-dict listing `Resources/<name>.tsv`: (name, shape) per line.
func stateDictListing(_ name: String) throws -> [(name: String, shape: [Int])] {
    guard let url = Bundle.module.url(forResource: name, withExtension: "tsv", subdirectory: "Resources") else {
        throw GradCheckFailure(description: "Tests/EDMTests/Resources/\(name).tsv is missing: it is committed with the repository (EDM's published parameter listing); restore it with git checkout")
    }
    let text = try String(contentsOf: url, encoding: .utf8)
    return try text.split(separator: "\n").map { line in
        let cols = line.split(separator: "\t").map(String.init)
        guard cols.count == 3, cols[2] == "float32" else {
            throw GradCheckFailure(description: "\(name).tsv: malformed line '\(line)'")
        }
        let dims = cols[1].trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            .split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
        return (cols[0], dims)
    }
}

/// Random non-zero parameter values for gradient checks (`NetworkCases.randomParameters`).
func randomParameterValues(_ entries: [StateEntry], seed: UInt64) -> [Tensor<Double>] {
    NetworkCases.randomParameters(entries, seed: seed)
}

/// A store of `values` under the parameter names of `entries`.
func store<T>(_ entries: [StateEntry], _ variables: some Collection<Variable<T>>) -> ParameterStore<T> {
    NetworkCases.store(entries, variables)
}

/// A UNet of `config` with the given parameter values (Double).
func unet<T>(_ config: UNetConfig, values: [Tensor<Double>], as: T.Type = T.self) -> UNet<T> {
    let entries = config.layout.stateEntries
    let vars = values.map { Variable($0.converted(to: T.self), requiresGrad: true) }
    return UNet(config: config, parameters: store(entries, vars))
}

/// One-hot labels [N, K] for classes `classes` (nil entries: no label, a zero row), through
/// DMD2Ops' `oneHot` (label −1 = no class).
func oneHot<T: TensorScalar>(_ classes: [Int?], count K: Int) -> Tensor<T> {
    oneHot(classes.map { $0 ?? -1 }, classes: K)
}

/// Run a gradient check, turning its failure into an XCTest failure.
func check(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
    do { try body() } catch { XCTFail("\(error)", file: file, line: line) }
}

/// Max |a − b| / max(max |b|, tiny).
func relativeError<T: TensorScalar>(_ a: Tensor<T>, _ b: Tensor<T>) -> Double {
    precondition(a.shape == b.shape, "relativeError: shapes \(a.shape) and \(b.shape) differ")
    let scale = max(Double(b.maxAbs()), 1e-300)
    return zip(a.scalars, b.scalars).map { abs(Double($0) - Double($1)) }.max().map { $0 / scale } ?? 0
}
