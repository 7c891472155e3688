/*
 * Frozen weights in native memory for @hyperllama/runtime (part of the same N-API addon as hyperllama_blas.c, which
 * calls hyperllama_quant_init from its module init). A frozen weight is the Hugging Face [n = out, k = in] matrix of a
 * linear layer, held outside the wasm heap (malloc) as float32, bfloat16, float16 or NF4 with double quantisation,
 * and multiplied without ever being expanded in full:
 *
 *   frozenCreate(format, n, k, blockSize) → handle   format 0 f32, 1 bf16, 2 f16, 3 nf4 (blockSize: NF4 block, k % it = 0)
 *   frozenFill(handle, src, srcDtype)                src: a typed array of n·k values (srcDtype 0 f32, 1 bf16 bits,
 *                                                    2 f16 bits), converted (NF4: quantised) into the handle
 *   frozenMatMul(handle, x, m, y)                    y[m, n] = x[m, k] · Wᵀ  (the forward pass of x @ Wᵀ)
 *   frozenMatMulT(handle, dy, m, dx)                 dx[m, k] = dy[m, n] · W (its gradient with respect to x)
 *   frozenDequantize(handle, out)                    out[n·k] = W as float32
 *   frozenNf4Parts(handle) → {packed, codes, scales, offset}   copies of the NF4 storage (for checks)
 *   frozenBytes(handle) → bytes held;  frozenRelease(handle) frees now (else the GC's finalizer does)
 *   frozenSetThreads(t)                              threads of the fused small-m kernels (default OpenBLAS's)
 *
 * NF4 layout (the one @hyperllama/lora's quantizeNf4 writes): row-major elements in blocks of blockSize, each scaled
 * by its absmax m_b and rounded to the nearest of the 16 NF4 values; element 2j in the high nibble of byte j. The
 * absmax values are double-quantised: 8-bit codes of the signed dynamic map for (m_b − mean), one float32 scale per
 * group of 256 blocks, and the float32 mean. Quantisation follows the same arithmetic (doubles) as the JS code, so the
 * bytes are identical.
 *
 * Kernels: for m ≤ SMALL_M rows (decoding) each thread dequantises one weight row at a time into an L1-resident
 * buffer and takes its dot products with the m inputs (AVX2/FMA/F16C when the CPU has them, chosen at run time);
 * larger m dequantise tiles of rows and hand them to OpenBLAS's sgemm. float32 weights go to sgemm/sgemv directly.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <node_api.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HL_X86 1
#endif

#define QCHECK(call)                                                                  \
  do {                                                                                \
    if ((call) != napi_ok) {                                                          \
      napi_throw_error(env, "HYPERLLAMA_NATIVE", "N-API call failed: " #call);        \
      return NULL;                                                                    \
    }                                                                                 \
  } while (0)

enum { F_F32 = 0, F_BF16 = 1, F_F16 = 2, F_NF4 = 3 };
#define SMALL_M 8
#define DQ_GROUP 256
#define MAX_THREADS 64

static const float NF4[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
static double NF4D[16];
static double DYN[256]; /* bitsandbytes' signed dynamic map, sorted, as doubles of the float32 values */
static int quant_threads = 0;
static bool has_avx2 = false;

typedef struct {
  int format;
  int64_t n, k;
  int block;
  void *data;      /* f32: float[n·k]; bf16/f16: uint16[n·k]; nf4: uint8[n·k / 2] */
  uint8_t *codes;  /* nf4: [nBlocks] absmax codes */
  float *scales;   /* nf4: [ceil(nBlocks / 256)] */
  float offset;    /* nf4: mean absmax */
  size_t bytes;
  bool released;
} qweight;

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void init_tables(void) {
  for (int i = 0; i < 16; i++) NF4D[i] = NF4[i];
  double v[256];
  int c = 0;
  v[c++] = 0;
  v[c++] = 1;
  for (int i = 0; i < 7; i++) {
    const int steps = 1 << i;
    for (int j = 0; j < steps; j++) {
      const double mid = 0.1 + (0.9 * (j + 0.5)) / steps;
      v[c++] = pow(10, i - 6) * mid;
      v[c++] = -pow(10, i - 6) * mid;
    }
  }
  qsort(v, 256, sizeof(double), cmp_double);
  for (int i = 0; i < 256; i++) DYN[i] = (double)(float)v[i];
}

