// CUDA GEMV generator (small M): 2-, 3-, 4- and 8-bit weights in the native layout, one block
// per 16-column panel, warps splitting K, dequantization by exponent-bit OR, optional per-K
// equalization scale folded into the load of x. Two families: CUDA-core FMAs
// (templates/gemv.cuh, M 1..8) and tensor-core mma.sync (templates/gemv_mma.cuh, M 1..16).
// candidates / is_valid / emit as every generator.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_variant.h"
#include "lowbit/descriptor.h"

namespace lowbit::cuda {

struct Validity {
  bool ok = true;
  std::string reason;
  explicit operator bool() const { return ok; }
};

class GemvGenerator {
 public:
  static constexpr std::string_view family = "cuda_gemv";
  // 9: gemv_mma warps covering 2 or 4 panels (block_n), the heuristic's from 4 rows on many panels;
  // 10: the heuristic knows the arch (16 warps of 2 panels above 8 rows on few panels, sm_90);
  // 11: 8 warps of 2 panels above 8 rows on many panels at 2 and 8 bits in bf16, and at 2 bits
  // on fewer panels where sm_90's 16 warps of 2 are not taken; wide chunks at 3 bits, and at 8
  // bits above 8 rows; warps of 2 panels at 3 bits from 4 rows on many panels; 4 stages at 8 bits
  // and M = 1 on more than few panels
  // 12: gemv_mma serves 17..32 rows (four n8 B operands), sets of 2 or 4 panels a warp there,
  // and a register rule for the accumulators in place of the one 16-warp case
  // 13: warps of 2 panels searched below 4 rows on many panels; the heuristic at 1..3 rows on
  // many panels: warps of 2 panels at 2, 3 and 4 bits, 16 warps of 4 wide stages at 8
  static constexpr int version = 13;
  static constexpr int max_rows = 8;       // gemv (CUDA cores)
  static constexpr int max_mma_rows = 32;  // gemv_mma: four n8 B operands
  // The rows the registry's no-tune choice gives these families (MmaGenerator's beyond, where
  // WgmmaGenerator's is not preferred): up to 16 rows, and on sm_90 the short rows above them
  // (short_rows_on_few_panels); the other rows of 17..32 are served for tuning and when named, as
  // measured on the H100 (docs/benchmarks.md, sessions 23 and 24).
  static constexpr int preferred_max_rows = 16;
  static bool preferred(const OpDesc& desc, int arch_major) {
    return desc.m <= preferred_max_rows || (arch_major == 9 && short_rows_on_few_panels(desc));
  }
  // 17..24 rows on at most heuristic_few_panels panels with K at most 4096, where on the H100
  // gemv_mma's heuristic (8 warps of 2 panels) beat wgmma's no-tune tile in every format timed:
  // on 4096x4096 at M = 17 and 24, 10.1 / 10.0 against 12.0 / 11.5 us (int4 bf16), 10.1 / 10.1
  // against 12.4 / 12.4 (int4 fp16), 11.0 / 9.9 against 11.8 / 11.8 (2 bits), 12.1 / 12.0 against
  // 12.3 / 12.6 (3 bits), 14.0 / 14.3 against 15.0 / 15.1 (8 bits; docs/benchmarks.md, session 24).
  // Not on a long K (4096x14336: within 2 % at 4 bits, 12-17 % slower at 2, 3 and 8), nor on more
  // panels (6144x4096: equal at M = 17, 4 % slower at 24), nor above 24 rows (M = 32: not timed
  // against wgmma's group sums).
  static constexpr int64_t short_rows_max = 24;
  static constexpr int64_t short_rows_max_k = 4096;
  static bool short_rows_on_few_panels(const OpDesc& desc);
  static constexpr const char* entry_point = "lowbit_kernel";
  // gemv_mma with split_k > 1: the second kernel, summing the parts (gemv_split_sum).
  static constexpr const char* split_sum_entry_point = "lowbit_split_sum";

  std::vector<CudaVariant> candidates(const OpDesc& desc) const;
  // arch_major: the device's compute capability major (8 = Ampere/Ada, 9 = Hopper).
  Validity is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const;
  // The complete CUDA source for NVRTC: the template text and a thin instantiation.
  std::string emit(const OpDesc& desc, const CudaVariant& variant) const;
  // The no-tune choice on a device of compute capability arch_major (0: unknown, the choice
  // then fits every arch the family serves; the registry passes the device's).
  CudaVariant heuristic(const OpDesc& desc, int arch_major = 0) const;
  // heuristic(): up to this many panels the grid has about two blocks an SM of the H100 (132
  // SMs), and a block takes twice the warps (gemv_generator.cpp says what was measured).
  static constexpr int64_t heuristic_few_panels = 256;
  // heuristic(): from this many panels on, warps of 4 panels (block_n 64) from 4 rows: sets of
  // 4 then still give the H100's 132 SMs about two blocks each.
  static constexpr int64_t heuristic_many_panels = 1024;
  // A block per panel (split_k blocks per panel along grid y); gemv_mma's cp.async ring
  // of weights and x is dynamic shared memory.
  LaunchGeometry launch_geometry(const OpDesc& desc, const CudaVariant& variant) const;
  // gemv_mma: the ring (templates/gemv_mma.cuh, GemvMmaShared); gemv: 0.
  static int shared_bytes(const OpDesc& desc, const CudaVariant& variant);
  // gemv_mma keeps each warp's slice of x in shared memory, copied once (X_RESIDENT), when the
  // block's slices take at most max_resident_x_bytes and bulk copies are off; else x travels
  // with every chunk of the ring. Resident x drops the per-chunk x copies from the issue-bound
  // loop (docs/benchmarks.md, fourth small-M round).
  static constexpr int max_resident_x_bytes = 48 * 1024;
  static bool x_resident(const OpDesc& desc, const CudaVariant& variant);
  // 16-k tiles a gemv_mma warp copies per stage: block_k / 16, or the format's 512-byte chunk.
  static int chunk_tiles(const OpDesc& desc, const CudaVariant& variant);
  // A split's fp32 partials, [split_k][m][n], rounded up to 256 bytes; 0 when unsplit.
  static std::size_t workspace_bytes(const OpDesc& desc, const CudaVariant& variant);
  // The split's second kernel: one thread per output.
  static LaunchGeometry split_sum_geometry(const OpDesc& desc);
 private:
  // heuristic(): at 3 bits, and at 8 bits above 8 rows, variant with chunks twice the format's
  // (block_k), where the arch takes them (gemv_generator.cpp says what was measured); otherwise
  // variant.
  CudaVariant with_wide_chunks(const OpDesc& desc, CudaVariant variant, int arch_major) const;
  // heuristic() at 1..3 rows on at least heuristic_many_panels panels: warps of 2 panels (4 warps
  // at 1..2 rows of 2 or 4 bits, else 8; wide chunks at 3 bits), 16 warps of 4 wide stages at 8
  // bits (gemv_generator.cpp says what was measured).
  static CudaVariant few_rows_on_many_panels(const OpDesc& desc);
  // Whether a heuristic rule's variant is valid on arch_major, or, where that is unknown (0), on
  // sm_8x too (its smaller shared memory).
  bool fits_arch(const OpDesc& desc, const CudaVariant& variant, int arch_major) const;
};

}  // namespace lowbit::cuda
