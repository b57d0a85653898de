// Shared helpers for DMD2DataTests: fixture paths, temporary folders, and an assertion that an
// expression throws a DataError naming the expected file and entry.
import DMD2Data
import Foundation
import XCTest

/// A file or folder under Tests/DMD2DataTests/Resources (written by make_data_fixtures.py).
func fixture(_ path: String) -> URL {
    Bundle.module.url(forResource: "Resources", withExtension: nil)!.appendingPathComponent(path)
}

/// A fresh, empty temporary folder, removed when the test case tears down.
func temporaryFolder(_ testCase: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-data-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Asserts that `body` throws a DataError whose file ends with `file`, whose entry equals
/// `entry` (when given) and whose reason contains `reason`; the full message must name the file.
func assertDataError<T>(_ body: @autoclosure () throws -> T, file expectedFile: String, entry: String? = nil,
                        reason: String, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a DataError about \(expectedFile), nothing was thrown", line: line)
    } catch let error as DataError {
        XCTAssertTrue(error.file.hasSuffix(expectedFile), "file '\(error.file)' should end with '\(expectedFile)'", line: line)
        if let entry { XCTAssertEqual(error.entry, entry, "entry in: \(error)", line: line) }
        XCTAssertTrue(error.reason.contains(reason), "reason should contain '\(reason)': \(error)", line: line)
        XCTAssertTrue(error.description.contains(error.file), "message should name the file: \(error)", line: line)
        if let entry { XCTAssertTrue(error.description.contains(entry), "message should name the entry: \(error)", line: line) }
    } catch {
        XCTFail("expected a DataError, got \(error)", line: line)
    }
}
