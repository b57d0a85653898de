// Backends by name, and the one setting that chooses the backend every op runs on.
//
// A backend is found by a short name: "cpu" (SIMD + BLIS, the default), "reference" (plain
// loops), and whatever other modules register ("cuda", from DMD2CUDA's
// `CUDABackend.register()`). "shadow" runs the CPU backend under the shadow checker
// (ShadowBackend.swift) and "shadow:NAME" runs backend NAME under it.
//
// Where the choice comes from, in order: a command line's `--backend NAME`, else the
// environment variable DMD2_BACKEND (read once, when `Compute.backend` is first used), else
// "cpu". So `DMD2_BACKEND=shadow swift test` runs the whole test suite with every primitive
// checked against the reference, and `DMD2_BACKEND=reference` runs it on plain loops.
import Foundation
import Synchronization

public enum BackendRegistry {
    /// Makes a fresh backend; throws when the backend cannot run here (no device, no library).
    public typealias Factory = @Sendable () throws -> any Backend

    /// The environment variable naming the startup backend.
    public static let environmentVariable = "DMD2_BACKEND"

    private static let factories = Mutex<[String: Factory]>([
        "cpu": { CPUBackend() },
        "reference": { ReferenceBackend() },
    ])

    /// Make `name` available to `make` and `select` (replacing an earlier registration).
    /// Names are lower-case words; "shadow" is reserved for the checker.
    public static func register(_ name: String, _ factory: @escaping Factory) {
        precondition(!name.isEmpty && !name.hasPrefix("shadow") && !name.contains(":"),
                     "BackendRegistry.register: '\(name)' is not a valid backend name (empty, contains ':', or reserved 'shadow')")
        factories.withLock { $0[name] = factory }
    }

    /// The registered names, sorted ("shadow" and "shadow:NAME" are always available on top).
    public static var names: [String] { factories.withLock { $0.keys.sorted() } }

    public static func isRegistered(_ name: String) -> Bool { factories.withLock { $0[name] != nil } }

    /// A new backend for `spec`: a registered name, "shadow" (= "shadow:cpu"), or "shadow:NAME".
    /// The shadow made here stops the process at the first divergence with its report
    /// (`ShadowBackend.Policy.trap`): a whole program cannot be asked afterwards.
    public static func make(_ spec: String) throws -> any Backend {
        let spec = spec.trimmingCharacters(in: .whitespaces).lowercased()
        if spec == "shadow" || spec.hasPrefix("shadow:") {
            let inner = spec == "shadow" ? "cpu" : String(spec.dropFirst("shadow:".count))
            guard !inner.hasPrefix("shadow") else {
                throw BackendRegistryError(description: "backend '\(spec)': a shadow of a shadow is not supported")
            }
            return ShadowBackend(candidate: try make(inner), policy: .trap)
        }
        guard let factory = factories.withLock({ $0[spec] }) else {
            throw BackendRegistryError(description: """
                unknown backend '\(spec)'; registered: \(names.joined(separator: ", ")), plus shadow and shadow:NAME\
                \(spec == "cuda" ? " (the CUDA backend registers itself from the DMD2CUDA module: call CUDABackend.register())" : "")
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
    /// A choice this process cannot make yet (a name another module registers later, such as
    /// "cuda") or that fails to start is reported on standard error and the CPU backend is used;
    /// programs that link that module select it themselves (the `dmd2` tool does, from
    /// `--backend` or DMD2_BACKEND, and fails loudly there).
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