static inline float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint16_t f32_to_bf16(float f) { /* round to nearest even; NaN stays NaN */
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) u = sign;
    else { /* subnormal */
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; exp--; }
      u = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) u = sign | 0x7f800000 | (man << 13);
  else u = sign | ((exp - 15 + 127) << 23) | (man << 13);
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint16_t f32_to_f16(float f) { /* round to nearest even */
  uint32_t u;
  memcpy(&u, &f, 4);
  const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  const int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    man |= 0x800000;
    const int shift = 14 - exp;
    uint32_t half = (man >> shift) + (((man >> (shift - 1)) & 1) && ((man & ((1u << (shift - 1)) - 1)) || ((man >> shift) & 1)));
    return sign | (uint16_t)half;
  }
  uint32_t r = ((uint32_t)exp << 10) | (man >> 13);
  const uint32_t rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (r & 1))) r++;
  return sign | (uint16_t)r;
}

/* ---- NF4 block scales ---- */
static inline float nf4_absmax(const qweight *w, int64_t b) {
  return (float)(DYN[w->codes[b]] * (double)w->scales[b / DQ_GROUP] + (double)w->offset);
}

/* ---- dequantise one row (k values) into out ---- */
static void dequant_row_scalar(const qweight *w, int64_t j, float *out) {
  const int64_t k = w->k;
  switch (w->format) {
    case F_F32: memcpy(out, (const float *)w->data + j * k, k * sizeof(float)); break;
    case F_BF16: {
      const uint16_t *s = (const uint16_t *)w->data + j * k;
      for (int64_t i = 0; i < k; i++) out[i] = bf16_to_f32(s[i]);
      break;
    }
    case F_F16: {
      const uint16_t *s = (const uint16_t *)w->data + j * k;
      for (int64_t i = 0; i < k; i++) out[i] = f16_to_f32(s[i]);
      break;
    }
    default: {
      const uint8_t *p = (const uint8_t *)w->data + j * k / 2;
      const int64_t b0 = j * k / w->block;
      for (int64_t b = 0; b < k / w->block; b++) {
        const float m = nf4_absmax(w, b0 + b);
        for (int64_t i = b * w->block; i < (b + 1) * w->block; i += 2) {
          const uint8_t byte = p[i >> 1];
          out[i] = NF4[byte >> 4] * m;
          out[i + 1] = NF4[byte & 15] * m;
        }
      }
    }
  }
}

#ifdef HL_X86
__attribute__((target("avx2,fma,f16c"))) static void dequant_row_avx2(const qweight *w, int64_t j, float *out) {
  const int64_t k = w->k;
  if (w->format == F_BF16 || w->format == F_F16) {
    const uint16_t *s = (const uint16_t *)w->data + j * k;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
      const __m128i h = _mm_loadu_si128((const __m128i *)(s + i));
      __m256 f;
      if (w->format == F_BF16) f = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      else f = _mm256_cvtph_ps(h);
      _mm256_storeu_ps(out + i, f);
    }
    for (; i < k; i++) out[i] = w->format == F_BF16 ? bf16_to_f32(s[i]) : f16_to_f32(s[i]);
    return;
  }
  if (w->format != F_NF4 || w->block % 8 != 0) {
    dequant_row_scalar(w, j, out);
    return;
  }
  /* 8 values from 4 bytes: codes in the high then low nibble, looked up with two 8-lane permutes. */
  const __m256 lo_tab = _mm256_loadu_ps(NF4), hi_tab = _mm256_loadu_ps(NF4 + 8);
  const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0), fifteen = _mm256_set1_epi32(15),
                seven = _mm256_set1_epi32(7);
  const __m256i pick = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  const uint8_t *p = (const uint8_t *)w->data + j * k / 2;
  const int64_t b0 = j * k / w->block;
  for (int64_t b = 0; b < k / w->block; b++) {
    const __m256 m = _mm256_set1_ps(nf4_absmax(w, b0 + b));
    for (int64_t i = b * w->block; i < (b + 1) * w->block; i += 8) {
      uint32_t four;
      memcpy(&four, p + (i >> 1), 4);
      const __m256i bytes = _mm256_and_si256(
          _mm256_permutevar8x32_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi32_si128((int)four)), pick), _mm256_set1_epi32(255));
      const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(bytes, shifts), fifteen);
      const __m256 a = _mm256_permutevar8x32_ps(lo_tab, q), c = _mm256_permutevar8x32_ps(hi_tab, q);
      const __m256 v = _mm256_blendv_ps(a, c, _mm256_castsi256_ps(_mm256_cmpgt_epi32(q, seven)));
      _mm256_storeu_ps(out + i, _mm256_mul_ps(v, m));
    }
  }
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int64_t k) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= k; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  float r = _mm_cvtss_f32(h);
  for (; i < k; i++) r += a[i] * b[i];
  return r;
}

