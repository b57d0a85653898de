// libpng (Debian libpng-dev) for reading and writing 8-bit PNG images.
#ifndef SWIFT_DMD2_CPNG_SHIM_H
#define SWIFT_DMD2_CPNG_SHIM_H
#include <png.h>
#include <zlib.h>
#endif
