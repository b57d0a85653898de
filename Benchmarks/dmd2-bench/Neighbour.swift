// Contention measured the same way every time: `--neighbour` runs one CPU-bound process of the
// bench's own beside each measured child process (the Swift and the PyTorch side alike).
//
// The neighbour is this executable started as `dmd2-bench --spin`: one thread doing dependent
// floating-point work forever (no memory traffic, no syscalls), like `yes > /dev/null` but
// without the kernel's pipe work. It starts before the child and is killed (SIGKILL) after
// the child exits, so it runs through the child's warm-up and timed part.
import Foundation

enum Neighbour {
    /// Set from `--neighbour` in the parent process.
    nonisolated(unsafe) static var enabled = false

    /// Run `body` with a busy neighbour process beside it when `enabled`.
    static func around<R>(_ body: () -> R) -> R {
        guard enabled else { return body() }
        let spinner = Process()
        spinner.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        spinner.arguments = ["--spin"]
        spinner.standardOutput = FileHandle.nullDevice
        do { try spinner.run() } catch {
            FileHandle.standardError.write(Data("  could not start the neighbour: \(error)\n".utf8))
            return body()
        }
        defer {
            kill(spinner.processIdentifier, SIGKILL)
            spinner.waitUntilExit()
        }
        return body()
    }
}

/// The neighbour's work: a dependent multiply-add chain that never ends.
func spinForever() -> Never {
    var x = 1.0
    while true {
        for _ in 0..<1_000_000 { x = x * 0.999_999 + 1e-6 }
        if x.isNaN { print(x) }   // keeps the loop from being optimised away
    }
}
