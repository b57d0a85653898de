// LAPACKE (Debian liblapacke-dev): the symmetric eigen-solver behind the Fréchet distance's
// matrix square root.
#ifndef SWIFT_DMD2_CLAPACK_SHIM_H
#define SWIFT_DMD2_CLAPACK_SHIM_H
#include <lapacke.h>
#endif
