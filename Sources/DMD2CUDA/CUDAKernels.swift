// The CUDA C source of every kernel the CUDA backend launches, compiled at run time by NVRTC
// (or, for `CUDABackend.emulated()`, by the host C++ compiler with HostEmulator.swift's prelude).
//
// Each kernel computes the op's scalar formula named beside it (`Formula` in DMD2Ops:
// Elementwise.swift, GroupNorm.swift, Softmax.swift) and mirrors the loop of the same primitive
// in DMD2Checks' ReferenceBackend.swift, with the loop
// over output elements spread over threads: the sums run in the same order as the reference's
// where one thread owns one output (sumAxis, col2im, avgPool, dγ/dβ), so those results match it
// bit for bit; block reductions (sum, dot, GroupNorm statistics, softmax) add in a tree and
// match within the shadow's √K rule. `--fmad=false` keeps a·b + c as two roundings, as in Swift.
//
// Conventions: every kernel exists as `name_f32` and `name_f64` (extern "C", so the driver finds
// it by that name); indices are `long long`; `op` codes are the Swift enums' case order
// (`CUDAKernels.unaryCode`, `binaryCode`); absent optional buffers (γ, β, dγ, dβ) are null.
// Element-wise kernels use grid-stride loops; block kernels use `blockThreads` threads and a
// tree reduction in shared memory.
import DMD2Core

enum CUDAKernels {
    /// Threads per block for every launch (the block reductions assume exactly this many).
    static let blockThreads = 256

    /// Every kernel name without its type suffix, and whether it synchronises its block
    /// (`__syncthreads`; the host emulator runs those threads as cooperative fibers).
    static let kernels: [(name: String, cooperative: Bool)] = [
        ("unary", false), ("binary", false), ("affine", false), ("nan_to_num", false),
        ("sum_axis", false), ("sum_all", true), ("dot_all", true),
        ("strided_copy", false), ("copy_rows", false),
        ("im2col", false), ("col2im", false),
        ("avg_pool", false), ("avg_pool_backward", false), ("upsample", false), ("upsample_backward", false),
        ("group_norm", true), ("group_norm_backward_dx", true), ("group_norm_backward_affine", false),
        ("softmax_rows", true), ("softmax_rows_backward", true),
    ]

    /// The code a kernel's `op` argument uses for a unary op: its position in `UnaryOp.allCases`.
    static func unaryCode(_ op: UnaryOp) -> Int32 { Int32(UnaryOp.allCases.firstIndex(of: op)!) }
    static func binaryCode(_ op: BinaryOp) -> Int32 { Int32(BinaryOp.allCases.firstIndex(of: op)!) }

    /// Checks that the op codes the source switches on are the Swift enums' order.
    static let unaryOrder: [UnaryOp] = [.neg, .exp, .log, .sqrt, .square, .abs, .sign, .sigmoid, .silu, .softplus, .tanh, .sin, .cos]
    static let binaryOrder: [BinaryOp] = [.add, .sub, .mul, .div, .maximum, .minimum,
                                          .sigmoidBackward, .siluBackward, .softplusBackward, .tanhBackward]

    static let source = #"""
// swift-dmd2 CUDA kernels (DMD2CUDA/CUDAKernels.swift). Mirrors ReferenceBackend.swift.
#define BLOCK 256
#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
                               i += (long long)blockDim.x * gridDim.x)

