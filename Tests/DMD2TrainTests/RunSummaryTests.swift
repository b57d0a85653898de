// TrainingLogSummary and SeedStatistics: the numbers behind `dmd2 report`'s tables.
import DMD2Train
import DMD2TestSupport
import XCTest

final class RunSummaryTests: CheckedTestCase {
    func testSampleStandardDeviationUsesNMinusOne() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32; 32/7 with n − 1.
        let xs: [Double] = [2, 4, 4, 4, 5, 5, 7, 9]
        XCTAssertEqual(SeedStatistics.mean(xs), 5)
        XCTAssertEqual(SeedStatistics.standardDeviation(xs), (32.0 / 7).squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(SeedStatistics.standardDeviation([3]), 0)
        XCTAssertTrue(SeedStatistics.mean([]).isNaN)
    }

    /// A distill-like log: 10 iterations, G updated every 5th, brightness = step/10.
    func log(lines: Int = 10) -> String {
        (1...lines).map { i in
            "{\"step\":\(i),\"brightness\":\(Double(i) / 10),\"seconds\":1.5,\"generator_step\":\(i % 5 == 1 ? "true" : "false")}"
        }.joined(separator: "\n") + "\n"
    }

    func testCountsUpdatesTimeAndTheSecondHalfByDefault() throws {
        let s = try TrainingLogSummary(jsonLines: log())
        XCTAssertEqual(s.iterations, 10)
        XCTAssertEqual(s.generatorUpdates, 2)                      // steps 1 and 6
        XCTAssertEqual(s.seconds, 15, accuracy: 1e-12)
        XCTAssertEqual(s.brightness, [0.6, 0.7, 0.8, 0.9, 1.0])    // steps 6…10
        XCTAssertEqual(s.brightnessRange, 0.6...1.0)
        XCTAssertEqual(s.brightnessStandardDeviation, SeedStatistics.standardDeviation([0.6, 0.7, 0.8, 0.9, 1.0]), accuracy: 1e-15)
    }

    func testWindowFromAnIteration() throws {
        let s = try TrainingLogSummary(jsonLines: log(), fromIteration: 9)
        XCTAssertEqual(s.brightness, [0.9, 1.0])
        XCTAssertThrowsError(try TrainingLogSummary(jsonLines: log(), fromIteration: 11, name: "x/log.jsonl")) { error in
            XCTAssertEqual("\(error)", "x/log.jsonl: no brightness values from iteration 11 on")
        }
    }

    func testBadInputIsNamed() {
        XCTAssertThrowsError(try TrainingLogSummary(jsonLines: "\n \n", name: "empty.jsonl")) { error in
            XCTAssertEqual("\(error)", "empty.jsonl is empty")
        }
        let broken = log(lines: 3) + "{\"step\": 4, \"brightness\"\n"
        XCTAssertThrowsError(try TrainingLogSummary(jsonLines: broken, name: "run/log.jsonl")) { error in
            XCTAssertEqual("\(error)", "run/log.jsonl: line 4 is not a JSON object")
        }
    }
}