__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 s) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

/* Fused decoding kernel (m ≤ SMALL_M inputs, k % 8 = 0): each weight row is read once and converted in registers,
 * 8 values at a time, into m running sums; NF4 sums each block unscaled and scales it once by the block's absmax.
 * Inlined with m = 1 (the common case) so the sums stay in registers. */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void fused_rows_avx2(const qweight *w, const float *x,
                                                                                           int64_t m, float *y, int64_t start,
                                                                                           int64_t end) {
  const int64_t k = w->k, n = w->n;
  const __m256 lo_tab = _mm256_loadu_ps(NF4), hi_tab = _mm256_loadu_ps(NF4 + 8);
  const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0), fifteen = _mm256_set1_epi32(15),
                seven = _mm256_set1_epi32(7), pick = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  for (int64_t j = start; j < end; j++) {
    __m256 acc[SMALL_M];
    for (int64_t r = 0; r < m; r++) acc[r] = _mm256_setzero_ps();
    if (w->format == F_BF16 || w->format == F_F16) {
      const uint16_t *s = (const uint16_t *)w->data + j * k;
      for (int64_t i = 0; i < k; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(s + i));
        const __m256 v = w->format == F_BF16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                                             : _mm256_cvtph_ps(h);
        for (int64_t r = 0; r < m; r++) acc[r] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + r * k + i), acc[r]);
      }
    } else {
      const uint8_t *p = (const uint8_t *)w->data + j * k / 2;
      const int64_t b0 = j * k / w->block;
      for (int64_t b = 0; b < k / w->block; b++) {
        __m256 part[SMALL_M];
        for (int64_t r = 0; r < m; r++) part[r] = _mm256_setzero_ps();
        for (int64_t i = b * w->block; i < (b + 1) * w->block; i += 8) {
          uint32_t four;
          memcpy(&four, p + (i >> 1), 4);
          const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi32_si128((int)four)), pick);
          const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(bytes, shifts), fifteen);
          const __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo_tab, q), _mm256_permutevar8x32_ps(hi_tab, q),
                                            _mm256_castsi256_ps(_mm256_cmpgt_epi32(q, seven)));
          for (int64_t r = 0; r < m; r++) part[r] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + r * k + i), part[r]);
        }
        const __m256 scale = _mm256_set1_ps(nf4_absmax(w, b0 + b));
        for (int64_t r = 0; r < m; r++) acc[r] = _mm256_fmadd_ps(part[r], scale, acc[r]);
      }
    }
    for (int64_t r = 0; r < m; r++) y[r * n + j] = hsum_avx2(acc[r]);
  }
}

__attribute__((target("avx2,fma,f16c"))) static void fused_rows_m1(const qweight *w, const float *x, float *y, int64_t start,
                                                                   int64_t end) {
  fused_rows_avx2(w, x, 1, y, start, end);
}

__attribute__((target("avx2,fma,f16c"))) static void fused_rows_any(const qweight *w, const float *x, int64_t m, float *y,
                                                                    int64_t start, int64_t end) {
  fused_rows_avx2(w, x, m, y, start, end);
}
#endif

static void dequant_row(const qweight *w, int64_t j, float *out) {
#ifdef HL_X86
  if (has_avx2) {
    dequant_row_avx2(w, j, out);
    return;
  }
#endif
  dequant_row_scalar(w, j, out);
}