// Type-overloaded maths (the CUDA math library's float and double functions).
__device__ __forceinline__ float  k_exp(float x)    { return expf(x); }
__device__ __forceinline__ double k_exp(double x)   { return exp(x); }
__device__ __forceinline__ float  k_log(float x)    { return logf(x); }
__device__ __forceinline__ double k_log(double x)   { return log(x); }
__device__ __forceinline__ float  k_log1p(float x)  { return log1pf(x); }
__device__ __forceinline__ double k_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float  k_sqrt(float x)   { return sqrtf(x); }
__device__ __forceinline__ double k_sqrt(double x)  { return sqrt(x); }
__device__ __forceinline__ float  k_tanh(float x)   { return tanhf(x); }
__device__ __forceinline__ double k_tanh(double x)  { return tanh(x); }
__device__ __forceinline__ float  k_sin(float x)    { return sinf(x); }
__device__ __forceinline__ double k_sin(double x)   { return sin(x); }
__device__ __forceinline__ float  k_cos(float x)    { return cosf(x); }
__device__ __forceinline__ double k_cos(double x)   { return cos(x); }
template <typename T> __device__ __forceinline__ T k_abs(T x) { return x < 0 ? -x : x; }
template <typename T> __device__ __forceinline__ bool k_isnan(T x) { return x != x; }
// ±∞: not NaN, and x − x is NaN (it is 0 for every finite x).
template <typename T> __device__ __forceinline__ bool k_isinf(T x) { return x == x && (x - x) != (x - x); }

// σ(x) = 1/(1 + e^{−x}) without overflow (Formula.sigmoid).
template <typename T> __device__ __forceinline__ T k_sigmoid(T x) {
    if (x >= 0) return T(1) / (T(1) + k_exp(-x));
    T e = k_exp(x);
    return e / (T(1) + e);
}
// softplus(x) = max(x, 0) + ln(1 + e^{−|x|}) (Formula.softplus).
template <typename T> __device__ __forceinline__ T k_softplus(T x) {
    return (x > 0 ? x : T(0)) + k_log1p(k_exp(-k_abs(x)));
}

// Sum a block's `BLOCK` values in shared memory by halving; every thread gets the total.
template <typename T> __device__ T k_block_sum(T value, T* shared) {
    shared[threadIdx.x] = value;
    __syncthreads();
    for (int half = BLOCK / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    T total = shared[0];
    __syncthreads();
    return total;
}
template <typename T> __device__ T k_block_max(T value, T* shared) {
    shared[threadIdx.x] = value;
    __syncthreads();
    for (int half = BLOCK / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            T other = shared[threadIdx.x + half];
            if (other > shared[threadIdx.x]) shared[threadIdx.x] = other;
        }
        __syncthreads();
    }
    T total = shared[0];
    __syncthreads();
    return total;
}

// ---- Elementwise ------------------------------------------------------------------------------
// op: neg 0, exp 1, log 2, sqrt 3, square 4, abs 5, sign 6, sigmoid 7, silu 8, softplus 9,
//     tanh 10, sin 11, cos 12. Case op computes Formula.unary(op, x), i.e. Formula.<op>.
template <typename T> __device__ void unary_impl(int op, long long n, const T* x, T* y) {
    GRID_STRIDE(i, n) {
        T v = x[i], r;
        switch (op) {
        case 0: r = -v; break;
        case 1: r = k_exp(v); break;
        case 2: r = k_log(v); break;
        case 3: r = k_sqrt(v); break;
        case 4: r = v * v; break;
        case 5: r = k_abs(v); break;
        case 6: r = v > 0 ? T(1) : (v < 0 ? T(-1) : T(0)); break;
        case 7: r = k_sigmoid(v); break;
        case 8: r = v * k_sigmoid(v); break;
        case 9: r = k_softplus(v); break;
        case 10: r = k_tanh(v); break;
        case 11: r = k_sin(v); break;
        default: r = k_cos(v); break;
        }
        y[i] = r;
    }
}

// op: add 0, sub 1, mul 2, div 3, maximum 4, minimum 5, and the VJPs of unary ops with
// a = the op's input x, b = upstream g: sigmoidBackward 6, siluBackward 7, softplusBackward 8,
// tanhBackward 9. maximum/minimum follow Swift.max/min: max(x, g) = g >= x ? g : x. Case op
// computes Formula.binary(op, a, b) (Formula.siluBackward etc.).
template <typename T> __device__ void binary_impl(int op, long long n, const T* a, const T* b, T* y) {
    GRID_STRIDE(i, n) {
        T x = a[i], g = b[i], r;
        switch (op) {
        case 0: r = x + g; break;
        case 1: r = x - g; break;
        case 2: r = x * g; break;
        case 3: r = x / g; break;
        case 4: r = g >= x ? g : x; break;
        case 5: r = g < x ? g : x; break;
        case 6: r = k_sigmoid(x) * k_sigmoid(-x) * g; break;
        case 7: r = g * k_sigmoid(x) * (T(1) + x * k_sigmoid(-x)); break;
        case 8: r = k_sigmoid(x) * g; break;
        default: { T t = k_tanh(x); r = (T(1) - t * t) * g; } break;
        }
        y[i] = r;
    }
}

