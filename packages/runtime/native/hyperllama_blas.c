/*
 * Optional native matMul for @hyperllama/runtime: an N-API addon that runs float32 (batched) matrix products with
 * OpenBLAS's cblas_sgemm directly on the memory of the typed arrays it is given (the wasm heap or a JS array).
 *
 *   sgemmBatched(a, b, c, batch, m, n, k, transposeA, transposeB, strideA, strideB)
 *     a, b, c: Float32Array views; for i in [0, batch): C_i[m, n] = op(A_i) · op(B_i), where A_i starts at
 *     i·strideA floats in a (strideA 0 = shared), op(A_i) is [m, k] (stored [k, m] when transposeA), likewise
 *     op(B_i) is [k, n] (stored [n, k] when transposeB), and C_i starts at i·m·n.
 *   softmaxCrossEntropy(logits, targets, weights, losses, grad, rows, classes)
 *     per row r of logits [rows, classes]: losses[r] = weights[r] · (logsumexp(row) − row[targets[r]]) and
 *     grad[r, :] = weights[r] · (softmax(row) − onehot(targets[r])) — the loss and its gradient in three passes over
 *     the row, without the [rows, classes] temporaries of composed ops. targets outside [0, classes) give loss 0 and a
 *     zero gradient row. grad may be logits itself.
 *   threads() → OpenBLAS's thread count;  setThreads(n) sets it.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <cblas.h>
#include <node_api.h>

#define CHECK(call)                                                                   \
  do {                                                                                \
    if ((call) != napi_ok) {                                                          \
      napi_throw_error(env, "HYPERLLAMA_NATIVE", "N-API call failed: " #call);        \
      return NULL;                                                                    \
    }                                                                                 \
  } while (0)

/* Products below this many multiply-adds run on one thread: waking OpenBLAS's workers costs more than they save
 * (decoding one token is hundreds of such products). */
#define SMALL_PRODUCT (1 << 22)
static int max_threads = 0;  /* setThreads(n); 0 = OpenBLAS's own choice */
static int current_threads = 0;

static void use_threads(int n) {
  if (n < 1) n = current_threads ? current_threads : openblas_get_num_threads();
  if (n != current_threads) {
    openblas_set_num_threads(n);
    current_threads = n;
  }
}

static bool float_view(napi_env env, napi_value v, float **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return false;
  if (napi_get_typedarray_info(env, v, &type, length, &ptr, NULL, NULL) != napi_ok) return false;
  if (type != napi_float32_array) return false;
  *data = (float *)ptr;
  return true;
}

static napi_value sgemm_batched(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 11) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "sgemmBatched takes 11 arguments");
    return NULL;
  }
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!float_view(env, argv[0], &a, &la) || !float_view(env, argv[1], &b, &lb) || !float_view(env, argv[2], &c, &lc)) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE", "sgemmBatched: a, b and c must be Float32Arrays");
    return NULL;
  }
  int64_t dims[5];
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_int64(env, argv[3 + i], &dims[i]));
  bool ta, tb;
  CHECK(napi_get_value_bool(env, argv[7], &ta));
  CHECK(napi_get_value_bool(env, argv[8], &tb));
  int64_t stride_a, stride_b;
  CHECK(napi_get_value_int64(env, argv[9], &stride_a));
  CHECK(napi_get_value_int64(env, argv[10], &stride_b));
  const int64_t batch = dims[0], m = dims[1], n = dims[2], k = dims[3];
  if (batch < 0 || m < 0 || n < 0 || k < 0 || stride_a < 0 || stride_b < 0 ||
      (uint64_t)((batch ? batch - 1 : 0) * stride_a + m * k) > la ||
      (uint64_t)((batch ? batch - 1 : 0) * stride_b + k * n) > lb || (uint64_t)(batch * m * n) > lc) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE", "sgemmBatched: sizes exceed the arrays");
    return NULL;
  }
  use_threads(batch * m * n * k < SMALL_PRODUCT ? 1 : max_threads);
  for (int64_t i = 0; i < batch; i++) {
    float *ai = a + i * stride_a, *bi = b + i * stride_b, *ci = c + i * m * n;
    // Matrix-vector products (decoding one token) run 2-3x faster as sgemv than as sgemm in OpenBLAS.
    if (m == 1) {  // c[n] = op(B)ᵀ a: B stored [k, n], or [n, k] when transposed
      cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? (int)n : (int)k, tb ? (int)k : (int)n, 1.0f, bi, tb ? (int)k : (int)n, ai, 1, 0.0f, ci, 1);
      continue;
    }
    if (n == 1) {  // c[m] = op(A) b: A stored [m, k], or [k, m] when transposed
      cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, ta ? (int)k : (int)m, ta ? (int)m : (int)k, 1.0f, ai, ta ? (int)m : (int)k, bi, 1, 0.0f, ci, 1);
      continue;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1.0f,
                ai, ta ? (int)m : (int)k, bi, tb ? (int)k : (int)n, 0.0f, ci, (int)n);
  }
  return NULL;
}

