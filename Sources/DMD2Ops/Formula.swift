// `Formula`: each op's scalar forward and backward formulas, written beside the op they belong
// to (the `extension Formula` at the end of Elementwise.swift, GroupNorm.swift, Softmax.swift).
//
// They are the definition of what a backend primitive computes. The reference backend
// (DMD2Checks/Backends/ReferenceBackend.swift) is these formulas in plain loops; the CPU
// backend's SIMD kernels (DMD2Core/Backend/CPUBackend.swift, CPUBackend+Norm.swift,
// SIMDMath.swift) and the CUDA kernels (DMD2CUDA/CUDAKernels.swift) are optimised
// re-implementations, each marked with the formula it implements, and the conformance suite
// (Tests/DMD2BackendTests) checks every one of them against the reference on every primitive.

/// The scalar formulas of the ops (see the extensions in each op's file).
public enum Formula {}