template <typename T> __device__ void affine_impl(long long n, const T* x, T scale, T shift, T* y) {
    GRID_STRIDE(i, n) { y[i] = scale * x[i] + shift; }
}

template <typename T> __device__ void nan_to_num_impl(long long n, const T* x, T nan, T pos_inf, T neg_inf, T* y) {
    GRID_STRIDE(i, n) {
        T v = x[i];
        y[i] = k_isnan(v) ? nan : (k_isinf(v) ? (v > 0 ? pos_inf : neg_inf) : v);
    }
}

// ---- Reductions -------------------------------------------------------------------------------
// y[o, i] = Σ_r x[o, r, i]: one thread per output, r in order (the reference's order).
template <typename T> __device__ void sum_axis_impl(long long outer, long long reduced, long long inner, const T* x, T* y) {
    GRID_STRIDE(t, outer * inner) {
        long long o = t / inner, i = t % inner;
        T s = 0;
        for (long long r = 0; r < reduced; r++) s += x[(o * reduced + r) * inner + i];
        y[t] = s;
    }
}

// Σ x (one block: per-thread strided partial sums, then a tree).
template <typename T> __device__ void sum_all_impl(long long n, const T* x, T* y) {
    __shared__ T shared[BLOCK];
    T s = 0;
    for (long long i = threadIdx.x; i < n; i += BLOCK) s += x[i];
    T total = k_block_sum(s, shared);
    if (threadIdx.x == 0) y[0] = total;
}

template <typename T> __device__ void dot_all_impl(long long n, const T* a, const T* b, T* y) {
    __shared__ T shared[BLOCK];
    T s = 0;
    for (long long i = threadIdx.x; i < n; i += BLOCK) s += a[i] * b[i];
    T total = k_block_sum(s, shared);
    if (threadIdx.x == 0) y[0] = total;
}

// ---- Layout -----------------------------------------------------------------------------------
// y (contiguous, out_shape) ← x read with src_strides (0 on broadcast axes): permute and
// broadcast. meta = [out_shape[0..rank), src_strides[0..rank)].
template <typename T> __device__ void strided_copy_impl(int rank, long long total, const long long* meta, const T* x, T* y) {
    GRID_STRIDE(flat, total) {
        long long rem = flat, src = 0;
        for (int d = rank - 1; d >= 0; d--) {
            long long extent = meta[d];
            src += (rem % extent) * meta[rank + d];
            rem /= extent;
        }
        y[flat] = x[src];
    }
}

// y[r·ys + yo + j] = x[r·xs + xo + j].
template <typename T> __device__ void copy_rows_impl(long long rows, long long count, const T* x, long long xs, long long xo,
                                                     T* y, long long ys, long long yo) {
    GRID_STRIDE(t, rows * count) {
        long long r = t / count, j = t % count;
        y[r * ys + yo + j] = x[r * xs + xo + j];
    }
}

// ---- Convolution lowering ---------------------------------------------------------------------
// col[(c·k + u)·k + v, i·Wo + j] = x[c, i·s + u − p, j·s + v − p] (0 outside), col compact [C·k·k, Ho·Wo].
template <typename T> __device__ void im2col_impl(long long C, long long H, long long W, long long k, long long s, long long p,
                                                  long long Ho, long long Wo, const T* x, T* col) {
    GRID_STRIDE(t, C * k * k * Ho * Wo) {
        long long j = t % Wo, i = (t / Wo) % Ho, row = t / (Ho * Wo);
        long long v = row % k, u = (row / k) % k, c = row / (k * k);
        long long h = i * s + u - p, w = j * s + v - p;
        col[t] = (h >= 0 && h < H && w >= 0 && w < W) ? x[(c * H + h) * W + w] : T(0);
    }
}

