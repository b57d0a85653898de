// The checking backends, registered by name: "reference" (ReferenceBackend: plain loops over
// the ops' formulas) and the wrapper "shadow" / "shadow:NAME" (ShadowBackend: backend NAME,
// default cpu, checked against the reference at every primitive call, stopping the process at
// the first divergence). The core's BackendRegistry knows neither; programs that link this
// module call `CheckBackends.register()` at start-up, before they first compute — the `dmd2`
// tool, dmd2-bench and the test targets do — so `--backend reference`, DMD2_BACKEND=shadow and
// `shadow:cuda` work there (docs/BACKENDS.md).
import DMD2Core

public enum CheckBackends {
    /// Adds "reference" and the "shadow" wrapper to `BackendRegistry` (idempotent). The shadow
    /// made by name uses `ShadowBackend.Policy.trap`: a whole program cannot be asked afterwards.
    public static func register() {
        BackendRegistry.register("reference") { ReferenceBackend() }
        BackendRegistry.registerWrapper("shadow", defaultInner: "cpu") { inner in
            ShadowBackend(candidate: inner, policy: .trap)
        }
    }
}
