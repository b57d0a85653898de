// MPI behind DMD2Train's `ProcessGroup`, loaded at run time with dlopen/dlsym, so the package
// builds and runs without any MPI installed (the pattern of the CUDA adapter, Sources/DMD2CUDA).
//
// Supported ABI: Open MPI's (`libmpi.so.40`, Open MPI 3.0 – 5.x; Debian's `libopenmpi-dev`
// 4.1.4 is what is tested). In Open MPI a handle (MPI_Comm, MPI_Datatype, MPI_Op,
// MPI_Errhandler) is the address of a predefined global object — MPI_COMM_WORLD is
// `&ompi_mpi_comm_world` — so the handles come from dlsym of those globals and no mpi.h is
// needed. MPICH-family libraries (libmpi.so.12: MPICH, Intel MPI, Cray MPICH) use integer handles
// and are refused with a message naming the missing symbol.
//
// Where the library is looked for: $DMD2_MPI_LIBRARY (a full path) if set, then libmpi.so.40 and
// libmpi.so as the loader finds them (LD_LIBRARY_PATH, ld.so.cache), then Debian's and the usual
// prefixes. It is opened RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve libmpi's symbols
// from the global scope.
//
// Errors: MPI_COMM_WORLD gets MPI_ERRORS_RETURN, so a failed collective is a Swift error naming
// the call and MPI's message; a rank that dies is noticed by the launcher (mpirun, srun), which
// stops the others.
import DMD2Train
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// MPI could not be loaded or a call failed; the message names the library or the call.
public struct MPIError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The functions and predefined handles used, from a dlopen'd libmpi.
final class MPILibrary: @unchecked Sendable {
    typealias Handle = UnsafeMutableRawPointer
    let path: String
    let MPI_Init: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> Int32
    let MPI_Initialized: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    let MPI_Finalize: @convention(c) () -> Int32
    let MPI_Comm_rank: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    let MPI_Comm_size: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    /// (sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm); MPI_Allgather has the same signature.
    let MPI_Alltoall: @convention(c) (UnsafeRawPointer?, Int32, Handle, UnsafeMutableRawPointer?, Int32, Handle, Handle) -> Int32
    let MPI_Allgather: @convention(c) (UnsafeRawPointer?, Int32, Handle, UnsafeMutableRawPointer?, Int32, Handle, Handle) -> Int32
    /// (sendbuf, recvbuf, count, datatype, op, comm)
    let MPI_Allreduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
    let MPI_Barrier: @convention(c) (Handle) -> Int32
    let MPI_Abort: @convention(c) (Handle, Int32) -> Int32
    let MPI_Comm_set_errhandler: @convention(c) (Handle, Handle) -> Int32
    let MPI_Error_string: @convention(c) (Int32, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32
    let MPI_Get_library_version: @convention(c) (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32
    let commWorld: Handle
    let byte: Handle
    let float: Handle
    let double: Handle
    let opSum: Handle
    let errorsReturn: Handle

    static func candidates() -> [String] {
        var names: [String] = []
        if let path = ProcessInfo.processInfo.environment["DMD2_MPI_LIBRARY"], !path.isEmpty { names.append(path) }
        names += ["libmpi.so.40", "libmpi.so"]
        for folder in ["/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu/openmpi/lib", "/usr/lib64/openmpi/lib",
                       "/usr/local/lib", "/opt/openmpi/lib"] {
            for name in ["libmpi.so.40", "libmpi.so"] where FileManager.default.fileExists(atPath: "\(folder)/\(name)") {
                names.append("\(folder)/\(name)")
            }
        }
        return names
    }

    init() throws {
        var failures: [String] = []
        var opened: (UnsafeMutableRawPointer, String)?
        let candidates = Self.candidates()
        for path in candidates {
            if let h = dlopen(path, RTLD_NOW | RTLD_GLOBAL) { opened = (h, path); break }
            failures.append(dlerror().map { String(cString: $0) } ?? path)
        }
        guard let (handle, path) = opened else {
            throw MPIError("Open MPI (libmpi.so.40) not found (tried \(candidates.joined(separator: ", "))): \(failures.first ?? ""); install it with scripts/setup.sh --mpi (Debian: apt-get install libopenmpi-dev openmpi-bin) or set DMD2_MPI_LIBRARY")
        }
        self.path = path
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let p = dlsym(handle, name) else {
                throw MPIError("\(path): no symbol \(name) — only Open MPI's ABI (libmpi.so.40, Open MPI 3.0–5.x) is supported; MPICH-family libraries use integer handles")
            }
            return p
        }
        func function<F>(_ name: String, _: F.Type = F.self) throws -> F { unsafeBitCast(try symbol(name), to: F.self) }
        MPI_Init = try function("MPI_Init")
        MPI_Initialized = try function("MPI_Initialized")
        MPI_Finalize = try function("MPI_Finalize")
        MPI_Comm_rank = try function("MPI_Comm_rank")
        MPI_Comm_size = try function("MPI_Comm_size")
        MPI_Alltoall = try function("MPI_Alltoall")
        MPI_Allgather = try function("MPI_Allgather")
        MPI_Allreduce = try function("MPI_Allreduce")
        MPI_Barrier = try function("MPI_Barrier")
        MPI_Abort = try function("MPI_Abort")
        MPI_Comm_set_errhandler = try function("MPI_Comm_set_errhandler")
        MPI_Error_string = try function("MPI_Error_string")
        MPI_Get_library_version = try function("MPI_Get_library_version")
        commWorld = try symbol("ompi_mpi_comm_world")
        byte = try symbol("ompi_mpi_byte")
        float = try symbol("ompi_mpi_float")
        double = try symbol("ompi_mpi_double")
        opSum = try symbol("ompi_mpi_op_sum")
        errorsReturn = try symbol("ompi_mpi_errors_return")
    }

    func datatype(_ element: CollectiveElement) -> Handle {
        switch element {
        case .byte: byte
        case .float: float
        case .double: double
        }
    }

    func message(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        _ = MPI_Error_string(code, &buffer, &length)
        return String(cString: buffer)
    }
}

/// MPI_COMM_WORLD as a `ProcessGroup` (see the file header).
public final class MPIProcessGroup: ProcessGroup, @unchecked Sendable {
    let library: MPILibrary
    public let rank: Int
    public let size: Int
    /// MPI_Get_library_version's first line ("Open MPI v4.1.4, package: Debian OpenMPI, …").
    public let libraryVersion: String

