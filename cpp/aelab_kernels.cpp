// aelab_kernels.cpp — the places where aelab's training step does less work than
// the same step written with stock ATen operators (fused Adam, fused BCE below;
// also aelab_clear_grad and aelab_channels_last, further down).
//
// 1. aelab_fused_adam: Adam / AdamW through ATen's fused multi-tensor kernel
//    (one pass over each parameter, instead of the seven or so elementwise
//    operators of torch.optim.Adam's default loop). Same update rule.
//
// 2. aelab_bce_logits: binary cross-entropy on logits whose forward pass also
//    writes the gradient, so that the loss and its gradient cost one pass over
//    the batch instead of ten (log-sigmoid, products, sums, then sigmoid,
//    difference and scaling in backward). CPU float32 only; elsewhere the
//    caller uses ATen's binary_cross_entropy_with_logits.
//
//    Per element, with e = exp(-|z|):
//      loss = max(z, 0) - z·x + log1p(e)
//      dloss/dz = sigmoid(z) - x,   sigmoid(z) = 1/(1+e) if z ≥ 0, else e/(1+e)
//    The vector path takes exp from libtorch's own SLEEF (the routine ATen's
//    kernels use) and log1p(e), e ∈ (0, 1], from the series
//      log1p(e) = 2·atanh(u) = 2u·(1 + u²/3 + u⁴/5 + …),  u = e/(2+e) ≤ 1/3,
//    whose terms shrink ninefold each: eight of them leave an error near 1e-9,
//    well under float32's rounding, for less work than a general log1p.
#include <torch/torch.h>
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
extern "C" {
__m256 Sleef_expf8_u10(__m256);
}
#endif

namespace {
char* dup_msg(const std::string& s) {
  char* r = static_cast<char*>(malloc(s.size() + 1));
  memcpy(r, s.c_str(), s.size() + 1);
  return r;
}

// One element: returns its loss and writes its gradient (times scale) to *g.
inline double bce_one(float z, float x, float scale, float* g) {
  float e = std::exp(-std::fabs(z));
  float r = 1.0f / (1.0f + e);
  float s = z >= 0.0f ? r : e * r;
  *g = (s - x) * scale;
  return static_cast<double>(std::fmax(z, 0.0f) - z * x + std::log1p(e));
}

double bce_scalar(const float* z, const float* x, float* g, float scale, int64_t b, int64_t e) {
  double sum = 0.0;
  for (int64_t i = b; i < e; ++i) sum += bce_one(z[i], x[i], scale, g + i);
  return sum;
}

#if defined(__x86_64__)
// log1p(e) from u = e/(2+e)
__attribute__((target("avx2,fma"))) inline __m256 log1p_series(__m256 u) {
  const __m256 u2 = _mm256_mul_ps(u, u);
  __m256 p = _mm256_set1_ps(1.0f / 15.0f);
  p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.0f / 13.0f));
  p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.0f / 11.0f));
  p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.0f / 9.0f));
  p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.0f / 7.0f));
  p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.0f / 5.0f));
  p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.0f / 3.0f));
  p = _mm256_fmadd_ps(p, u2, _mm256_set1_ps(1.0f));
  return _mm256_mul_ps(_mm256_add_ps(u, u), p);
}