// x[c, h, w] += Σ col entries read from it, gathered per pixel in the reference's (u, v) order.
template <typename T> __device__ void col2im_impl(long long C, long long H, long long W, long long k, long long s, long long p,
                                                  long long Ho, long long Wo, const T* col, T* x) {
    GRID_STRIDE(t, C * H * W) {
        long long w = t % W, h = (t / W) % H, c = t / (H * W);
        T acc = x[t];
        for (long long u = 0; u < k; u++) {
            long long ih = h + p - u;                  // = i·s
            if (ih < 0 || ih % s != 0 || ih / s >= Ho) continue;
            long long i = ih / s;
            for (long long v = 0; v < k; v++) {
                long long jw = w + p - v;              // = j·s
                if (jw < 0 || jw % s != 0 || jw / s >= Wo) continue;
                long long j = jw / s;
                acc += col[((c * k + u) * k + v) * Ho * Wo + i * Wo + j];
            }
        }
        x[t] = acc;
    }
}

// ---- Resampling -------------------------------------------------------------------------------
template <typename T> __device__ void avg_pool_impl(long long P, long long H, long long W, const T* x, T* y) {
    long long Ho = H / 2, Wo = W / 2;
    GRID_STRIDE(t, P * Ho * Wo) {
        long long j = t % Wo, i = (t / Wo) % Ho, q = t / (Ho * Wo);
        const T* top = x + (q * H + 2 * i) * W + 2 * j;
        T s = 0;
        s += top[0]; s += top[1]; s += top[W]; s += top[W + 1];
        y[t] = s * T(0.25);
    }
}

template <typename T> __device__ void avg_pool_backward_impl(long long P, long long H, long long W, const T* dy, T* dx) {
    GRID_STRIDE(t, P * H * W) {
        long long w = t % W, h = (t / W) % H, q = t / (H * W);
        dx[t] = dy[(q * (H / 2) + h / 2) * (W / 2) + w / 2] * T(0.25);
    }
}

template <typename T> __device__ void upsample_impl(long long P, long long H, long long W, const T* x, T* y) {
    GRID_STRIDE(t, P * 4 * H * W) {
        long long w = t % (2 * W), h = (t / (2 * W)) % (2 * H), q = t / (4 * H * W);
        y[t] = x[(q * H + h / 2) * W + w / 2];
    }
}

template <typename T> __device__ void upsample_backward_impl(long long P, long long H, long long W, const T* dy, T* dx) {
    GRID_STRIDE(t, P * H * W) {
        long long j = t % W, i = (t / W) % H, q = t / (H * W);
        const T* top = dy + (q * 2 * H + 2 * i) * 2 * W + 2 * j;
        T s = 0;
        s += top[0]; s += top[1]; s += top[2 * W]; s += top[2 * W + 1];
        dx[t] = s;
    }
}

// ---- GroupNorm: one block per (n, g) over its M = (C/G)·L values ---------------------------------
// Formula.groupNormStatistics (μ, then the biased variance, rstd) and Formula.groupNormOutput.
template <typename T> __device__ void group_norm_impl(long long N, long long C, long long L, long long G, T eps,
                                                      const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd) {
    __shared__ T shared[BLOCK];
    long long ng = blockIdx.x, n = ng / G, g = ng % G;
    long long Cg = C / G, M = Cg * L, base = (n * C + g * Cg) * L;
    T s = 0;
    for (long long i = threadIdx.x; i < M; i += BLOCK) s += x[base + i];
    T mu = k_block_sum(s, shared) / T(M);
    T q = 0;
    for (long long i = threadIdx.x; i < M; i += BLOCK) { T d = x[base + i] - mu; q += d * d; }
    T variance = k_block_sum(q, shared) / T(M);
    T r = T(1) / k_sqrt(variance + eps);
    if (threadIdx.x == 0) { mean[ng] = mu; rstd[ng] = r; }
    for (long long i = threadIdx.x; i < M; i += BLOCK) {
        long long c = g * Cg + i / L;
        y[base + i] = (x[base + i] - mu) * r * (gamma ? gamma[c] : T(1)) + (beta ? beta[c] : T(0));
    }
}

// dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = γ·dy, x̂ = (x − μ)·r, per (n, g): Formula.groupNormInputGradient.
template <typename T> __device__ void group_norm_backward_dx_impl(long long N, long long C, long long L, long long G,
                                                                  const T* x, const T* dy, const T* gamma,
                                                                  const T* mean, const T* rstd, T* dx) {
    __shared__ T shared[BLOCK];
    long long ng = blockIdx.x, n = ng / G, g = ng % G;
    long long Cg = C / G, M = Cg * L, base = (n * C + g * Cg) * L;
    T mu = mean[ng], r = rstd[ng];
    T sg = 0, sgx = 0;
    for (long long i = threadIdx.x; i < M; i += BLOCK) {
        long long c = g * Cg + i / L;
        T gh = dy[base + i] * (gamma ? gamma[c] : T(1));
        sg += gh;
        sgx += gh * (x[base + i] - mu) * r;
    }
    T meanG = k_block_sum(sg, shared) / T(M);
    T meanGX = k_block_sum(sgx, shared) / T(M);
    for (long long i = threadIdx.x; i < M; i += BLOCK) {
        long long c = g * Cg + i / L;
        dx[base + i] = r * (dy[base + i] * (gamma ? gamma[c] : T(1)) - meanG - (x[base + i] - mu) * r * meanGX);
    }
}

// dγ[c] = Σ_{n,l} dy·x̂, dβ[c] = Σ_{n,l} dy: one thread per channel, n then l (the reference's order).
template <typename T> __device__ void group_norm_backward_affine_impl(long long N, long long C, long long L, long long G,
                                                                      const T* x, const T* dy, const T* mean, const T* rstd,
                                                                      T* dgamma, T* dbeta) {
    GRID_STRIDE(c, C) {
        long long g = c / (C / G);
        T sgamma = 0, sbeta = 0;
        for (long long n = 0; n < N; n++) {
            T mu = mean[n * G + g], r = rstd[n * G + g];
            for (long long l = 0; l < L; l++) {
                long long i = (n * C + c) * L + l;
                sgamma += dy[i] * (x[i] - mu) * r;
                sbeta += dy[i];
            }
        }
        if (dgamma) dgamma[c] = sgamma;
        if (dbeta) dbeta[c] = sbeta;
    }
}

// ---- Softmax: one block per row ---------------------------------------------------------------
// Formula.softmaxRow: y_j = exp(x_j − m)/Σ_k exp(x_k − m), m = max_k x_k.
template <typename T> __device__ void softmax_rows_impl(long long rows, long long cols, const T* x, T* y) {
    __shared__ T shared[BLOCK];
    const T* xr = x + blockIdx.x * cols;
    T* yr = y + blockIdx.x * cols;
    T m = xr[0];
    for (long long j = threadIdx.x; j < cols; j += BLOCK) if (xr[j] > m) m = xr[j];
    m = k_block_max(m, shared);
    T s = 0;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) s += k_exp(xr[j] - m);
    s = k_block_sum(s, shared);
    for (long long j = threadIdx.x; j < cols; j += BLOCK) yr[j] = k_exp(xr[j] - m) / s;
}

// dx[r, j] = y[r, j]·(dy[r, j] − Σ_k dy[r, k]·y[r, k]): Formula.softmaxRowBackward.
template <typename T> __device__ void softmax_rows_backward_impl(long long rows, long long cols, const T* y, const T* dy, T* dx) {
    __shared__ T shared[BLOCK];
    long long base = (long long)blockIdx.x * cols;
    T d = 0;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) d += dy[base + j] * y[base + j];
    d = k_block_sum(d, shared);
    for (long long j = threadIdx.x; j < cols; j += BLOCK) dx[base + j] = y[base + j] * (dy[base + j] - d);
}

