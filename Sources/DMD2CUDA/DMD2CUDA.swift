// DMD2CUDA: a GPU backend adapter written against DMD2Core's Backend protocol. CUDA's driver,
// NVRTC and cuBLAS are loaded at run time with dlopen, so this module builds and its tests pass
// on machines without a GPU.
