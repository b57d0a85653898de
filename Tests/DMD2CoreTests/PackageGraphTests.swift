// scripts/check-package-graph.py as a test: Package.swift's target dependencies match the
// targets' imports (scripts/test.sh runs the script before the tests too).
import Foundation
import DMD2TestSupport
import XCTest

final class PackageGraphTests: CheckedTestCase {
    func testDeclaredDependenciesAreImportedAndImportsDeclared() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/check-package-graph.py")
        guard let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("python3 not found: run scripts/check-package-graph.py where Python is installed")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path, root.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, output)
        print(output, terminator: "")
    }
}