__attribute__((target("avx2,fma"))) double bce_avx2(const float* z, const float* x, float* g,
                                                     float scale, int64_t b, int64_t e) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 two = _mm256_set1_ps(2.0f);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  double sum = 0.0;
  int64_t i = b;
  // float lanes summed into a double every 1024 elements keep the rounding small
  while (i + 8 <= e) {
    int64_t stop = std::min(e, i + 1024);
    __m256 acc = zero;
    for (; i + 8 <= stop; i += 8) {
      __m256 vz = _mm256_loadu_ps(z + i);
      __m256 vx = _mm256_loadu_ps(x + i);
      __m256 neg_abs = _mm256_or_ps(vz, sign);  // -|z|
      __m256 ex = Sleef_expf8_u10(neg_abs);
      // one division for both 1/(1+e) and e/(2+e)
      __m256 a1 = _mm256_add_ps(one, ex);
      __m256 a2 = _mm256_add_ps(two, ex);
      __m256 d = _mm256_div_ps(one, _mm256_mul_ps(a1, a2));
      __m256 r = _mm256_mul_ps(a2, d);
      __m256 u = _mm256_mul_ps(_mm256_mul_ps(ex, a1), d);
      __m256 l = _mm256_add_ps(_mm256_fnmadd_ps(vz, vx, _mm256_max_ps(vz, zero)),
                               log1p_series(u));
      acc = _mm256_add_ps(acc, l);
      __m256 s = _mm256_blendv_ps(r, _mm256_mul_ps(ex, r), _mm256_cmp_ps(vz, zero, _CMP_LT_OQ));
      _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_sub_ps(s, vx), vscale));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    for (float v : lanes) sum += v;
  }
  return sum + bce_scalar(z, x, g, scale, i, e);
}

bool has_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
#endif

// Σ loss over all elements of z, x; writes the gradient (times scale) into g.
// The work is split by libtorch's own TensorIterator, so it runs on libtorch's
// intra-op threads (an OpenMP pragma here would need this file built with
// OpenMP, and a second runtime). Each thread adds into its own slot; the slots
// are summed in order, so the result does not depend on timing.
double bce_sum(const at::Tensor& z, const at::Tensor& x, at::Tensor& g, float scale) {
  auto iter = at::TensorIteratorConfig()
                  .add_output(g)
                  .add_const_input(z)
                  .add_const_input(x)
                  .check_all_same_dtype(true)
                  .build();
  std::vector<double> partial(std::max(1, at::get_num_threads()), 0.0);
  iter.for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        double sum = 0.0;
        char* gp = data[0];
        const char* zp = data[1];
        const char* xp = data[2];
        const bool contiguous = strides[0] == sizeof(float) && strides[1] == sizeof(float) &&
                                strides[2] == sizeof(float);
        for (int64_t j = 0; j < size1; ++j) {
          if (contiguous) {
            auto* gf = reinterpret_cast<float*>(gp);
            auto* zf = reinterpret_cast<const float*>(zp);
            auto* xf = reinterpret_cast<const float*>(xp);
#if defined(__x86_64__)
            if (has_avx2()) {
              sum += bce_avx2(zf, xf, gf, scale, 0, size0);
            } else {
              sum += bce_scalar(zf, xf, gf, scale, 0, size0);
            }
#else
            sum += bce_scalar(zf, xf, gf, scale, 0, size0);
#endif
          } else {
            for (int64_t i = 0; i < size0; ++i) {
              sum += bce_one(*reinterpret_cast<const float*>(zp + i * strides[1]),
                             *reinterpret_cast<const float*>(xp + i * strides[2]), scale,
                             reinterpret_cast<float*>(gp + i * strides[0]));
            }
          }
          gp += strides[3];
          zp += strides[4];
          xp += strides[5];
        }
        size_t t = static_cast<size_t>(at::get_thread_num());
        partial[t < partial.size() ? t : 0] += sum;
      },
      32768);
  double total = 0.0;
  for (double v : partial) total += v;
  return total;
}

bool bce_supported(const at::Tensor& z, const at::Tensor& x) {
  return z.device().is_cpu() && x.device().is_cpu() && z.scalar_type() == at::kFloat &&
         x.scalar_type() == at::kFloat && z.sizes() == x.sizes() && !x.requires_grad();
}

