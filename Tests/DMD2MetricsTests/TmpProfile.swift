@testable import DMD2Metrics
import DMD2Core
import DMD2Data
import DMD2Ops
import Foundation
import XCTest
final class TmpProfile: XCTestCase {
    func cpu() -> Double { var t = timespec(); clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9 }
    func testProfile() throws {
        Threads.count = Int(ProcessInfo.processInfo.environment["PT"] ?? "1")!
        let net = try InceptionV3FID(weightsURL: InceptionV3FID.defaultWeightsURL)
        var rng = RandomGenerator(seed: 1)
        let x: Tensor<Float> = rng.uniform([8, 3, 299, 299], low: -1, high: 1)
        _ = net.forward(x)
        for budget in [1, 4 << 20, 1, 4 << 20] {
            InceptionOps.colBudget = budget
            let c0 = cpu(), w0 = Date()
            _ = net.forward(x)
            let c = cpu() - c0, w = Date().timeIntervalSince(w0)
            print("budget", budget, "cpu s/img", c / 8, "wall img/s", 8 / w)
        }
    }
}