static float dot(const float *a, const float *b, int64_t k) {
#ifdef HL_X86
  if (has_avx2) return dot_avx2(a, b, k);
#endif
  double s = 0;
  for (int64_t i = 0; i < k; i++) s += a[i] * b[i];
  return (float)s;
}

/* ---- a parallel loop over [0, total) split into `parts` contiguous ranges (pthreads, per call) ---- */
typedef void (*range_fn)(void *ctx, int64_t start, int64_t end);
typedef struct {
  range_fn fn;
  void *ctx;
  int64_t start, end;
} range_job;

static void *run_range(void *p) {
  range_job *j = (range_job *)p;
  j->fn(j->ctx, j->start, j->end);
  return NULL;
}

static void parallel_for(int64_t total, int parts, range_fn fn, void *ctx) {
  if (parts < 1) parts = 1;
  if (parts > MAX_THREADS) parts = MAX_THREADS;
  if (parts > total) parts = (int)(total > 0 ? total : 1);
  range_job jobs[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  bool started[MAX_THREADS] = {false};
  for (int t = 0; t < parts; t++) {
    jobs[t] = (range_job){fn, ctx, total * t / parts, total * (t + 1) / parts};
    if (t > 0) started[t] = pthread_create(&ids[t], NULL, run_range, &jobs[t]) == 0;
  }
  run_range(&jobs[0]);
  for (int t = 1; t < parts; t++) {
    if (started[t]) pthread_join(ids[t], NULL);
    else run_range(&jobs[t]); /* no thread could be started: run it here */
  }
}

static int threads_for(int64_t work) {
  if (work < (1 << 18)) return 1;
  return quant_threads > 0 ? quant_threads : openblas_get_num_threads();
}

/* ---- y[m, n] = x[m, k] · Wᵀ for small m: one dequantised row at a time ---- */
typedef struct {
  const qweight *w;
  const float *x;
  float *y;
  int64_t m;
} small_ctx;

static void small_forward(void *p, int64_t start, int64_t end) {
  small_ctx *c = (small_ctx *)p;
  const int64_t k = c->w->k, n = c->w->n;
#ifdef HL_X86
  if (has_avx2 && k % 8 == 0 && (c->w->format != F_NF4 || c->w->block % 8 == 0)) {
    if (c->m == 1) fused_rows_m1(c->w, c->x, c->y, start, end);
    else fused_rows_any(c->w, c->x, c->m, c->y, start, end);
    return;
  }
#endif
  float *row = (float *)aligned_alloc(64, ((k * sizeof(float) + 63) / 64) * 64);
  if (!row) return;
  for (int64_t j = start; j < end; j++) {
    dequant_row(c->w, j, row);
    for (int64_t i = 0; i < c->m; i++) c->y[i * n + j] = dot(c->x + i * k, row, k);
  }
  free(row);
}

/* Dequantise rows [j0, j0 + rows) into tile [rows, k]. */
typedef struct {
  const qweight *w;
  float *tile;
  int64_t j0;
} tile_ctx;

static void tile_fill(void *p, int64_t start, int64_t end) {
  tile_ctx *c = (tile_ctx *)p;
  for (int64_t r = start; r < end; r++) dequant_row(c->w, c->j0 + r, c->tile + r * c->w->k);
}

static int64_t tile_rows(const qweight *w) {
  int64_t rows = (1 << 17) / (w->k > 0 ? w->k : 1); /* about 512 KB of float32 per tile: it stays in L2 */
  if (rows < 32) rows = 32;
  if (rows > w->n) rows = w->n;
  return rows;
}

/* forward (transposed = false): y[m, n] = x[m, k] · Wᵀ;  backward (transposed = true): y[m, k] = x[m, n] · W. */
static bool frozen_product(const qweight *w, const float *x, int64_t m, float *y, bool transposed) {
  const int64_t n = w->n, k = w->k;
  if (m == 0) return true;
  const int prev = openblas_get_num_threads();
  const int want = threads_for(m * n * k);
  if (want != prev) openblas_set_num_threads(want);
  bool ok = true;
  if (w->format == F_F32) {
    const float *W = (const float *)w->data;
    if (!transposed) {
      if (m == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, 1.0f, W, (int)k, x, 1, 0.0f, y, 1);
      else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x, (int)k, W, (int)k, 0.0f, y, (int)n);
    } else {
      if (m == 1) cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, (int)k, 1.0f, W, (int)k, x, 1, 0.0f, y, 1);
      else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)n, 1.0f, x, (int)n, W, (int)k, 0.0f, y, (int)k);
    }
  } else if (!transposed && m <= SMALL_M) {
    small_ctx c = {w, x, y, m};
    parallel_for(n, threads_for(n * k), small_forward, &c);
  } else {
    const int64_t rows = tile_rows(w);
    float *tile = (float *)aligned_alloc(64, ((rows * k * sizeof(float) + 63) / 64) * 64);
    if (!tile) ok = false;
    for (int64_t j0 = 0; ok && j0 < n; j0 += rows) {
      const int64_t r = j0 + rows <= n ? rows : n - j0;
      tile_ctx c = {w, tile, j0};
      parallel_for(r, threads_for(r * k), tile_fill, &c);
      if (!transposed) /* y[:, j0:j0+r] = x · tileᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)r, (int)k, 1.0f, x, (int)k, tile, (int)k, 0.0f, y + j0, (int)n);
      else /* y += x[:, j0:j0+r] · tile */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)r, 1.0f, x + j0, (int)n, tile, (int)k, j0 == 0 ? 0.0f : 1.0f, y, (int)k);
    }
    free(tile);
  }
  if (want != prev) openblas_set_num_threads(prev);
  return ok;
}

