#include "codegen/x86/activation_quantizer.h"

// GCC 12 reports the _mm512_undefined_* pass-through operands inside its own AVX-512 intrinsics
// as uninitialized when they are inlined into a target("avx512f") function (a false positive:
// those lanes are never read). Silenced for this file only.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "lowbit/native_layout.h"
#include "lowbit/reference.h"

namespace lowbit::x86 {
namespace {

#define LOWBIT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 activations from `count` (<= 16) elements at x[index], as fp32; lanes past count are 0.
struct Fp32Load {
  LOWBIT_AVX512 static __m512 load(const void* x, int64_t index, __mmask16 mask) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(x) + index);
  }
};
struct Bf16Load {
  // bf16 is the high half of an fp32: widen the words and shift them up.
  LOWBIT_AVX512 static __m512 load(const void* x, int64_t index, __mmask16 mask) {
    const __m256i words = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(x) + index);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(words), 16));
  }
};
struct Fp16Load {
  LOWBIT_AVX512 static __m512 load(const void* x, int64_t index, __mmask16 mask) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(x) + index));
  }
};

LOWBIT_AVX512 __mmask16 lanes(int64_t count) {
  return count >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << count) - 1);
}

// One block of one row: two passes over at most 256 values kept in registers' spill space
// (values), the first for max |x|, the second to divide, round and store.
template <class Load>
LOWBIT_AVX512 void quantize_block(const void* x, const float* eq_scale, int64_t begin, int64_t count,
                                  int64_t row_offset, int8_t* xq, Int8BlockFactors* factors) {
  alignas(64) float values[256];
  __m512 max_abs = _mm512_setzero_ps();
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 mask = lanes(count - i);
    __m512 value = Load::load(x, row_offset + begin + i, mask);
    if (eq_scale) value = _mm512_mul_ps(value, _mm512_maskz_loadu_ps(mask, eq_scale + begin + i));
    _mm512_store_ps(values + i, value);
    max_abs = _mm512_max_ps(max_abs, _mm512_abs_ps(value));
  }
  const float block_max = _mm512_reduce_max_ps(max_abs);
  // The same fp32 operations as the scalar twin: one division for sx, one per element.
  const float scale = block_max == 0.0f ? 1.0f : block_max / 127.0f;
  const __m512 scale_vector = _mm512_set1_ps(scale);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 mask = lanes(count - i);
    // vcvtps2dq rounds to nearest even (MXCSR default), like std::nearbyint. |x / sx| <= 127
    // up to one rounding, so the saturating narrowing below never clamps a value it should not.
    const __m512i code = _mm512_maskz_cvtps_epi32(mask, _mm512_div_ps(_mm512_load_ps(values + i), scale_vector));
    const __m512i clamped = _mm512_max_epi32(_mm512_min_epi32(code, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
    sum = _mm512_add_epi32(sum, clamped);
    _mm512_mask_cvtepi32_storeu_epi8(xq + begin + i, mask, clamped);
  }
  factors->scale = scale;
  factors->scaled_sum = scale * static_cast<float>(_mm512_reduce_add_epi32(sum));
}


}  // namespace

Int8ActivationLayout int8_activation_layout(const OpDesc& desc) {
  const NativeGeometry geometry = native_geometry(desc);
  const int64_t read_bytes = geometry.steps * geometry.k_per_block + 4;
  return {(read_bytes + 63) / 64 * 64, int8_block_count(desc)};
}

void quantize_rows_by_block(const OpDesc& desc, const void* x, const float* eq_scale, int64_t row_begin,
                            int64_t row_end, int8_t* xq, Int8BlockFactors* factors, QuantizeBlock quantize_block) {
  const Int8ActivationLayout layout = int8_activation_layout(desc);
  const int64_t block_size = int8_block_size(desc);
  for (int64_t row = row_begin; row < row_end; ++row) {
    int8_t* row_codes = xq + row * layout.row_bytes;
    for (int64_t block = 0; block < layout.blocks; ++block) {
      const int64_t begin = block * block_size;
      quantize_block(x, eq_scale, begin, std::min(block_size, desc.k - begin), row * desc.k, row_codes,
                     factors + row * layout.blocks + block);
    }
    std::memset(row_codes + desc.k, 0, static_cast<std::size_t>(layout.row_bytes - desc.k));
  }
}

void quantize_activation_rows(const OpDesc& desc, const void* x, const float* eq_scale, int64_t row_begin,
                              int64_t row_end, int8_t* xq, Int8BlockFactors* factors) {
  switch (desc.act) {
    case DType::fp32: quantize_rows_by_block(desc, x, eq_scale, row_begin, row_end, xq, factors, &quantize_block<Fp32Load>); break;
    case DType::bf16: quantize_rows_by_block(desc, x, eq_scale, row_begin, row_end, xq, factors, &quantize_block<Bf16Load>); break;
    case DType::fp16: quantize_rows_by_block(desc, x, eq_scale, row_begin, row_end, xq, factors, &quantize_block<Fp16Load>); break;
  }
}

}  // namespace lowbit::x86