struct BceLogits : public torch::autograd::Function<BceLogits> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& z,
                            const at::Tensor& x, double scale) {
    at::Tensor g = at::empty_like(z, at::MemoryFormat::Contiguous);
    double sum = bce_sum(z, x, g, static_cast<float>(scale));
    ctx->saved_data["g"] = g;
    return at::scalar_tensor(sum * scale, z.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    at::Tensor g = ctx->saved_data["g"].toTensor();
    const at::Tensor& go = grads[0];
    // the loss is usually the last node (its gradient is 1): skip the product then
    if (!(go.device().is_cpu() && go.numel() == 1 && go.item<float>() == 1.0f)) g = g * go;
    return {g, at::Tensor(), at::Tensor()};
  }
};
}  // namespace

extern "C" {

// Drop a parameter's gradient (PyTorch's zero_grad(set_to_none=True)): backward
// then hands its fresh gradient over instead of adding it to a zeroed one.
void aelab_clear_grad(at::Tensor* p) {
  if (p->grad().defined()) p->mutable_grad() = at::Tensor();
}

// Store a 4-d parameter in channels-last order (NHWC), in place: every handle on
// it (the VarStore's, the layer's) sees the new strides. oneDNN's convolution,
// max-pool and nearest upsampling then run on NHWC without a reorder per call.
// The strides are made explicitly: for a weight with one input channel, such as
// the first convolution's on grey images, contiguous(ChannelsLast) keeps NCHW
// strides (both layouts describe it), ATen then takes it for NCHW, and that layer
// and every pooling after it would run NCHW (max-pool three times slower).
void aelab_channels_last(at::Tensor* p, char** err) {
  try {
    at::NoGradGuard no_grad;
    if (p->dim() == 4) {
      at::Tensor q = at::empty_like(*p, p->options(), at::MemoryFormat::ChannelsLast);
      q.copy_(*p);
      p->set_data(q);
    }
  } catch (const std::exception& e) {
    *err = dup_msg(e.what());
  }
}

// Returns 1 when the update was applied, 0 when this device or dtype has no fused
// kernel (nothing was changed), -1 on an error (message in *err).
int aelab_fused_adam(at::Tensor** params, at::Tensor** grads, at::Tensor** exp_avgs,
                     at::Tensor** exp_avg_sqs, int n, double step, double lr, double beta1,
                     double beta2, double weight_decay, double eps, int adamw, char** err) {
  try {
    if (n == 0) return 1;
    auto dev = params[0]->device();
    if (!(dev.is_cpu() || dev.is_cuda())) return 0;
    std::vector<at::Tensor> p, g, m, v, steps;
    at::Tensor step_t = at::full({}, step, at::TensorOptions().dtype(at::kFloat).device(dev));
    for (int i = 0; i < n; ++i) {
      if (params[i]->scalar_type() != at::kFloat || params[i]->device() != dev) return 0;
      p.push_back(*params[i]);
      g.push_back(*grads[i]);
      m.push_back(*exp_avgs[i]);
      v.push_back(*exp_avg_sqs[i]);
      steps.push_back(step_t);
    }
    at::NoGradGuard no_grad;
    if (adamw) {
      at::_fused_adamw_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    }
    return 1;
  } catch (const std::exception& e) {
    *err = dup_msg(e.what());
    return -1;
  }
}

// scale · Σ bce(z, x) as a scalar tensor, differentiable in z when z requires grad.
// Null with *err unset: not supported here (the caller uses ATen's operator).
at::Tensor* aelab_bce_logits(at::Tensor* z, at::Tensor* x, double scale, char** err) {
  try {
    if (!bce_supported(*z, *x)) return nullptr;
    if (z->requires_grad() && at::GradMode::is_enabled()) {
      return new at::Tensor(BceLogits::apply(*z, *x, scale));
    }
    at::Tensor scratch = at::empty_like(*z, at::MemoryFormat::Contiguous);
    double sum = bce_sum(*z, *x, scratch, static_cast<float>(scale));
    return new at::Tensor(at::scalar_tensor(sum * scale, z->options()));
  } catch (const std::exception& e) {
    *err = dup_msg(e.what());
    return nullptr;
  }
}
}
