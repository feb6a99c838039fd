#include "codegen/x86/avx2_activation_quantizer.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "lowbit/half.h"
#include "lowbit/reference.h"

namespace lowbit::x86 {
namespace {

#define LOWBIT_AVX2 __attribute__((target("avx2,f16c")))

// 8 activations at x[index] as fp32 (AVX2 has no masked 16-bit loads: the block's last, partial
// vector goes through widen_tail instead).
struct Fp32Load {
  LOWBIT_AVX2 static __m256 load(const void* x, int64_t index) {
    return _mm256_loadu_ps(static_cast<const float*>(x) + index);
  }
  static float scalar(const void* x, int64_t index) { return static_cast<const float*>(x)[index]; }
};
struct Bf16Load {
  // bf16 is the high half of an fp32: widen the words and shift them up.
  LOWBIT_AVX2 static __m256 load(const void* x, int64_t index) {
    const __m128i words = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + index));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(words), 16));
  }
  static float scalar(const void* x, int64_t index) { return bf16_to_float(static_cast<const uint16_t*>(x)[index]); }
};
struct Fp16Load {
  LOWBIT_AVX2 static __m256 load(const void* x, int64_t index) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + index)));
  }
  static float scalar(const void* x, int64_t index) { return fp16_to_float(static_cast<const uint16_t*>(x)[index]); }
};

// One block of one row, as the AVX-512 quantizer does it: a first pass for max |x| that keeps
// the (scaled) values, padded with zeros to whole vectors (a zero changes neither the max, nor
// a code, nor the sum), a second to divide, round and store.
template <class Load>
LOWBIT_AVX2 void quantize_block(const void* x, const float* eq_scale, int64_t begin, int64_t count,
                                int64_t row_offset, int8_t* xq, Int8BlockFactors* factors) {
  alignas(32) float values[256 + 8];
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 max_abs = _mm256_setzero_ps();
  for (int64_t i = 0; i < count; i += 8) {
    __m256 value;
    if (count - i >= 8) {
      value = Load::load(x, row_offset + begin + i);
      if (eq_scale) value = _mm256_mul_ps(value, _mm256_loadu_ps(eq_scale + begin + i));
    } else {
      // The same one fp32 multiplication per element, lane by lane.
      alignas(32) float tail[8] = {};
      for (int64_t lane = 0; lane < count - i; ++lane) {
        tail[lane] = Load::scalar(x, row_offset + begin + i + lane);
        if (eq_scale) tail[lane] *= eq_scale[begin + i + lane];
      }
      value = _mm256_load_ps(tail);
    }
    _mm256_store_ps(values + i, value);
    max_abs = _mm256_max_ps(max_abs, _mm256_andnot_ps(sign_bit, value));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, max_abs);
  const float block_max = *std::max_element(lanes, lanes + 8);
  // The same fp32 operations as the scalar twin: one division for sx, one per element.
  const float scale = block_max == 0.0f ? 1.0f : block_max / 127.0f;
  const __m256 scale_vector = _mm256_set1_ps(scale);
  __m256i sum = _mm256_setzero_si256();
  for (int64_t i = 0; i < count; i += 8) {
    // vcvtps2dq rounds to nearest even (MXCSR default), like std::nearbyint.
    const __m256i code = _mm256_cvtps_epi32(_mm256_div_ps(_mm256_load_ps(values + i), scale_vector));
    const __m256i clamped = _mm256_max_epi32(_mm256_min_epi32(code, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
    sum = _mm256_add_epi32(sum, clamped);
    // Every value is in [-127, 127]: the saturating packs only narrow.
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(clamped), _mm256_extracti128_si256(clamped, 1));
    const __m128i bytes = _mm_packs_epi16(words, words);
    alignas(16) int8_t codes[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(codes), bytes);
    std::memcpy(xq + begin + i, codes, static_cast<std::size_t>(std::min<int64_t>(8, count - i)));
  }
  alignas(32) int32_t sums[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(sums), sum);
  int32_t total = 0;
  for (int32_t lane : sums) total += lane;
  factors->scale = scale;
  factors->scaled_sum = scale * static_cast<float>(total);
}


}  // namespace

void quantize_activation_rows_avx2(const OpDesc& desc, const void* x, const float* eq_scale, int64_t row_begin,
                                   int64_t row_end, int8_t* xq, Int8BlockFactors* factors) {
  switch (desc.act) {
    case DType::fp32: quantize_rows_by_block(desc, x, eq_scale, row_begin, row_end, xq, factors, &quantize_block<Fp32Load>); break;
    case DType::bf16: quantize_rows_by_block(desc, x, eq_scale, row_begin, row_end, xq, factors, &quantize_block<Bf16Load>); break;
    case DType::fp16: quantize_rows_by_block(desc, x, eq_scale, row_begin, row_end, xq, factors, &quantize_block<Fp16Load>); break;
  }
}

}  // namespace lowbit::x86