/* ---- quantisation (the arithmetic of @hyperllama/lora's quantizeNf4, in doubles) ---- */
static int nearest(const double *code, int len, double v) {
  int lo = 0, hi = len - 1;
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (code[mid] <= v) lo = mid;
    else hi = mid;
  }
  return v - code[lo] <= code[hi] - v ? lo : hi;
}

typedef struct {
  qweight *w;
  const float *values;
  float *absmax;
} quant_ctx;

/* Blocks [start, end): their absmax and packed codes (blocks are an even number of elements: whole bytes each). */
static void quantize_blocks(void *p, int64_t start, int64_t end) {
  quant_ctx *c = (quant_ctx *)p;
  const int block = c->w->block;
  uint8_t *packed = (uint8_t *)c->w->data;
  for (int64_t b = start; b < end; b++) {
    const float *v = c->values + b * block;
    float m = 0;
    for (int i = 0; i < block; i++) {
      const float a = fabsf(v[i]);
      if (a > m) m = a;
    }
    c->absmax[b] = m;
    const double inv = m > 0 ? 1.0 / (double)m : 0.0;
    for (int64_t i = b * block; i < (b + 1) * block; i++) {
      const int q = nearest(NF4D, 16, (double)c->values[i] * inv);
      packed[i >> 1] |= (i & 1) ? q : q << 4;
    }
  }
}

static bool quantize_nf4(qweight *w, const float *values) {
  const int64_t total = w->n * w->k, nb = total / w->block;
  float *absmax = (float *)malloc(nb * sizeof(float));
  if (!absmax) return false;
  memset(w->data, 0, total / 2);
  quant_ctx c = {w, values, absmax};
  parallel_for(nb, threads_for(total), quantize_blocks, &c);
  double sum = 0;
  for (int64_t b = 0; b < nb; b++) sum += absmax[b];
  w->offset = (float)(sum / (double)nb);
  const double offset = w->offset;
  for (int64_t g = 0; g * DQ_GROUP < nb; g++) {
    const int64_t start = g * DQ_GROUP, end = start + DQ_GROUP < nb ? start + DQ_GROUP : nb;
    double s = 0;
    for (int64_t i = start; i < end; i++) s = fmax(s, fabs((double)absmax[i] - offset));
    w->scales[g] = (float)s;
    const double inv = s > 0 ? 1.0 / s : 0.0;
    for (int64_t i = start; i < end; i++) w->codes[i] = (uint8_t)nearest(DYN, 256, ((double)absmax[i] - offset) * inv);
  }
  free(absmax);
  return true;
}

