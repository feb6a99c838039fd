// An x86 kernel: the generated block functions of one (descriptor, variant), and the
// launcher that prepares activations and spreads register blocks over the thread pool.
#pragma once

#include <memory>
#include <string>
#include <utility>

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

 private:
  // Per-group sums of x (and x as fp32 for the FMA flavours when act is not fp32 or eqscale=1)
  // for rows [row_begin, row_end), into the calling thread's scratch; x is multiplied by the
  // equalization scale here, in the same pass, when eqscale=1.
  void prepare_rows(const RunArgs& args, int64_t row_begin, int64_t row_end, float* sums, float* x_fp32) const;
  void run_panels(const RunArgs& args, const void* x, const float* sums, int64_t panel_begin,
                  int64_t panel_end) const;
  // Prepares x as the variant reads it (fp32 copies and sums, or for compute=int8 the s8 rows
  // and block factors) in the calling thread's scratch; returns x and the per-row sums.
  std::pair<const void*, const float*> prepare_activations(const RunArgs& args) const;

  OpDesc desc_;
  X86Variant variant_;
  std::string name_;
  NativeGeometry geometry_;  // of desc_, computed once
  int64_t x_row_bytes_ = 0;  // stride of the rows the block functions read
  int64_t sums_per_row_ = 0;  // floats of BlockArgs.group_sums per row
  int threads_ = 1;
  std::unique_ptr<BlockProgram> program_;
};

}  // namespace lowbit::x86
