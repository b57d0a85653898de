// Backends by name, and the one setting that chooses the backend every op runs on.
//
// A backend is found by a short name. The core registers "cpu" (SIMD + BLIS, the default);
// other modules register theirs at start-up: DMD2Checks' `CheckBackends.register()` adds
// "reference" (plain loops) and the "shadow" wrapper, DMD2CUDA's `CUDABackend.register()` adds
// "cuda" and "cuda-emu". A wrapper is a backend around another one: "NAME:INNER" wraps backend
// INNER, and "NAME" alone wraps the wrapper's default inner backend ("shadow" = "shadow:cpu").
//
// Where the choice comes from, in order: a command line's `--backend NAME`, else the
// environment variable DMD2_BACKEND (read once, when `Compute.backend` is first used), else
// "cpu". Programs register the backends they link before they first compute (the `dmd2` tool,
// dmd2-bench and the test targets do), so `DMD2_BACKEND=shadow swift test` runs a test suite
// with every primitive checked against the reference, and `DMD2_BACKEND=reference` runs it on
// plain loops.
import Foundation
import Synchronization

public enum BackendRegistry {
    /// Makes a fresh backend; throws when the backend cannot run here (no device, no library).
    public typealias Factory = @Sendable () throws -> any Backend
    /// Makes a backend around `inner` (a checker, a tracer, …).
    public typealias WrapperFactory = @Sendable (_ inner: any Backend) throws -> any Backend

    /// The environment variable naming the startup backend.
    public static let environmentVariable = "DMD2_BACKEND"

    private struct Wrapper { var defaultInner: String; var make: WrapperFactory }
    private struct Entries {
        var factories: [String: Factory] = ["cpu": { CPUBackend() }]
        var wrappers: [String: Wrapper] = [:]
    }
    private static let entries = Mutex(Entries())

    /// Make `name` available to `make` and `select` (replacing an earlier registration).
    /// Names are lower-case words without ':' and different from every wrapper's name.
    public static func register(_ name: String, _ factory: @escaping Factory) {
        entries.withLock { e in
            precondition(!name.isEmpty && !name.contains(":") && e.wrappers[name] == nil,
                         "BackendRegistry.register: '\(name)' is not a valid backend name (empty, contains ':', or a wrapper's name)")
            e.factories[name] = factory
        }
    }

    /// Make the wrapper `name` available: "NAME:INNER" wraps backend INNER (any registered name)
    /// and "NAME" wraps `defaultInner` (replacing an earlier registration).
    public static func registerWrapper(_ name: String, defaultInner: String, _ make: @escaping WrapperFactory) {
        entries.withLock { e in
            precondition(!name.isEmpty && !name.contains(":") && e.factories[name] == nil,
                         "BackendRegistry.registerWrapper: '\(name)' is not a valid wrapper name (empty, contains ':', or a backend's name)")
            e.wrappers[name] = Wrapper(defaultInner: defaultInner, make: make)
        }
    }

    /// The registered backend names, sorted (wrappers are in `wrapperNames`).
    public static var names: [String] { entries.withLock { $0.factories.keys.sorted() } }

    /// The registered wrapper names, sorted.
    public static var wrapperNames: [String] { entries.withLock { $0.wrappers.keys.sorted() } }

    public static func isRegistered(_ name: String) -> Bool { entries.withLock { $0.factories[name] != nil } }

    /// A new backend for `spec`: a registered name, a wrapper's name, or "WRAPPER:NAME".
    public static func make(_ spec: String) throws -> any Backend {
        let spec = spec.trimmingCharacters(in: .whitespaces).lowercased()
        let (head, inner) = spec.firstIndex(of: ":").map { (String(spec[..<$0]), String(spec[spec.index(after: $0)...]) as String?) }
            ?? (spec, nil)
        let (factory, wrapper) = entries.withLock { ($0.factories[head], $0.wrappers[head]) }
        if let wrapper {
            let innerSpec = inner ?? wrapper.defaultInner
            if let innerHead = innerSpec.split(separator: ":").first, entries.withLock({ $0.wrappers[String(innerHead)] != nil }) {
                throw BackendRegistryError(description: "backend '\(spec)': a wrapper around a wrapper ('\(innerSpec)') is not supported")
            }
            return try wrapper.make(try make(innerSpec))
        }
        guard let factory, inner == nil else {
            let wrappers = wrapperNames.map { ", \($0) and \($0):NAME" }.joined()
            throw BackendRegistryError(description: """
                unknown backend '\(spec)'; registered: \(names.joined(separator: ", "))\(wrappers) \
                (backends other than cpu are registered by the module that provides them, at start-up: \
                DMD2CUDA's CUDABackend.register(), DMD2Checks' CheckBackends.register())
                """)
        }
        return try factory()
    }

    /// Make `spec` the backend every op runs on (`Compute.backend`) and return it.
    @discardableResult
    public static func select(_ spec: String) throws -> any Backend {
        let backend = try make(spec)
        Compute.backend = backend
        return backend
    }

    /// DMD2_BACKEND as the process started with it (nil when unset or empty), read once.
    public static let environmentChoice: String? = {
        let value = ProcessInfo.processInfo.environment[environmentVariable]?.trimmingCharacters(in: .whitespaces)
        return value?.isEmpty == false ? value : nil
    }()

    /// The backend `Compute.backend` starts with: DMD2_BACKEND's choice, or the CPU backend.
    /// A choice this process cannot make yet (a name no module has registered before the first
    /// use of `Compute.backend`) or that fails to start is reported on standard error and the
    /// CPU backend is used; the `dmd2` tool registers every backend and selects `--backend` or
    /// DMD2_BACKEND itself, failing loudly there.
    static func startupBackend() -> any Backend {
        guard let choice = environmentChoice else { return CPUBackend() }
        do {
            return try make(choice)
        } catch {
            FileHandle.standardError.write(Data("warning: \(environmentVariable)=\(choice): \(error); using cpu until a backend is selected\n".utf8))
            return CPUBackend()
        }
    }
}

public struct BackendRegistryError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}