/* ---- N-API glue ---- */
static void finalize_weight(napi_env env, void *data, void *hint) {
  (void)hint;
  qweight *w = (qweight *)data;
  if (!w->released) {
    free(w->data);
    free(w->codes);
    free(w->scales);
    int64_t adjusted;
    napi_adjust_external_memory(env, -(int64_t)w->bytes, &adjusted);
  }
  free(w);
}

static qweight *get_weight(napi_env env, napi_value v) {
  qweight *w = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, (void **)&w) != napi_ok || !w) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "expected a frozen-weight handle from frozenCreate");
    return NULL;
  }
  if (w->released) {
    napi_throw_error(env, "HYPERLLAMA_NATIVE", "the frozen weight was released");
    return NULL;
  }
  return w;
}

static bool typed_view(napi_env env, napi_value v, napi_typedarray_type *type, void **data, size_t *bytes) {
  bool is_typed = false;
  size_t length = 0;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return false;
  if (napi_get_typedarray_info(env, v, type, &length, data, NULL, NULL) != napi_ok) return false;
  size_t el = 1;
  switch (*type) {
    case napi_int16_array: case napi_uint16_array: el = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
    default: el = 1;
  }
  *bytes = length * el;
  return true;
}

static bool f32_view(napi_env env, napi_value v, float **data, size_t *length) {
  napi_typedarray_type type;
  size_t bytes;
  if (!typed_view(env, v, &type, (void **)data, &bytes) || type != napi_float32_array) return false;
  *length = bytes / 4;
  return true;
}

static napi_value frozen_create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  QCHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t format = -1, block = 0;
  int64_t n = 0, k = 0;
  if (argc != 4 || napi_get_value_int32(env, argv[0], &format) != napi_ok || napi_get_value_int64(env, argv[1], &n) != napi_ok ||
      napi_get_value_int64(env, argv[2], &k) != napi_ok || napi_get_value_int32(env, argv[3], &block) != napi_ok) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "frozenCreate(format, n, k, blockSize)");
    return NULL;
  }
  if (format < F_F32 || format > F_NF4 || n < 1 || k < 1 || n > INT32_MAX || k > INT32_MAX ||
      (format == F_NF4 && (block < 8 || block % 8 != 0 || k % block != 0))) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE",
                           "frozenCreate: format must be 0-3, n and k positive, and for NF4 blockSize a multiple of 8 dividing k");
    return NULL;
  }
  qweight *w = (qweight *)calloc(1, sizeof(qweight));
  if (!w) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE_OOM", "frozenCreate: out of memory");
    return NULL;
  }
  w->format = format;
  w->n = n;
  w->k = k;
  w->block = format == F_NF4 ? block : 0;
  const size_t total = (size_t)n * (size_t)k;
  size_t data_bytes = format == F_F32 ? total * 4 : format == F_NF4 ? total / 2 : total * 2;
  w->data = aligned_alloc(64, ((data_bytes + 63) / 64) * 64);
  w->bytes = data_bytes;
  if (format == F_NF4 && w->data) {
    const size_t nb = total / block, ng = (nb + DQ_GROUP - 1) / DQ_GROUP;
    w->codes = (uint8_t *)malloc(nb);
    w->scales = (float *)malloc(ng * sizeof(float));
    w->bytes += nb + ng * 4 + 4;
  }
  if (!w->data || (format == F_NF4 && (!w->codes || !w->scales))) {
    free(w->data);
    free(w->codes);
    free(w->scales);
    free(w);
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE_OOM", "frozenCreate: out of memory");
    return NULL;
  }
  if (format != F_NF4) memset(w->data, 0, data_bytes);
  else {
    memset(w->data, 0x77, data_bytes); /* code 7 = 0.0 */
    memset(w->codes, 0, total / block);
    memset(w->scales, 0, ((total / block + DQ_GROUP - 1) / DQ_GROUP) * sizeof(float));
  }
  int64_t adjusted;
  napi_adjust_external_memory(env, (int64_t)w->bytes, &adjusted);
  napi_value out;
  QCHECK(napi_create_external(env, w, finalize_weight, NULL, &out));
  return out;
}

