// Choosing a backend by name: the registry, "shadow" and "shadow:NAME", errors for unknown names.
import DMD2Checks
import DMD2Core
import DMD2CUDA
import DMD2TestSupport
import XCTest

final class BackendRegistryTests: CheckedTestCase {
    func testNamesAndShadowSpecs() throws {
        CUDABackend.register()
        CheckBackends.register()
        XCTAssertEqual(BackendRegistry.wrapperNames, ["shadow"])
        XCTAssertTrue(Set(["cpu", "reference", "cuda", "cuda-emu"]).isSubset(of: BackendRegistry.names), "\(BackendRegistry.names)")
        XCTAssertTrue(try BackendRegistry.make("cpu") is CPUBackend)
        XCTAssertTrue(try BackendRegistry.make(" Reference ") is ReferenceBackend)
        let shadow = try XCTUnwrap(try BackendRegistry.make("shadow") as? ShadowBackend)
        XCTAssertTrue(shadow.candidate is CPUBackend)
        XCTAssertTrue(shadow.reference is ReferenceBackend)
        XCTAssertEqual(shadow.policy, .trap, "a whole program under the shadow stops at the first divergence")
        let shadowReference = try XCTUnwrap(try BackendRegistry.make("shadow:reference") as? ShadowBackend)
        XCTAssertTrue(shadowReference.candidate is ReferenceBackend)
        XCTAssertThrowsError(try BackendRegistry.make("shadow:shadow"))
        XCTAssertThrowsError(try BackendRegistry.make("tpu")) { error in
            XCTAssertTrue("\(error)".contains("unknown backend 'tpu'"), "\(error)")
            XCTAssertTrue("\(error)".contains("cpu"), "lists the registered names: \(error)")
        }
    }

    func testSelectSetsTheOneSetting() throws {
        let before = Compute.backend
        defer { Compute.backend = before }
        try BackendRegistry.select("reference")
        XCTAssertTrue(Compute.backend is ReferenceBackend)
        try BackendRegistry.select("cpu")
        XCTAssertTrue(Compute.backend is CPUBackend)
    }

    func testCUDAUnavailableIsAnErrorWithItsReasonNotACrash() throws {
        CUDABackend.register()
        switch CUDABackend.availability {
        case .available(let device):
            XCTAssertEqual(try BackendRegistry.make("cuda").name, "cuda", device)
        case .unavailable(let reason):
            XCTAssertThrowsError(try BackendRegistry.make("cuda")) { error in XCTAssertEqual("\(error)", reason) }
            XCTAssertThrowsError(try BackendRegistry.make("shadow:cuda"))
        }
    }
}
