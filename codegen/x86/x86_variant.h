// The *how* of an x86 kernel: which instruction flavour, the register block, unrolling and
// threads. Searched by the tuner, stored in the cache as JSON, named for the CLI.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "lowbit/descriptor.h"
#include "lowbit/fields.h"

namespace lowbit::x86 {

// avx512_fma: weights dequantized to fp32 lanes, vfmadd231ps against fp32 activations.
// avx512_bf16: weights turned into bf16 pairs, vdpbf16ps against bf16 activation pairs
//              (exact products, fp32 sums); needs bf16 activations and AVX512_BF16.
// avx2_fma: the fallback for CPUs without AVX-512: as avx512_fma on ymm registers, each
//           16-column panel as two 8-column halves (AVX2, FMA, F16C).
// avx512_vnni: compute=int8 only: x quantized to s8 per row and block, vpdpbusd against the
//              unsigned weight codes (AVX512-VNNI).
// amx_bf16: the avx512_bf16 pairs decoded into a tile of B, tdpbf16ps against tiles of up to
//           16 bf16 activation rows (AMX-BF16; for larger M).
// amx_int8: compute=int8 only: as avx512_vnni, the codes decoded into a tile of B, tdpbsud
//           against tiles of up to 16 s8 activation rows (AMX-INT8; for larger M).
// avx2_vnni: compute=int8 only: as avx512_vnni on ymm halves of a panel, `{vex} vpdpbusd`
//            (AVX-VNNI, for CPUs without AVX-512).
// avx2_int8: compute=int8 only: as avx2_vnni with vpmaddubsw/vpmaddwd (8-bit: vpmaddwd against
//            codes widened to words), for AVX2 CPUs without AVX-VNNI.
enum class X86Isa { avx512_fma, avx512_bf16, avx2_fma, avx512_vnni, amx_bf16, amx_int8, avx2_vnni, avx2_int8 };

}  // namespace lowbit::x86

template <>
struct lowbit::EnumNames<lowbit::x86::X86Isa> {
  static constexpr std::array<std::string_view, 8> names{"avx512_fma", "avx512_bf16", "avx2_fma",  "avx512_vnni",
                                                         "amx_bf16",   "amx_int8",    "avx2_vnni", "avx2_int8"};
};

namespace lowbit::x86 {

// The ISA families a caller can force (LOWBIT_ISA, GetOptions.isa): avx512 holds the float
// flavours avx512_fma and avx512_bf16 and the int8 flavour avx512_vnni, avx2 holds avx2_fma and
// the int8 flavours avx2_vnni and avx2_int8, amx holds amx_bf16 and amx_int8 (registry.h gives
// the rule per compute mode).
inline bool is_avx512(X86Isa isa) {
  return isa == X86Isa::avx512_fma || isa == X86Isa::avx512_bf16 || isa == X86Isa::avx512_vnni;
}
// The int8 flavours on ymm registers (avx2_int8_generator.h).
inline bool is_avx2_int8(X86Isa isa) { return isa == X86Isa::avx2_vnni || isa == X86Isa::avx2_int8; }
// The flavours of compute=int8 (the others compute=float); the tuner never crosses modes.
inline bool computes_int8(X86Isa isa) {
  return isa == X86Isa::avx512_vnni || isa == X86Isa::amx_int8 || is_avx2_int8(isa);
}

// Flavours that read x as given in bf16 (pairs of k per dword) rather than converted to fp32.
inline bool reads_bf16_x(X86Isa isa) { return isa == X86Isa::avx512_bf16 || isa == X86Isa::amx_bf16; }

// Flavours that emit software prefetches (X86Variant::prefetch): the AVX-512 ones of M=1.
inline bool emits_prefetch(X86Isa isa) { return is_avx512(isa); }

struct X86Variant {
  X86Isa isa = X86Isa::avx512_fma;
  int n_panels = 1;   // 16-column panels per register block (N tile = 16 * n_panels)
  int m_rows = 1;     // activation rows per register block (amx: 16 or 32, one or two A tiles)
  int k_unroll = 1;   // steps (native k_per_block k each) unrolled in the inner loop
  int threads = 1;    // worker threads (capped by the caller's option and the pool)
  int split_k = 1;    // most parts K is cut into (block_program.h, KSplit); 1: no split
  int k_block = 0;    // amx_bf16 (avx512_bf16: with scaled_decode=1 only): k per cache block
                      // (weights decoded once per block of K and reused by every row block;
                      // amx_bf16 packs x); 0: not blocked
  int scaled_decode = 0;  // amx_bf16, avx512_bf16 with k_block > 0: 1 decodes each weight to bf16 s*(q - z)
                          // (scales folded in, C tiles summed over the whole block of K, no
                          // per-group epilogue; verified at dequantized_weights_tolerance); 0: not
  int prefetch = 0;   // bytes ahead of each weight stream's loads to prefetch (block_program.h,
                      // check_prefetch); 0: none, left to the hardware prefetchers

  bool operator==(const X86Variant&) const = default;

  static constexpr auto fields() {
    return std::tuple{field("isa", &X86Variant::isa), field("n_panels", &X86Variant::n_panels),
                      field("m_rows", &X86Variant::m_rows), field("k_unroll", &X86Variant::k_unroll),
                      field("threads", &X86Variant::threads), field("split_k", &X86Variant::split_k),
                      field("k_block", &X86Variant::k_block),
                      field("scaled_decode", &X86Variant::scaled_decode),
                      field("prefetch", &X86Variant::prefetch)};
  }
};

std::string_view to_string(X86Isa isa);

// Complete, parseable name, e.g. "x86_avx512bf16_w4g128_n4m1k2_t2", with "_s<split_k>" when
// K is split (split_k > 1), e.g. "x86_avx512vnni_w4g128_n1m1k2_t16_s4", and "_kb<k_block>" when
// K is cache-blocked (k_block > 0), e.g. "x86_amxbf16_w4g128_n2m32k1_t16_kb512", and "_sd" when
// the scales are folded into the decoded weights (scaled_decode=1), e.g.
// "x86_amxbf16_w4g128_n2m32k1_t16_kb1024_sd", and "_p<prefetch>" when the weights are
// prefetched, e.g. "x86_avx512bf16_w4g128_n1m1k2_t2_p2048".
std::string variant_name(const OpDesc& desc, const X86Variant& variant);

nlohmann::json to_json(const X86Variant& variant);
// Throws InvalidArgument naming the field when the JSON is not a variant of this version.
X86Variant variant_from_json(const nlohmann::json& json);

}  // namespace lowbit::x86