static napi_value frozen_fill(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  QCHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "frozenFill(handle, src, srcDtype)");
    return NULL;
  }
  qweight *w = get_weight(env, argv[0]);
  if (!w) return NULL;
  napi_typedarray_type type;
  void *src;
  size_t bytes;
  int32_t dtype = -1;
  if (!typed_view(env, argv[1], &type, &src, &bytes) || napi_get_value_int32(env, argv[2], &dtype) != napi_ok || dtype < 0 || dtype > 2) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "frozenFill: src must be a typed array and srcDtype 0 (f32), 1 (bf16) or 2 (f16)");
    return NULL;
  }
  const size_t total = (size_t)w->n * (size_t)w->k;
  if (bytes != total * (dtype == 0 ? 4 : 2)) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE", "frozenFill: src does not hold n·k values of srcDtype");
    return NULL;
  }
  if ((int)w->format == dtype) { /* same encoding: a copy (f32 = 0, bf16 = 1, f16 = 2) */
    memcpy(w->data, src, bytes);
    return NULL;
  }
  /* Decode to float32 (per row, or the whole matrix for NF4, which needs every block's absmax). */
  const bool whole = w->format == F_NF4;
  const size_t chunk = whole ? total : (size_t)w->k;
  float *tmp = dtype == 0 ? NULL : (float *)malloc(chunk * sizeof(float));
  if (dtype != 0 && !tmp) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE_OOM", "frozenFill: out of memory");
    return NULL;
  }
  for (size_t start = 0; start < total; start += chunk) {
    const float *f;
    if (dtype == 0) f = (const float *)src + start;
    else {
      const uint16_t *h = (const uint16_t *)src + start;
      for (size_t i = 0; i < chunk; i++) tmp[i] = dtype == 1 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
      f = tmp;
    }
    if (w->format == F_F32) memcpy((float *)w->data + start, f, chunk * 4);
    else if (w->format == F_BF16) for (size_t i = 0; i < chunk; i++) ((uint16_t *)w->data)[start + i] = f32_to_bf16(f[i]);
    else if (w->format == F_F16) for (size_t i = 0; i < chunk; i++) ((uint16_t *)w->data)[start + i] = f32_to_f16(f[i]);
    else {
      for (size_t i = 0; i < total; i++)
        if (!isfinite(f[i])) {
          free(tmp);
          napi_throw_range_error(env, "HYPERLLAMA_NATIVE", "frozenFill: a non-finite value cannot be quantised to NF4");
          return NULL;
        }
      if (!quantize_nf4(w, f)) {
        free(tmp);
        napi_throw_range_error(env, "HYPERLLAMA_NATIVE_OOM", "frozenFill: out of memory");
        return NULL;
      }
    }
  }
  free(tmp);
  return NULL;
}

static napi_value frozen_matmul_impl(napi_env env, napi_callback_info info, bool transposed) {
  size_t argc = 4;
  napi_value argv[4];
  QCHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "frozenMatMul(handle, x, m, y)");
    return NULL;
  }
  qweight *w = get_weight(env, argv[0]);
  if (!w) return NULL;
  float *x, *y;
  size_t lx, ly;
  int64_t m;
  if (!f32_view(env, argv[1], &x, &lx) || !f32_view(env, argv[3], &y, &ly) || napi_get_value_int64(env, argv[2], &m) != napi_ok) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "frozenMatMul: x and y must be Float32Arrays and m an integer");
    return NULL;
  }
  const int64_t in = transposed ? w->n : w->k, out = transposed ? w->k : w->n;
  if (m < 0 || (uint64_t)(m * in) > lx || (uint64_t)(m * out) > ly) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE", "frozenMatMul: sizes exceed the arrays");
    return NULL;
  }
  if (!frozen_product(w, x, m, y, transposed)) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE_OOM", "frozenMatMul: out of memory for a dequantised tile");
    return NULL;
  }
  return NULL;
}

static napi_value frozen_matmul(napi_env env, napi_callback_info info) { return frozen_matmul_impl(env, info, false); }
static napi_value frozen_matmul_t(napi_env env, napi_callback_info info) { return frozen_matmul_impl(env, info, true); }

