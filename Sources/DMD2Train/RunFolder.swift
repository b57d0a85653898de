// What keeps a run folder to one run and its settings to the run's: an advisory lock held for
// the run's life, a check that an output folder is writable before any work, and the list of
// settings a resume would change.
//
//   <run>/run.lock     flock(2)ed (exclusive, non-blocking) by the process training in <run>;
//                      holds its PID, so a second run is refused at once naming it. The lock
//                      goes with the open file: a crash or kill releases it; the file stays.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A run folder that cannot be used: locked by another run, or not writable.
public struct RunFolderError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Equatable { case locked, notWritable }
    public var kind: Kind
    public var folder: String
    /// The process holding the lock (when `.locked` and it wrote its PID).
    public var holder: Int32?
    public var description: String

    public init(_ kind: Kind, folder: String, holder: Int32? = nil, _ description: String) {
        self.kind = kind
        self.folder = folder
        self.holder = holder
        self.description = description
    }
}

/// An exclusive advisory lock on a run folder, held until this object is released.
/// flock is per open file description: a second lock on the same folder fails, also from the
/// same process.
public final class RunFolderLock {
    public static let fileName = "run.lock"
    public let folder: URL
    private let fd: Int32

    /// Lock `folder` (created if missing). Throws `RunFolderError.locked` naming the holder's
    /// PID when another run holds it.
    public init(_ folder: URL) throws {
        try RunFolder.checkWritable(folder, what: "run folder")
        let path = folder.appendingPathComponent(Self.fileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw RunFolderError(.notWritable, folder: folder.path, "\(path): cannot open the run's lock file (\(String(cString: strerror(errno))))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            let pid = Self.readPID(fd)
            close(fd)
            if code == EWOULDBLOCK { throw Self.lockedError(folder, pid) }
            throw RunFolderError(.notWritable, folder: folder.path, "\(path): cannot lock (\(String(cString: strerror(code))))")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.folder = folder
        self.fd = fd
    }

    deinit {
        _ = flock(fd, LOCK_UN)
        close(fd)
    }

    /// The PID of the process holding `folder`'s lock (nil: unlocked, or no PID written yet);
    /// a probe that takes no lock it keeps.
    public static func holder(of folder: URL) -> Int32? {
        let fd = open(folder.appendingPathComponent(fileName).path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
            return nil
        }
        return readPID(fd) ?? -1
    }

    /// Throws `RunFolderError.locked` naming the holder when another run holds `folder` (a probe
    /// before slow work; the lock itself is taken by `init`).
    public static func checkUnlocked(_ folder: URL) throws {
        if let pid = holder(of: folder) { throw lockedError(folder, pid > 0 ? pid : nil) }
    }

    /// Run `body` holding the lock on `folder`: `held` when the caller already holds it (a run in
    /// progress), else a lock taken for this call only (a checkpoint written outside `run()`).
    /// Both trainers write and step through this.
    public static func holding<R>(_ held: RunFolderLock?, _ folder: URL, _ body: () throws -> R) throws -> R {
        if held != nil { return try body() }
        let lock = try RunFolderLock(folder)
        defer { withExtendedLifetime(lock) {} }
        return try body()
    }

    static func lockedError(_ folder: URL, _ pid: Int32?) -> RunFolderError {
        RunFolderError(.locked, folder: folder.path, holder: pid,
                       "\(folder.path) is in use by another run (\(pid.map { "PID \($0)" } ?? "a process that has not written its PID yet")); wait for it to finish, stop it, or choose another run folder")
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buffer, 31, 0)
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

public enum RunFolder {
    /// Throws `RunFolderError.notWritable` unless `folder` exists (it is created if missing) and
    /// a file can be created in it. `what` names the folder in the message ("run folder",
    /// "output folder").
    public static func checkWritable(_ folder: URL, what: String) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: folder.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw RunFolderError(.notWritable, folder: folder.path, "\(what) \(folder.path) is a file, not a folder")
            }
        } else {
            do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
                throw RunFolderError(.notWritable, folder: folder.path, "\(what) \(folder.path) cannot be created (\(error.localizedDescription))")
            }
        }
        let probe = folder.appendingPathComponent(".write-test-\(getpid())-\(UUID().uuidString)")
        guard fm.createFile(atPath: probe.path, contents: Data()) else {
            throw RunFolderError(.notWritable, folder: folder.path, "\(what) \(folder.path) is not writable")
        }
        try? fm.removeItem(at: probe)
    }
}

/// A setting a resume was asked to change: its key path in the run's config (as the manifest
/// stores it), the run's value and the requested one.
public struct SettingChange: Equatable, Sendable, CustomStringConvertible {
    public var key: String
    public var run: String
    public var requested: String

    public init(key: String, run: String, requested: String) {
        self.key = key
        self.run = run
        self.requested = requested
    }

    public var description: String { "\(key): the run has \(run), requested \(requested)" }

    /// Every leaf of `requested` that differs from `run` (configs compared as their JSON, key
    /// paths joined with '.'), in key order; keys in `ignoring` (and below them) are skipped.
    public static func between<C: Encodable>(_ run: C, _ requested: C, ignoring: Set<String> = []) -> [SettingChange] {
        let a = flatten(run), b = flatten(requested)
        return Set(a.keys).union(b.keys).sorted().compactMap { key in
            guard !ignoring.contains(where: { key == $0 || key.hasPrefix($0 + ".") }) else { return nil }
            let x = a[key] ?? "none", y = b[key] ?? "none"
            return x == y ? nil : SettingChange(key: key, run: x, requested: y)
        }
    }

    static func flatten<C: Encodable>(_ value: C) -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value), let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return [:] }
        var leaves: [String: String] = [:]
        func walk(_ node: Any, _ path: String) {
            if let dictionary = node as? [String: Any] {
                for (k, v) in dictionary { walk(v, path.isEmpty ? k : "\(path).\(k)") }
            } else if let data = try? JSONSerialization.data(withJSONObject: node, options: [.fragmentsAllowed, .sortedKeys]) {
                leaves[path] = String(decoding: data, as: UTF8.self)
            }
        }
        walk(object, "")
        return leaves
    }
}