static bool int_view(napi_env env, napi_value v, int32_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return false;
  if (napi_get_typedarray_info(env, v, &type, length, &ptr, NULL, NULL) != napi_ok) return false;
  if (type != napi_int32_array) return false;
  *data = (int32_t *)ptr;
  return true;
}

/* exp(x) for x <= 0 (softmax after subtracting the row's max), without libm: exp(x) = 2^n · e^r with n = round(x/ln 2),
 * |r| <= ln2/2, e^r from Cephes' degree-6 polynomial (about 1 ulp). Only float arithmetic, int conversion and bit
 * moves, so the loops below vectorise at each clone's width (glibc's vector expf would tie the binary to libmvec). */
static inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x; /* keeps 2^n normal; exp(-87) ~ 1.6e-38 is 0 for a softmax weight */
  const int n = (int)(x * 1.44269504088896341f - 0.5f); /* round to nearest for x <= 0 (truncation toward 0) */
  const float r = (x - (float)n * 0.693359375f) + (float)n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  union { uint32_t u; float f; } scale = {.u = (uint32_t)(n + 127) << 23};
  return er * scale.f;
}

/* One row: returns the weighted loss and writes the weighted gradient (exp values first, then scaled in place).
 * g may be x itself (the gradient then overwrites the logits). The shipped binary is built for baseline x86-64, so the
 * row runs in an AVX-512 or AVX2 clone where the CPU has one (chosen once at load time). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#endif
static float softmax_ce_row(const float *x, float *g, int64_t classes, int32_t target, float weight) {
  const bool valid = target >= 0 && target < classes;
  const float picked = valid ? x[target] : 0.0f;
  float m = -FLT_MAX;
  for (int64_t j = 0; j < classes; j++) m = x[j] > m ? x[j] : m;
  float sum = 0.0f;
  for (int64_t j = 0; j < classes; j++) {
    const float e = exp_nonpositive(x[j] - m);
    g[j] = e;
    sum += e;
  }
  const float scale = weight / sum;
  for (int64_t j = 0; j < classes; j++) g[j] *= scale;
  if (!valid) {
    for (int64_t j = 0; j < classes; j++) g[j] = 0.0f;
    return 0.0f;
  }
  g[target] -= weight;
  return weight * (m + logf(sum) - picked);
}

static napi_value softmax_cross_entropy(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  float *logits, *weights, *losses, *grad;
  int32_t *targets;
  size_t l_logits, l_targets, l_weights, l_losses, l_grad;
  int64_t rows, classes;
  if (argc != 7 || !float_view(env, argv[0], &logits, &l_logits) || !int_view(env, argv[1], &targets, &l_targets) ||
      !float_view(env, argv[2], &weights, &l_weights) || !float_view(env, argv[3], &losses, &l_losses) ||
      !float_view(env, argv[4], &grad, &l_grad) || napi_get_value_int64(env, argv[5], &rows) != napi_ok ||
      napi_get_value_int64(env, argv[6], &classes) != napi_ok) {
    napi_throw_type_error(env, "HYPERLLAMA_NATIVE",
                          "softmaxCrossEntropy(logits: Float32Array, targets: Int32Array, weights: Float32Array, losses: Float32Array, grad: Float32Array, rows, classes)");
    return NULL;
  }
  if (rows < 0 || classes < 1 || (uint64_t)(rows * classes) > l_logits || (uint64_t)(rows * classes) > l_grad ||
      (uint64_t)rows > l_targets || (uint64_t)rows > l_weights || (uint64_t)rows > l_losses) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE", "softmaxCrossEntropy: sizes exceed the arrays");
    return NULL;
  }
  for (int64_t r = 0; r < rows; r++) {
    losses[r] = softmax_ce_row(logits + r * classes, grad + r * classes, classes, targets[r], weights[r]);
  }
  return NULL;
}

static napi_value threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &out));
  return out;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_range_error(env, "HYPERLLAMA_NATIVE", "setThreads takes a positive integer");
    return NULL;
  }
  max_threads = n;
  use_threads(n);
  return NULL;
}

/* Frozen weights in native memory (hyperllama_quant.c) add their functions to the same exports. */
napi_value hyperllama_quant_init(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemmBatched", NULL, sgemm_batched, NULL, NULL, NULL, napi_default, NULL},
      {"threads", NULL, threads, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"softmaxCrossEntropy", NULL, softmax_cross_entropy, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, 4, props));
  return hyperllama_quant_init(env, exports);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
