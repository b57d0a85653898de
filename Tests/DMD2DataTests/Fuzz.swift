// Mutation fuzzing of every parser that reads user files (issue 16, part 7): valid files are
// mutated (bit flips, byte overwrites with boundary values, insertions, deletions, truncation,
// duplicated ranges, digits replaced by huge numbers) and each parser must return or throw —
// never trap, crash or hang. A few thousand cases run by default; set DMD2_FUZZ_CASES (e.g.
// 100000) for more, DMD2_FUZZ_SEED for another sequence.
import Foundation
import XCTest

/// SplitMix64: a small, seeded generator for the mutations.
struct FuzzRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

enum Fuzz {
    /// Cases per parser: DMD2_FUZZ_CASES, or `defaultCases`.
    static func cases(default defaultCases: Int) -> Int {
        ProcessInfo.processInfo.environment["DMD2_FUZZ_CASES"].flatMap(Int.init) ?? defaultCases
    }

    static var seed: UInt64 { ProcessInfo.processInfo.environment["DMD2_FUZZ_SEED"].flatMap(UInt64.init) ?? 16 }

    /// One to four mutations of `input`.
    static func mutate(_ input: [UInt8], _ rng: inout FuzzRandom) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + rng.below(4)) {
            let n = b.count
            switch rng.below(9) {
            case 0 where n > 0: b[rng.below(n)] ^= UInt8(1 << rng.below(8))                         // bit flip
            case 1 where n > 0: b[rng.below(n)] = [0, 0xFF, 0x7F, 0x80, 0x01, 0xFE][rng.below(6)]     // boundary byte
            case 2 where n > 0: b[rng.below(n)] = UInt8(truncatingIfNeeded: rng.next())               // random byte
            case 3: b.insert(contentsOf: (0..<(1 + rng.below(16))).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
                             at: rng.below(n + 1))                                                  // insertion
            case 4 where n > 0: let s = rng.below(n); b.removeSubrange(s..<min(n, s + 1 + rng.below(64)))   // deletion
            case 5: b = Array(b.prefix(rng.below(n + 1)))                                           // truncation
            case 6 where n > 0: let s = rng.below(n); let e = min(n, s + 1 + rng.below(32))
                b.insert(contentsOf: b[s..<e], at: rng.below(n + 1))                                // duplicated range
            case 7 where n >= 4: let s = rng.below(n - 3)                                           // 32-bit field = extreme
                let v: UInt32 = [0, 0xFFFF_FFFF, 0x7FFF_FFFF, 0x8000_0000, UInt32(n), UInt32(n) &+ 1][rng.below(6)]
                for k in 0..<4 { b[s + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
            case 8:                                                                                 // a digit run → huge/negative
                let digits = b.indices.filter { b[$0] >= 0x30 && b[$0] <= 0x39 }
                if let at = digits.isEmpty ? nil : digits[rng.below(digits.count)] {
                    let text = ["99999999999999999999", "-1", "0", "4294967296", "9223372036854775807", "1e308"][rng.below(6)]
                    b.replaceSubrange(at...at, with: Array(text.utf8))
                }
            default: if n > 0 { b[rng.below(n)] ^= 0x20 }
            }
        }
        return b
    }

    /// Run `parse` on `cases` mutations of the seeds; fails on a case slower than `slowLimit`
    /// seconds (a hang shows as a stuck test; a trap or crash stops the run). Returns how many
    /// cases parsed without an error.
    @discardableResult
    static func run(_ name: String, seeds: [[UInt8]], cases: Int, slowLimit: Double = 2,
                    file: StaticString = #filePath, line: UInt = #line, parse: ([UInt8]) throws -> Void) -> Int {
        precondition(!seeds.isEmpty)
        var rng = FuzzRandom(state: name.utf8.reduce(seed) { $0 &* 31 &+ UInt64($1) })
        var accepted = 0, slowest = 0.0, slowestCase = 0
        let started = ProcessInfo.processInfo.systemUptime
        for i in 0..<cases {
            let input = mutate(seeds[i % seeds.count], &rng)
            let t = ProcessInfo.processInfo.systemUptime
            do { try parse(input); accepted += 1 } catch {}
            let dt = ProcessInfo.processInfo.systemUptime - t
            if dt > slowest { slowest = dt; slowestCase = i }
        }
        let total = ProcessInfo.processInfo.systemUptime - started
        print(String(format: "fuzz %@: %d cases, %d parsed, %d refused, %.2f s (slowest case #%d: %.3f s)",
                     name, cases, accepted, cases - accepted, total, slowestCase, slowest))
        XCTAssertLessThan(slowest, slowLimit, "\(name): case \(slowestCase) took \(slowest) s", file: file, line: line)
        return accepted
    }
}
