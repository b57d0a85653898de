// The TorchScript reader on small files written by reference/make_metrics_fixtures.py with torch.
import DMD2Core
import DMD2Data
import DMD2Metrics
import Foundation
import XCTest

func resource(_ name: String, _ ext: String) -> URL {
    Bundle.module.url(forResource: "Resources/" + name, withExtension: ext)!
}

final class TorchScriptArchiveTests: XCTestCase {
    func testReadsTensorsAttributesAndModuleClasses() throws {
        let file = try TorchScriptArchive(url: resource("tiny_torchscript", "pt"))
        XCTAssertEqual(file.tensorNames, ["head", "inner.weight", "tail", "transposed"])
        XCTAssertEqual(file.moduleClasses[""], "__torch__.Tiny")
        XCTAssertEqual(file.moduleClasses["inner"], "__torch__.Inner")
        XCTAssertEqual(try file.integers("inner.stride"), [2])
        XCTAssertEqual(try file.integers("inner.padding"), [0, 3])       // torch.jit._pickle.build_intlist

        // weight[o, c, 0, v] = 100·o + 10·c + v
        let w = try file.tensor("inner.weight")
        XCTAssertEqual(w.shape, [2, 3, 1, 3])
        for o in 0..<2 { for c in 0..<3 { for v in 0..<3 { XCTAssertEqual(w[o, c, 0, v], Float(100 * o + 10 * c + v)) } } }

        // A transposed view (strides (1, 4)): transposed[i, j] = 4·j + i.
        let t = try file.tensor("transposed")
        XCTAssertEqual(t.shape, [4, 3])
        for i in 0..<4 { for j in 0..<3 { XCTAssertEqual(t[i, j], Float(4 * j + i)) } }

        // Two views of one storage (memoized persistent id), offsets 0 and 4.
        XCTAssertEqual(try file.tensor("head").scalars, [0, 0.5, 1, 1.5])
        let tail = try file.tensor("tail")
        XCTAssertEqual(tail.shape, [2, 3])
        XCTAssertEqual(tail.scalars, [2, 2.5, 3, 3.5, 4, 4.5])
    }

    func testErrorsNameTheProblem() throws {
        let bad = resource("bad_opcode", "pt")
        XCTAssertThrowsError(try TorchScriptArchive(url: bad)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("archive/data.pkl") && message.contains("0x93 (STACK_GLOBAL) at byte 8"), message)
        }
        let file = try TorchScriptArchive(url: resource("tiny_torchscript", "pt"))
        XCTAssertThrowsError(try file.tensor("inner.bias")) { error in
            XCTAssertTrue(String(describing: error).contains("'inner.bias': missing tensor"), "\(error)")
        }
        XCTAssertThrowsError(try file.integers("inner.weight")) { error in
            XCTAssertTrue(String(describing: error).contains("expected an int or int list"), "\(error)")
        }
        // A zip that is not a TorchScript file.
        XCTAssertThrowsError(try TorchScriptArchive(url: resource("edm_stats", "npz"))) { error in
            XCTAssertTrue(String(describing: error).contains("data.pkl"), "\(error)")
        }
        let missing = URL(fileURLWithPath: "/nonexistent/default_1.pt")
        XCTAssertThrowsError(try InceptionV3FID(weightsURL: missing)) { error in
            XCTAssertTrue(String(describing: error).contains("scripts/fetch-inception.sh"), "\(error)")
        }
    }
}