static napi_value frozen_dequantize(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  QCHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  qweight *w = argc == 2 ? get_weight(env, argv[0]) : NULL;
  if (!w) return NULL;
  float *out;
  size_t len;
  if (!f32_view(env, argv[1], &out, &len) || len != (size_t)(w->n * w->k)) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "frozenDequantize: out must be a Float32Array of n·k values");
    return NULL;
  }
  for (int64_t j = 0; j < w->n; j++) dequant_row(w, j, out + j * w->k);
  return NULL;
}

static napi_value copy_to_typed(napi_env env, const void *src, size_t bytes, napi_typedarray_type type, size_t length) {
  void *data;
  napi_value ab, out;
  if (napi_create_arraybuffer(env, bytes, &data, &ab) != napi_ok) return NULL;
  memcpy(data, src, bytes);
  if (napi_create_typedarray(env, type, length, ab, 0, &out) != napi_ok) return NULL;
  return out;
}

static napi_value frozen_nf4_parts(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  QCHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  qweight *w = argc == 1 ? get_weight(env, argv[0]) : NULL;
  if (!w) return NULL;
  if (w->format != F_NF4) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "frozenNf4Parts: the weight is not NF4");
    return NULL;
  }
  const size_t total = (size_t)(w->n * w->k), nb = total / w->block, ng = (nb + DQ_GROUP - 1) / DQ_GROUP;
  napi_value obj, offset;
  QCHECK(napi_create_object(env, &obj));
  QCHECK(napi_set_named_property(env, obj, "packed", copy_to_typed(env, w->data, total / 2, napi_uint8_array, total / 2)));
  QCHECK(napi_set_named_property(env, obj, "codes", copy_to_typed(env, w->codes, nb, napi_uint8_array, nb)));
  QCHECK(napi_set_named_property(env, obj, "scales", copy_to_typed(env, w->scales, ng * 4, napi_float32_array, ng)));
  QCHECK(napi_create_double(env, w->offset, &offset));
  QCHECK(napi_set_named_property(env, obj, "offset", offset));
  return obj;
}

static napi_value frozen_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  QCHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  qweight *w = argc == 1 ? get_weight(env, argv[0]) : NULL;
  if (!w) return NULL;
  QCHECK(napi_create_double(env, (double)w->bytes, &out));
  return out;
}

static napi_value frozen_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  QCHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  qweight *w = NULL;
  if (argc != 1 || napi_get_value_external(env, argv[0], (void **)&w) != napi_ok || !w) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "frozenRelease(handle)");
    return NULL;
  }
  if (w->released) return NULL;
  free(w->data);
  free(w->codes);
  free(w->scales);
  w->data = NULL;
  w->codes = NULL;
  w->scales = NULL;
  w->released = true;
  int64_t adjusted;
  napi_adjust_external_memory(env, -(int64_t)w->bytes, &adjusted);
  return NULL;
}

static napi_value frozen_set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t t = 0;
  QCHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || napi_get_value_int32(env, argv[0], &t) != napi_ok || t < 1) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE", "frozenSetThreads takes a positive integer");
    return NULL;
  }
  quant_threads = t;
  return NULL;
}

napi_value hyperllama_quant_init(napi_env env, napi_value exports) {
  init_tables();
#ifdef HL_X86
  __builtin_cpu_init();
  has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#endif
  napi_property_descriptor props[] = {
      {"frozenCreate", NULL, frozen_create, NULL, NULL, NULL, napi_default, NULL},
      {"frozenFill", NULL, frozen_fill, NULL, NULL, NULL, napi_default, NULL},
      {"frozenMatMul", NULL, frozen_matmul, NULL, NULL, NULL, napi_default, NULL},
      {"frozenMatMulT", NULL, frozen_matmul_t, NULL, NULL, NULL, napi_default, NULL},
      {"frozenDequantize", NULL, frozen_dequantize, NULL, NULL, NULL, napi_default, NULL},
      {"frozenNf4Parts", NULL, frozen_nf4_parts, NULL, NULL, NULL, napi_default, NULL},
      {"frozenBytes", NULL, frozen_bytes, NULL, NULL, NULL, napi_default, NULL},
      {"frozenRelease", NULL, frozen_release, NULL, NULL, NULL, napi_default, NULL},
      {"frozenSetThreads", NULL, frozen_set_threads, NULL, NULL, NULL, napi_default, NULL},
  };
  QCHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}
