// An x86 kernel: the generated block functions of one (descriptor, variant), and the
// launcher that prepares activations and spreads register blocks (and, with split_k > 1,
// parts of K, then their reduction) over the thread pool.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/avx512_float_generator.h"
#include "codegen/x86/block_program.h"
#include "codegen/x86/x86_variant.h"
#include "lowbit/kernel.h"
#include "lowbit/native_layout.h"

namespace lowbit::x86 {

class X86Kernel final : public Kernel {
 public:
  // max_threads caps variant.threads (0: no cap beyond the pool).
  X86Kernel(const OpDesc& desc, const X86Variant& variant, int max_threads = 0);

  const OpDesc& desc() const override { return desc_; }
  const std::string& name() const override { return name_; }
  nlohmann::json variant_json() const override;
  void run(const RunArgs& args) const override;

  const X86Variant& variant() const { return variant_; }
  // Whether an AMX-BF16 kernel decodes each block of panels once for all row blocks (its decoded
  // B tiles fit the decode budget); false for every other flavour.
  bool decodes_panels_once() const { return decode_once_ != nullptr; }
  // Whether the kernel blocks K for the caches (AMX-BF16 or AVX512-BF16, variant.k_block > 0).
  bool blocks_k() const { return decoder_ != nullptr; }

 private:
  // Per-group sums of x (and x as fp32 for the FMA flavours when act is not fp32 or eqscale=1)
  // for rows [row_begin, row_end), into the calling thread's scratch; x is multiplied by the
  // equalization scale here, in the same pass, when eqscale=1.
  void prepare_rows(const RunArgs& args, int64_t row_begin, int64_t row_end, float* sums, float* x_fp32) const;
  // Where a part of K starts in each input (KSplit), and which block functions run it.
  struct PartView {
    KPart kind = KPart::whole;
    int64_t x_offset_bytes = 0;
    int64_t qweight_offset_bytes = 0;  // within a panel
    int64_t table_offset = 0;          // halves within a panel's scales / zeros
    int64_t sums_offset = 0;           // floats within a row of sums (or Int8BlockFactors)
  };
  PartView part_view(int part) const;
  // Panels [panel_begin, panel_end) over part `part` of K: with split_k = 1 (part 0) all of K
  // into y, else into the part's fp32 partial sums in `partials`.
  void run_panels(const RunArgs& args, const void* x, const float* sums, int64_t panel_begin, int64_t panel_end,
                  int part, float* partials) const;
  // AMX-BF16 with more than one row block: each block of panels decoded once into the calling
  // thread's scratch, then every row block run against it (AmxBf16Program::decoded_block).
  void run_panels_decoded_once(const RunArgs& args, const void* x, const float* sums, int64_t panel_begin,
                               int64_t panel_end) const;
  // k_block > 0: per block of K, each block of panels decoded once and every row block run
  // against it, accumulators in the thread's scratch. AMX-BF16: x is the packed x (tiles);
  // AVX512-BF16: x as given.
  void run_panels_blocked(const RunArgs& args, const uint16_t* x, const float* sums, int64_t panel_begin,
                          int64_t panel_end) const;
  // k_block > 0: the blocks of panels cut into runs (blocked_runs_per_task per task) that `tasks`
  // threads take from a shared counter, each through run_panels_blocked.
  void run_blocked_runs(const RunArgs& args, const uint16_t* x, const float* sums, int tasks) const;
  // Columns [column_begin, column_end) of every row: the parts' sum in part order, the bias, the
  // output dtype, into y.
  void reduce_parts(const RunArgs& args, float* partials, int64_t column_begin, int64_t column_end) const;
  // Prepares x as the variant reads it (fp32 copies and sums, or for compute=int8 the s8 rows
  // and block factors) in the calling thread's scratch; returns x and the per-row sums.
  std::pair<const void*, const float*> prepare_activations(const RunArgs& args) const;

  OpDesc desc_;
  X86Variant variant_;
  std::string name_;
  NativeGeometry geometry_;  // of desc_, computed once
  int64_t x_row_bytes_ = 0;  // stride of the rows the block functions read
  int64_t x_element_bytes_ = 0;  // of those rows' elements
  int64_t sums_per_row_ = 0;  // floats of BlockArgs.group_sums per row
  int threads_ = 1;
  std::unique_ptr<BlockProgram> program_;
  // AMX-BF16's program (also in program_), where its decoded B tiles of a block of panels fit
  // the decode budget (half of L2: the rest holds the rows of x the tiles meet); else null.
  const AmxBf16Program* decode_once_ = nullptr;
  // AMX-BF16's program (also in program_) where the variant blocks K (k_block > 0); else null.
  const AmxBf16Program* blocked_ = nullptr;
  // AVX512-BF16's program (also in program_) where the variant blocks K (k_block > 0); else null.
  const Avx512FloatProgram* avx512_blocked_ = nullptr;
  // Where k_block > 0: the program whose decode_range decodes a block of K (AMX-BF16's own, or
  // for AVX512-BF16 a decode-only AMX-BF16 program in decoder_program_); else null.
  const AmxBf16Program* decoder_ = nullptr;
  std::unique_ptr<AmxBf16Program> decoder_program_;
};

}  // namespace lowbit::x86
