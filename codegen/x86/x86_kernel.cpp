#include "codegen/x86/x86_kernel.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/avx2_float_generator.h"
#include "codegen/x86/activation_quantizer.h"
#include "codegen/x86/avx512_float_generator.h"
#include "codegen/x86/avx512_vnni_int8_generator.h"
#include "core/thread_pool.h"
#include "lowbit/cpu_info.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"

namespace lowbit::x86 {
namespace {

// Below this many activation elements, preparing them on the calling thread is cheaper
// than waking the pool.
constexpr int64_t parallel_prepare_elements = int64_t{1} << 18;

struct Scratch {
  std::vector<float> sums;
  std::vector<float> x_fp32;
  std::vector<int8_t> x_int8;               // compute=int8: quantized rows
  std::vector<Int8BlockFactors> factors;    // compute=int8: per row and block
};

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

// The activation dtypes as inline conversions, so the per-call pass over x has no dtype switch
// per element (lowbit::load_as_float is for tests and the reference, not for a kernel's path).
struct Fp32Activations {
  static float load(const void* x, int64_t index) { return static_cast<const float*>(x)[index]; }
};
struct Bf16Activations {
  static float load(const void* x, int64_t index) { return bf16_to_float(static_cast<const uint16_t*>(x)[index]); }
};
struct Fp16Activations {
  static float load(const void* x, int64_t index) { return fp16_to_float(static_cast<const uint16_t*>(x)[index]); }
};

// Per-group sums of rows [row_begin, row_end) of x (times the equalization scale when given),
// and x itself as fp32 when x_fp32 is not null.
template <class Activations>
void prepare_activation_rows(const OpDesc& desc, const void* x, const float* eq_scale, int64_t row_begin,
                             int64_t row_end, float* sums, float* x_fp32) {
  const int64_t k_size = desc.k;
  const int64_t groups = desc.group_count();
  const int64_t group_size = desc.group_size();
  for (int64_t row = row_begin; row < row_end; ++row) {
    for (int64_t group = 0; group < groups; ++group) {
      float sum = 0.0f;
      for (int64_t k = group * group_size; k < (group + 1) * group_size; ++k) {
        float value = Activations::load(x, row * k_size + k);
        if (eq_scale) value *= eq_scale[k];
        if (x_fp32) x_fp32[row * k_size + k] = value;
        sum += value;
      }
      sums[row * groups + group] = sum;
    }
  }
}

}  // namespace

X86Kernel::X86Kernel(const OpDesc& desc, const X86Variant& variant, int max_threads)
    : desc_(desc), variant_(variant), name_(variant_name(desc, variant)), geometry_(native_geometry(desc)) {
  if (computes_int8(variant.isa))
    program_ = Avx512VnniInt8Generator().emit(desc, variant);
  else if (variant.isa == X86Isa::amx_bf16)
    program_ = AmxBf16Generator().emit(desc, variant);
  else if (is_avx512(variant.isa))
    program_ = Avx512FloatGenerator().emit(desc, variant);
  else
    program_ = Avx2FloatGenerator().emit(desc, variant);
  // The pool has one thread per usable core; asking cpu_info() rather than the pool keeps
  // building a kernel from starting threads (get_kernel's cache-hit path stays short).
  int cap = std::max(1, cpu_info().physical_cores);
  if (max_threads > 0) cap = std::min(cap, max_threads);
  threads_ = std::max(1, std::min(variant.threads, cap));
  if (computes_int8(variant.isa)) {
    const Int8ActivationLayout layout = int8_activation_layout(desc);
    x_row_bytes_ = layout.row_bytes;
    sums_per_row_ = layout.blocks * static_cast<int64_t>(sizeof(Int8BlockFactors) / sizeof(float));
  } else {
    x_row_bytes_ = desc.k * (reads_bf16_x(variant.isa) ? 2 : 4);
    sums_per_row_ = geometry_.groups;
  }
}

nlohmann::json X86Kernel::variant_json() const { return to_json(variant_); }

void X86Kernel::prepare_rows(const RunArgs& args, int64_t row_begin, int64_t row_end, float* sums,
                             float* x_fp32) const {
  const float* eq_scale = desc_.eqscale ? args.eq_scale : nullptr;
  switch (desc_.act) {
    case DType::fp32:
      prepare_activation_rows<Fp32Activations>(desc_, args.x, eq_scale, row_begin, row_end, sums, x_fp32);
      break;
    case DType::bf16:
      prepare_activation_rows<Bf16Activations>(desc_, args.x, eq_scale, row_begin, row_end, sums, x_fp32);
      break;
    case DType::fp16:
      prepare_activation_rows<Fp16Activations>(desc_, args.x, eq_scale, row_begin, row_end, sums, x_fp32);
      break;
  }
}

void X86Kernel::run_panels(const RunArgs& args, const void* x, const float* sums, int64_t panel_begin,
                           int64_t panel_end) const {
  const NativeGeometry& geometry = geometry_;
  const int64_t x_row_bytes = x_row_bytes_;
  const int64_t y_row_bytes = desc_.n * dtype_bytes(desc_.out);
  const int64_t table_panel = geometry.groups * native_panel_width;  // halves per panel
  const int tail_columns = static_cast<int>(desc_.n % native_panel_width);
  const auto* qweight = static_cast<const uint8_t*>(args.weights.qweight);
  const auto* scales = static_cast<const uint16_t*>(args.weights.scales);
  const auto* zeros = static_cast<const uint16_t*>(args.weights.zeros);

  for (int64_t panel = panel_begin; panel < panel_end; panel += variant_.n_panels) {
    const int panels = static_cast<int>(std::min<int64_t>(variant_.n_panels, panel_end - panel));
    const bool holds_last_panel = panel + panels == geometry.panels;
    BlockArgs block{};
    block.qweight = qweight + panel * geometry.panel_bytes;
    block.scales = scales + panel * table_panel;
    block.zeros = zeros ? zeros + panel * table_panel : nullptr;
    block.bias = args.bias ? static_cast<const uint8_t*>(args.bias) + panel * native_panel_width * dtype_bytes(desc_.act)
                           : nullptr;
    block.last_panel_mask = holds_last_panel && tail_columns ? (1u << tail_columns) - 1 : 0xffffu;
    for (int64_t row = 0; row < args.m; row += variant_.m_rows) {
      const int rows = static_cast<int>(std::min<int64_t>(variant_.m_rows, args.m - row));
      block.x = static_cast<const uint8_t*>(x) + row * x_row_bytes;
      block.group_sums = sums + row * sums_per_row_;
      block.y = static_cast<uint8_t*>(args.y) + row * y_row_bytes + panel * native_panel_width * dtype_bytes(desc_.out);
      program_->block(panels, rows)(&block);
    }
  }
}

std::pair<const void*, const float*> X86Kernel::prepare_activations(const RunArgs& args) const {
  const int64_t rows = args.m;
  Scratch& scratch = thread_scratch();
  ThreadPool& pool = ThreadPool::instance();
  const bool parallel = rows * desc_.k >= parallel_prepare_elements && threads_ > 1;
  const int tasks = static_cast<int>(std::min<int64_t>(threads_, rows));
  if (computes_int8(variant_.isa)) {
    // The equalization scale is folded into the quantization (one pass over x).
    const float* eq_scale = desc_.eqscale ? args.eq_scale : nullptr;
    scratch.x_int8.resize(static_cast<std::size_t>(rows * x_row_bytes_));
    scratch.factors.resize(static_cast<std::size_t>(rows * sums_per_row_ / 2));
    int8_t* x_int8 = scratch.x_int8.data();
    Int8BlockFactors* factors = scratch.factors.data();
    auto quantize = [&](int64_t row_begin, int64_t row_end) {
      quantize_activation_rows(desc_, args.x, eq_scale, row_begin, row_end, x_int8, factors);
    };
    if (parallel)
      pool.run(tasks, [&](int task) { quantize(rows * task / tasks, rows * (task + 1) / tasks); });
    else
      quantize(0, rows);
    return {x_int8, reinterpret_cast<const float*>(factors)};
  }
  // The equalization scale is folded into this conversion (the bf16 flavours refuse eqscale=1).
  const bool needs_fp32_x = !reads_bf16_x(variant_.isa) && (desc_.act != DType::fp32 || desc_.eqscale);
  scratch.sums.resize(static_cast<std::size_t>(rows * desc_.group_count()));
  if (needs_fp32_x) scratch.x_fp32.resize(static_cast<std::size_t>(rows * desc_.k));
  float* sums = scratch.sums.data();
  float* x_fp32 = needs_fp32_x ? scratch.x_fp32.data() : nullptr;

  if (parallel) {
    pool.run(tasks, [&](int task) {
      prepare_rows(args, rows * task / tasks, rows * (task + 1) / tasks, sums, x_fp32);
    });
  } else {
    prepare_rows(args, 0, rows, sums, x_fp32);
  }
  return {needs_fp32_x ? static_cast<const void*>(x_fp32) : args.x, sums};
}

void X86Kernel::run(const RunArgs& args) const {
  check_run_args(desc_, args);
  const std::pair<const void*, const float*> prepared = prepare_activations(args);
  const void* x = prepared.first;
  const float* sums = prepared.second;

  // Whole register blocks of panels per thread, as even as the block count allows.
  const int64_t panels = geometry_.panels;
  const int64_t blocks = (panels + variant_.n_panels - 1) / variant_.n_panels;
  const int tasks = static_cast<int>(std::min<int64_t>(threads_, blocks));
  ThreadPool::instance().run(tasks, [&](int task) {
    const int64_t first_block = blocks * task / tasks;
    const int64_t end_block = blocks * (task + 1) / tasks;
    run_panels(args, x, sums, first_block * variant_.n_panels,
               std::min(panels, end_block * variant_.n_panels));
  });
}

}  // namespace lowbit::x86
