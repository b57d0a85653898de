// The BLIS entry points swift-dmd2 uses.
//
// Debian's default BLIS is the OpenMP build; its `blis.h` includes `omp.h`, which Swift's
// clang cannot find. BLIS's `cblas.h` is self-contained, so we import that and declare the few
// native `bli_*` functions we call ourselves (signatures from BLIS 0.9's public API).
#ifndef SWIFT_DMD2_CBLIS_SHIM_H
#define SWIFT_DMD2_CBLIS_SHIM_H
#include <stdbool.h>
#include <stdint.h>
#include <cblas.h>

/// Number of threads BLIS uses for subsequent level-3 calls (global runtime setting).
void bli_thread_set_num_threads(int64_t n_threads);
/// Force (or stop forcing) packing of A / B. Packing speeds up conv-shaped GEMMs 2-3x on this
/// machine but slows tiny ones; swift-dmd2 decides per call from the shape.
void bli_pack_set_pack_a(bool pack_a);
void bli_pack_set_pack_b(bool pack_b);
/// Initialise BLIS explicitly (idempotent), so the first timed call does not pay for it.
void bli_init(void);
#endif
