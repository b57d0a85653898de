// DMD2CUDA: a GPU backend adapter written against DMD2Core's Backend protocol.
//
// CUDA's driver API, NVRTC and cuBLAS are loaded at run time with dlopen (CUDALibraries.swift),
// so this module builds on any machine, needs no CUDA headers, and reports cleanly where there
// is no GPU (`CUDABackend.availability`). Files:
//   CUDABackend.swift       the Backend: each primitive copies in, runs a kernel or cuBLAS, copies out
//   CUDAKernels.swift       the CUDA C source of every kernel (the ops' Formula, mirroring DMD2Checks' ReferenceBackend.swift)
//   CUDALibraries.swift     dlopen/dlsym and the C function types of the few library calls used
//   CUDADriverDevice.swift  the GPU: context, NVRTC compile, module, launches, cuBLAS handle
//   HostEmulator.swift      the same kernels compiled for the host, to check them without a GPU
//   KernelDevice.swift      the device interface both implement, kernel arguments, caching allocator
// docs/BACKENDS.md describes the protocol, the shadow mode and the conformance suite.