    /// Whether this process was started by an MPI launcher (mpirun/mpiexec, or srun with PMI/PMIx):
    /// $DMD2_MPI=1 forces yes, 0 forces no; else the launchers' variables decide.
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        switch env["DMD2_MPI"] {
        case "1"?: return true
        case "0"?: return false
        default: return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"].contains { env[$0] != nil }
        }
    }

    /// Load libmpi and MPI_Init (once per process).
    public init() throws {
        let library = try MPILibrary()
        var initialized: Int32 = 0
        _ = library.MPI_Initialized(&initialized)
        if initialized == 0 {
            let code = library.MPI_Init(nil, nil)
            guard code == 0 else { throw MPIError("MPI_Init: \(library.message(code)) (\(library.path))") }
        }
        _ = library.MPI_Comm_set_errhandler(library.commWorld, library.errorsReturn)
        var r: Int32 = 0, s: Int32 = 0
        _ = library.MPI_Comm_rank(library.commWorld, &r)
        _ = library.MPI_Comm_size(library.commWorld, &s)
        var buffer = [CChar](repeating: 0, count: 8192)
        var length: Int32 = 0
        _ = library.MPI_Get_library_version(&buffer, &length)
        let version = String(cString: buffer).split(separator: "\n").first.map(String.init) ?? "MPI"
        self.library = library
        self.rank = Int(r)
        self.size = Int(s)
        self.libraryVersion = version.split(separator: ",").first.map(String.init) ?? version
    }

    public var summary: String { "\(libraryVersion) (\(library.path)), \(size) rank\(size == 1 ? "" : "s")" }

    private func check(_ code: Int32, _ call: String) throws {
        guard code == 0 else { throw MPIError("rank \(rank): \(call) failed: \(library.message(code))") }
    }

    public func alltoall(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        let t = library.datatype(element)
        try check(library.MPI_Alltoall(send, Int32(count), t, receive, Int32(count), t, library.commWorld), "MPI_Alltoall")
    }

    public func allgather(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        let t = library.datatype(element)
        try check(library.MPI_Allgather(send, Int32(count), t, receive, Int32(count), t, library.commWorld), "MPI_Allgather")
    }

    public func allreduceSum(_ send: UnsafeRawPointer, _ receive: UnsafeMutableRawPointer, count: Int, element: CollectiveElement) throws {
        precondition(element != .byte, "MPIProcessGroup.allreduceSum: bytes cannot be summed")
        try check(library.MPI_Allreduce(send, receive, Int32(count), library.datatype(element), library.opSum, library.commWorld), "MPI_Allreduce")
    }

    /// MPI_Barrier (tests, shutdown).
    public func barrier() throws { try check(library.MPI_Barrier(library.commWorld), "MPI_Barrier") }

    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        _ = library.MPI_Abort(library.commWorld, code)
        exit(code)
    }

    /// MPI_Finalize: call once, on every rank, when the job ends normally.
    public func finalize() { _ = library.MPI_Finalize() }
}
