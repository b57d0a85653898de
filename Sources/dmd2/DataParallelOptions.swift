// Data-parallel training from the command line (docs/MPI.md): `mpirun -np N dmd2 train-teacher …`
// or `… distill …`. A process started by an MPI launcher joins MPI_COMM_WORLD (Open MPI loaded at
// run time, Sources/DMD2MPI); rank 0 prints, logs and writes checkpoints, the other ranks print
// nothing on standard output. An error on any rank is printed on standard error with the rank and
// stops every rank (MPI_Abort); a rank that dies is noticed by the launcher, which stops the rest.
import ArgumentParser
import DMD2MPI
import DMD2Train
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension GradientReduction: ExpressibleByArgument {}

struct DataParallelOptions: ParsableArguments {
    @Option(name: .long, help: "Under mpirun: how the shards' gradients are averaged — ordered (the sum in shard order: the same bits for any rank count, and as one process computing the shards one after the other; default) or allreduce (MPI_Allreduce: the MPI library's order, equal within a few ulps).")
    var reduction: GradientReduction = .ordered
    @Option(name: .long, parsing: .unconditional, help: "Under mpirun: compare the ranks' weights (a 64-bit checksum) every N iterations, besides at the start and before each checkpoint; 0: only then (default 100).")
    var checkRanksEvery: Int = 100

    func validate() throws {
        if checkRanksEvery < 0 { throw ValidationError("--check-ranks-every must be ≥ 0, got \(checkRanksEvery)") }
    }

    /// Join the MPI job when started by an MPI launcher (nil otherwise). Rank ≠ 0 stops printing.
    func join() throws -> DataParallelSetup? {
        guard MPIProcessGroup.launchedByMPI else { return nil }
        let group: MPIProcessGroup
        do { group = try MPIProcessGroup() } catch {
            throw CLIError("started by an MPI launcher, but MPI cannot be used: \(error)")
        }
        MPIJob.group = group
        if group.rank != 0 {                                            // rank 0 speaks for the job
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { _ = dup2(null, STDOUT_FILENO); close(null) }
        }
        return DataParallelSetup(group: group, reduction: reduction, checkInterval: checkRanksEvery)
    }
}

/// The MPI job of this process, if any: how a training command ends.
enum MPIJob {
    nonisolated(unsafe) static var group: MPIProcessGroup?

    /// `body`, then MPI_Finalize; an error on this rank is printed with the rank and stops every
    /// rank. Without MPI, `body` as is.
    static func run(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            guard let group else { throw error }
            let text = (error as? CLIError)?.description ?? "\(error)"
            fflush(nil)
            group.abort("dmd2 rank \(group.rank) of \(group.size): error: \(text)\nstopping every rank (MPI_Abort); the checkpoints on disk are complete ones (a checkpoint is renamed into place only when written)", code: 1)
        }
        fflush(nil)
        group?.finalize()
    }

    /// The first lines of a data-parallel run.
    static func describe(_ parallel: DataParallel?, batch: Int) -> String? {
        guard let parallel else { return nil }
        let b = batch / parallel.shards
        if parallel.size == 1 {
            return "data parallel: one process computing \(parallel.shards) shards of \(b) images one after the other, gradients averaged in shard order (as \(parallel.shards) MPI ranks would)"
        }
        return "data parallel: \(parallel.group.summary); \(parallel.shards) shards of \(b) images (\(parallel.shardsPerRank) per rank), gradients averaged \(parallel.reduction == .ordered ? "in shard order (all-to-all + all-gather)" : "by MPI_Allreduce"); weights compared every \(parallel.checkInterval) iterations and before each checkpoint; rank 0 writes the log and checkpoints"
    }
}