// ---- extern "C" entry points, one per element type ----------------------------------------------
#define ENTRIES(T, S) \
extern "C" __global__ void unary_##S(int op, long long n, const T* x, T* y) { unary_impl<T>(op, n, x, y); } \
extern "C" __global__ void binary_##S(int op, long long n, const T* a, const T* b, T* y) { binary_impl<T>(op, n, a, b, y); } \
extern "C" __global__ void affine_##S(long long n, const T* x, T scale, T shift, T* y) { affine_impl<T>(n, x, scale, shift, y); } \
extern "C" __global__ void nan_to_num_##S(long long n, const T* x, T nan, T pos_inf, T neg_inf, T* y) { \
    nan_to_num_impl<T>(n, x, nan, pos_inf, neg_inf, y); } \
extern "C" __global__ void sum_axis_##S(long long outer, long long reduced, long long inner, const T* x, T* y) { \
    sum_axis_impl<T>(outer, reduced, inner, x, y); } \
extern "C" __global__ void sum_all_##S(long long n, const T* x, T* y) { sum_all_impl<T>(n, x, y); } \
extern "C" __global__ void dot_all_##S(long long n, const T* a, const T* b, T* y) { dot_all_impl<T>(n, a, b, y); } \
extern "C" __global__ void strided_copy_##S(int rank, long long total, const long long* meta, const T* x, T* y) { \
    strided_copy_impl<T>(rank, total, meta, x, y); } \
extern "C" __global__ void copy_rows_##S(long long rows, long long count, const T* x, long long xs, long long xo, \
                                         T* y, long long ys, long long yo) { copy_rows_impl<T>(rows, count, x, xs, xo, y, ys, yo); } \
extern "C" __global__ void im2col_##S(long long C, long long H, long long W, long long k, long long s, long long p, \
                                      long long Ho, long long Wo, const T* x, T* col) { im2col_impl<T>(C, H, W, k, s, p, Ho, Wo, x, col); } \
extern "C" __global__ void col2im_##S(long long C, long long H, long long W, long long k, long long s, long long p, \
                                      long long Ho, long long Wo, const T* col, T* x) { col2im_impl<T>(C, H, W, k, s, p, Ho, Wo, col, x); } \
extern "C" __global__ void avg_pool_##S(long long P, long long H, long long W, const T* x, T* y) { avg_pool_impl<T>(P, H, W, x, y); } \
extern "C" __global__ void avg_pool_backward_##S(long long P, long long H, long long W, const T* dy, T* dx) { \
    avg_pool_backward_impl<T>(P, H, W, dy, dx); } \
extern "C" __global__ void upsample_##S(long long P, long long H, long long W, const T* x, T* y) { upsample_impl<T>(P, H, W, x, y); } \
extern "C" __global__ void upsample_backward_##S(long long P, long long H, long long W, const T* dy, T* dx) { \
    upsample_backward_impl<T>(P, H, W, dy, dx); } \
extern "C" __global__ void group_norm_##S(long long N, long long C, long long L, long long G, T eps, const T* x, \
                                          const T* gamma, const T* beta, T* y, T* mean, T* rstd) { \
    group_norm_impl<T>(N, C, L, G, eps, x, gamma, beta, y, mean, rstd); } \
extern "C" __global__ void group_norm_backward_dx_##S(long long N, long long C, long long L, long long G, const T* x, \
                                                      const T* dy, const T* gamma, const T* mean, const T* rstd, T* dx) { \
    group_norm_backward_dx_impl<T>(N, C, L, G, x, dy, gamma, mean, rstd, dx); } \
extern "C" __global__ void group_norm_backward_affine_##S(long long N, long long C, long long L, long long G, const T* x, \
                                                          const T* dy, const T* mean, const T* rstd, T* dgamma, T* dbeta) { \
    group_norm_backward_affine_impl<T>(N, C, L, G, x, dy, mean, rstd, dgamma, dbeta); } \
extern "C" __global__ void softmax_rows_##S(long long rows, long long cols, const T* x, T* y) { softmax_rows_impl<T>(rows, cols, x, y); } \
extern "C" __global__ void softmax_rows_backward_##S(long long rows, long long cols, const T* y, const T* dy, T* dx) { \
    softmax_rows_backward_impl<T>(rows, cols, y, dy, dx); }

ENTRIES(float, f32)
ENTRIES(double, f64)
"""#
}
