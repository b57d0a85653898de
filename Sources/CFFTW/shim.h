// FFTW 3 (double: fftw_*, single: fftwf_*), used for 2-D real FFTs (power spectra).
#ifndef SWIFT_DMD2_CFFTW_SHIM_H
#define SWIFT_DMD2_CFFTW_SHIM_H
#include <fftw3.h>
#endif
