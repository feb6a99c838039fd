#include "codegen/x86/x86_kernel.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "codegen/x86/amx_bf16_generator.h"
#include "codegen/x86/amx_int8_generator.h"
#include "codegen/x86/avx2_activation_quantizer.h"
#include "codegen/x86/avx2_float_generator.h"
#include "codegen/x86/avx2_int8_generator.h"
#include "codegen/x86/activation_quantizer.h"
#include "codegen/x86/avx512_float_generator.h"
#include "codegen/x86/avx512_vnni_int8_generator.h"
#include "core/thread_pool.h"
#include "lowbit/cpu_info.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/native_layout.h"
#include "lowbit/reference.h"

namespace lowbit::x86 {
namespace {

// Below this many activation elements, preparing them on the calling thread is cheaper
// than waking the pool.
constexpr int64_t parallel_prepare_elements = int64_t{1} << 18;
// Lanes of the per-chunk sums of x (16 fp32: one zmm).
constexpr int sum_lanes = 16;
// Likewise for the reduction of split-K parts (elements of all parts read).
constexpr int64_t parallel_reduce_elements = int64_t{1} << 16;
// L2 per core where cpu_info does not know it (Xbyak reports no cache sizes on some CPUs).
constexpr int64_t fallback_l2_bytes = int64_t{1} << 20;
// Cache-blocked kernels (k_block > 0): the blocks of panels are cut into this many runs per
// task, and each task takes the next run from a shared counter until none is left. On the
// 16-core Xeon 4 runs per thread beat one run per thread (the static split of before) by
// 1.01-1.23x on every M=64 and 256 row of issue 3, three rounds each (docs/benchmarks.md): a
// thread slowed by its neighbours hands its last runs to the others. More runs re-read x more
// often (each run walks all of K against its own blocks of panels).
constexpr int default_blocked_runs_per_task = 4;
constexpr long max_blocked_runs_per_task = 1 << 16;

// default_blocked_runs_per_task, or LOWBIT_X86_RUNS_PER_THREAD where set (benchmarks compare
// splits with it; bench/device/amx_block.sh). Read per call, so that a test can set it.
int blocked_runs_per_task() {
  const char* text = std::getenv("LOWBIT_X86_RUNS_PER_THREAD");
  if (text == nullptr) return default_blocked_runs_per_task;
  char* end = nullptr;
  const long runs = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || runs < 1 || runs > max_blocked_runs_per_task)
    throw InvalidArgument("LOWBIT_X86_RUNS_PER_THREAD",
                          fmt::format("LOWBIT_X86_RUNS_PER_THREAD='{}': runs of blocks of panels per thread of the "
                                      "cache-blocked kernels must be an integer from 1 to {} (unset: {})",
                                      text, max_blocked_runs_per_task, default_blocked_runs_per_task));
  return static_cast<int>(runs);
}

// The decoded B tiles of one block of panels must fit half of L2: they are read once per row
// block, next to the x rows those blocks stream.
bool decoded_panels_fit_l2(const OpDesc& desc, const X86Variant& variant) {
  const int64_t l2 = cpu_info().l2_bytes > 0 ? cpu_info().l2_bytes : fallback_l2_bytes;
  return amx_decoded_bytes(desc, variant.n_panels) <= l2 / 2;
}

struct Scratch {
  std::vector<float> sums;
  std::vector<float> partials;              // split K: [part][row][partial_row_floats]
  std::vector<float> x_fp32;
  std::vector<int8_t> x_int8;               // compute=int8: quantized rows
  std::vector<Int8BlockFactors> factors;    // compute=int8: per row and block
  std::vector<uint8_t> decoded_b;           // AMX-BF16: a block of panels' decoded B tiles (+ 64 to align)
  std::vector<uint8_t> x_packed;            // AMX-BF16 k_block > 0: x in tiles (+ 64 to align)
  std::vector<float> accumulators;          // k_block > 0 (AMX-BF16, AVX512-BF16): per register block (+ 16 to align)
};

template <class T>
T* align64(T* pointer) {
  const auto address = reinterpret_cast<std::uintptr_t>(pointer);
  return reinterpret_cast<T*>((address + 63) & ~std::uintptr_t{63});
}

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

// Sums of rows [row_begin, row_end) of x (times the equalization scale when given) over each
// chunk of sum_k k ([row][chunks]; the last chunk may be shorter), and x itself as fp32 when
// x_fp32 is not null.
template <class Activations>
void prepare_activation_rows(const OpDesc& desc, const KSplit& split, const void* x, const float* eq_scale,
                             int64_t row_begin, int64_t row_end, float* sums, float* x_fp32) {
  const int64_t k_size = desc.k;
  const int64_t chunks = split.sum_chunks;
  const int64_t sum_k = split.sum_k;
  auto prepared = [&](int64_t row, int64_t k) {
    float value = Activations::load(x, row * k_size + k);
    if (eq_scale) value *= eq_scale[k];
    if (x_fp32) x_fp32[row * k_size + k] = value;
    return value;
  };
  for (int64_t row = row_begin; row < row_end; ++row) {
    for (int64_t group = 0; group < chunks; ++group) {
      const int64_t end = std::min(k_size, (group + 1) * sum_k);
      // sum_lanes independent sums (one vector register), not one serial chain of fp32 adds:
      // a chain costs an add latency per element, ~20 us at K=14336, which at small N was
      // most of a call.
      float lanes[sum_lanes] = {};
      int64_t k = group * sum_k;
      for (; k + sum_lanes <= end; k += sum_lanes)
        for (int lane = 0; lane < sum_lanes; ++lane) lanes[lane] += prepared(row, k + lane);
      float sum = 0.0f;
      for (float lane : lanes) sum += lane;
      for (; k < end; ++k) sum += prepared(row, k);
      sums[row * chunks + group] = sum;
    }
  }
}

// values[0, columns) += bias[column_begin, ...), the bias in the activation dtype.
template <class Activations>
void add_bias(const void* bias, int64_t column_begin, int64_t columns, float* values) {
  for (int64_t column = 0; column < columns; ++column) values[column] += Activations::load(bias, column_begin + column);
}

// One row of fp32 values to y in the output dtype, rounded to nearest even as the kernels do.
void store_row(DType out, const float* values, int64_t columns, void* y) {
  switch (out) {
    case DType::fp32:
      std::copy(values, values + columns, static_cast<float*>(y));
      break;
    case DType::bf16:
      for (int64_t column = 0; column < columns; ++column)
        static_cast<uint16_t*>(y)[column] = float_to_bf16(values[column]);
      break;
    case DType::fp16:
      for (int64_t column = 0; column < columns; ++column)
        static_cast<uint16_t*>(y)[column] = float_to_fp16(values[column]);
      break;
  }
}

}  // namespace

X86Kernel::X86Kernel(const OpDesc& desc, const X86Variant& variant, int max_threads)
    : desc_(desc), variant_(variant), name_(variant_name(desc, variant)), geometry_(native_geometry(desc)) {
  if (variant.isa == X86Isa::amx_int8)
    program_ = AmxInt8Generator().emit(desc, variant);
  else if (is_avx2_int8(variant.isa))
    program_ = Avx2Int8Generator().emit(desc, variant);
  else if (computes_int8(variant.isa))
    program_ = Avx512VnniInt8Generator().emit(desc, variant);
  else if (variant.isa == X86Isa::amx_bf16) {
    std::unique_ptr<AmxBf16Program> amx = AmxBf16Generator().emit(desc, variant);
    if (variant.k_block > 0)
      blocked_ = decoder_ = amx.get();
    else if (decoded_panels_fit_l2(desc, variant))
      decode_once_ = amx.get();
    program_ = std::move(amx);
  }
  else if (is_avx512(variant.isa)) {
    std::unique_ptr<Avx512FloatProgram> avx512 = Avx512FloatGenerator().emit(desc, variant);
    if (variant.k_block > 0) {
      avx512_blocked_ = avx512.get();
      decoder_program_ = std::make_unique<AmxBf16Program>(desc, variant, AmxBf16Program::DecodeOnly{});
      decoder_ = decoder_program_.get();
    }
    program_ = std::move(avx512);
  }
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
    x_element_bytes_ = 1;
    sums_per_row_ = layout.blocks * static_cast<int64_t>(sizeof(Int8BlockFactors) / sizeof(float));
  } else {
    x_element_bytes_ = reads_bf16_x(variant.isa) ? 2 : 4;
    x_row_bytes_ = desc.k * x_element_bytes_;
    sums_per_row_ = program_->split().sum_chunks;
  }
}

nlohmann::json X86Kernel::variant_json() const { return to_json(variant_); }

void X86Kernel::prepare_rows(const RunArgs& args, int64_t row_begin, int64_t row_end, float* sums,
                             float* x_fp32) const {
  const float* eq_scale = desc_.eqscale ? args.eq_scale : nullptr;
  const KSplit& split = program_->split();
  switch (desc_.act) {
    case DType::fp32:
      prepare_activation_rows<Fp32Activations>(desc_, split, args.x, eq_scale, row_begin, row_end, sums, x_fp32);
      break;
    case DType::bf16:
      prepare_activation_rows<Bf16Activations>(desc_, split, args.x, eq_scale, row_begin, row_end, sums, x_fp32);
      break;
    case DType::fp16:
      prepare_activation_rows<Fp16Activations>(desc_, split, args.x, eq_scale, row_begin, row_end, sums, x_fp32);
      break;
  }
}

X86Kernel::PartView X86Kernel::part_view(int part) const {
  const KSplit& split = program_->split();
  PartView view;
  view.kind = split.parts == 1 ? KPart::whole : part == split.parts - 1 ? KPart::last : KPart::leading;
  const int64_t k_begin = part * split.part_k;
  view.x_offset_bytes = k_begin * x_element_bytes_;
  view.qweight_offset_bytes = k_begin / geometry_.k_per_block * geometry_.step_bytes;
  view.table_offset = desc_.group == whole_k_group ? 0 : k_begin / desc_.group * native_panel_width;
  // compute=int8: the part's first activation block (two floats per Int8BlockFactors);
  // compute=float: its first chunk of sums.
  view.sums_offset = computes_int8(variant_.isa)
                         ? k_begin / int8_block_size(desc_) * int64_t{sizeof(Int8BlockFactors) / sizeof(float)}
                         : k_begin / split.sum_k;
  return view;
}

void X86Kernel::run_panels(const RunArgs& args, const void* x, const float* sums, int64_t panel_begin,
                           int64_t panel_end, int part, float* partials) const {
  const NativeGeometry& geometry = geometry_;
  const PartView view = part_view(part);
  const int64_t x_row_bytes = x_row_bytes_;
  const int64_t y_row_bytes = desc_.n * dtype_bytes(desc_.out);
  const int64_t partial_row_floats = program_->split().partial_row_floats;
  const int64_t table_panel = geometry.groups * native_panel_width;  // halves per panel
  const int tail_columns = static_cast<int>(desc_.n % native_panel_width);
  const auto* qweight = static_cast<const uint8_t*>(args.weights.qweight) + view.qweight_offset_bytes;
  const auto* scales = static_cast<const uint16_t*>(args.weights.scales) + view.table_offset;
  const auto* zeros = static_cast<const uint16_t*>(args.weights.zeros);
  if (zeros) zeros += view.table_offset;
  const auto* part_x = static_cast<const uint8_t*>(x) + view.x_offset_bytes;

  for (int64_t panel = panel_begin; panel < panel_end; panel += variant_.n_panels) {
    const int panels = static_cast<int>(std::min<int64_t>(variant_.n_panels, panel_end - panel));
    const bool holds_last_panel = panel + panels == geometry.panels;
    BlockArgs block{};
    block.qweight = qweight + panel * geometry.panel_bytes;
    block.scales = scales + panel * table_panel;
    block.zeros = zeros ? zeros + panel * table_panel : nullptr;
    block.bias = args.bias && view.kind == KPart::whole
                     ? static_cast<const uint8_t*>(args.bias) + panel * native_panel_width * dtype_bytes(desc_.act)
                     : nullptr;
    block.last_panel_mask = holds_last_panel && tail_columns ? (1u << tail_columns) - 1 : 0xffffu;
    const BlockFunction function = program_->block(panels, variant_.m_rows, view.kind);
    for (int64_t row = 0; row < args.m; row += variant_.m_rows) {
      const int rows = static_cast<int>(std::min<int64_t>(variant_.m_rows, args.m - row));
      block.x = part_x + row * x_row_bytes;
      block.group_sums = sums + row * sums_per_row_ + view.sums_offset;
      if (view.kind == KPart::whole)
        block.y = static_cast<uint8_t*>(args.y) + row * y_row_bytes +
                  panel * native_panel_width * dtype_bytes(desc_.out);
      else
        block.y = partials + (part * args.m + row) * partial_row_floats + panel * native_panel_width;
      (rows == variant_.m_rows ? function : program_->block(panels, rows, view.kind))(&block);
    }
  }
}

void X86Kernel::run_panels_decoded_once(const RunArgs& args, const void* x, const float* sums, int64_t panel_begin,
                                        int64_t panel_end) const {
  const NativeGeometry& geometry = geometry_;
  const int64_t y_row_bytes = desc_.n * dtype_bytes(desc_.out);
  const int64_t table_panel = geometry.groups * native_panel_width;  // halves per panel
  const int tail_columns = static_cast<int>(desc_.n % native_panel_width);
  std::vector<uint8_t>& decoded_b = thread_scratch().decoded_b;
  decoded_b.resize(static_cast<std::size_t>(amx_decoded_bytes(desc_, variant_.n_panels) + 64));
  uint8_t* decoded = align64(decoded_b.data());

  for (int64_t panel = panel_begin; panel < panel_end; panel += variant_.n_panels) {
    const int panels = static_cast<int>(std::min<int64_t>(variant_.n_panels, panel_end - panel));
    BlockArgs decode{};
    decode.qweight = static_cast<const uint8_t*>(args.weights.qweight) + panel * geometry.panel_bytes;
    decode.y = decoded;
    decode_once_->decode(panels)(&decode);

    const bool holds_last_panel = panel + panels == geometry.panels;
    BlockArgs block{};
    block.qweight = decoded;
    block.scales = static_cast<const uint16_t*>(args.weights.scales) + panel * table_panel;
    block.zeros = args.weights.zeros ? static_cast<const uint16_t*>(args.weights.zeros) + panel * table_panel : nullptr;
    block.bias = args.bias ? static_cast<const uint8_t*>(args.bias) + panel * native_panel_width * dtype_bytes(desc_.act)
                           : nullptr;
    block.last_panel_mask = holds_last_panel && tail_columns ? (1u << tail_columns) - 1 : 0xffffu;
    for (int64_t row = 0; row < args.m; row += variant_.m_rows) {
      const int rows = static_cast<int>(std::min<int64_t>(variant_.m_rows, args.m - row));
      block.x = static_cast<const uint8_t*>(x) + row * x_row_bytes_;
      block.group_sums = sums + row * sums_per_row_;
      block.y = static_cast<uint8_t*>(args.y) + row * y_row_bytes + panel * native_panel_width * dtype_bytes(desc_.out);
      decode_once_->decoded_block(panels, rows)(&block);
    }
  }
}

void X86Kernel::run_panels_blocked(const RunArgs& args, const uint16_t* x, const float* sums,
                                   int64_t panel_begin, int64_t panel_end) const {
  const NativeGeometry& geometry = geometry_;
  const int n_panels = variant_.n_panels;
  const int m_rows = variant_.m_rows;
  const int64_t panel_blocks = (panel_end - panel_begin + n_panels - 1) / n_panels;
  const int64_t row_blocks = (args.m + m_rows - 1) / m_rows;
  const int64_t block_floats = int64_t{m_rows} * n_panels * native_panel_width;  // one register block's accumulators
  Scratch& scratch = thread_scratch();
  scratch.accumulators.resize(static_cast<std::size_t>(panel_blocks * row_blocks * block_floats + 16));
  float* accumulators = align64(scratch.accumulators.data());
  scratch.decoded_b.resize(static_cast<std::size_t>(amx_block_decoded_bytes(variant_) + 64));
  uint8_t* decoded = align64(scratch.decoded_b.data());

  const int64_t y_row_bytes = desc_.n * dtype_bytes(desc_.out);
  const int64_t table_panel = geometry.groups * native_panel_width;  // halves per panel
  const int tail_columns = static_cast<int>(desc_.n % native_panel_width);
  const int64_t x_tile_elements = amx_packed_x_tile_bytes(desc_) / 2;
  const int64_t chunk_elements = amx_tile_rows * amx_chunk_k;  // one packed tile
  const auto* qweight = static_cast<const uint8_t*>(args.weights.qweight);
  const auto* scales = static_cast<const uint16_t*>(args.weights.scales);
  const auto* zeros = static_cast<const uint16_t*>(args.weights.zeros);

  // Blocks of K outermost: the packed rows of one block of K stay in L2 for all of the thread's
  // panels; the decoded block of panels stays near L1 for all row blocks.
  for (int64_t k_begin = 0; k_begin < desc_.k; k_begin += variant_.k_block) {
    const int64_t k_size = std::min<int64_t>(variant_.k_block, desc_.k - k_begin);
    const int64_t group_begin = k_begin / desc_.group;
    AmxBlockedArgs block{};
    block.groups = k_size / desc_.group;
    block.chunks = k_size / amx_chunk_k;
    block.first = k_begin == 0;
    block.last = k_begin + k_size == desc_.k;
    block.decoded = decoded;
    for (int64_t panel_block = 0; panel_block < panel_blocks; ++panel_block) {
      const int64_t panel = panel_begin + panel_block * n_panels;
      const int panels = static_cast<int>(std::min<int64_t>(n_panels, panel_end - panel));
      block.qweight = qweight + panel * geometry.panel_bytes + k_begin / geometry.k_per_block * geometry.step_bytes;
      // (scaled_decode: decode_range reads the scales too.)
      block.scales = scales + panel * table_panel + group_begin * native_panel_width;
      block.zeros = zeros ? zeros + panel * table_panel + group_begin * native_panel_width : nullptr;
      decoder_->decode_range(panels)(&block);
      block.bias = args.bias ? static_cast<const uint8_t*>(args.bias) + panel * native_panel_width * dtype_bytes(desc_.act)
                             : nullptr;
      const bool holds_last_panel = panel + panels == geometry.panels;
      block.last_panel_mask = holds_last_panel && tail_columns ? (1u << tail_columns) - 1 : 0xffffu;
      for (int64_t row_block = 0; row_block < row_blocks; ++row_block) {
        const int64_t row = row_block * m_rows;
        const int rows = static_cast<int>(std::min<int64_t>(m_rows, args.m - row));
        block.x = blocked_ ? x + row / amx_tile_rows * x_tile_elements + k_begin / amx_chunk_k * chunk_elements
                           : x + row * desc_.k + k_begin;
        block.group_sums = sums + row * sums_per_row_ + group_begin;
        block.y = static_cast<uint8_t*>(args.y) + row * y_row_bytes + panel * native_panel_width * dtype_bytes(desc_.out);
        block.accumulators = accumulators + (panel_block * row_blocks + row_block) * block_floats;
        (blocked_ ? blocked_->blocked(panels, rows) : avx512_blocked_->blocked(panels, rows))(&block);
      }
    }
  }
}

void X86Kernel::run_blocked_runs(const RunArgs& args, const uint16_t* x, const float* sums, int tasks) const {
  const int64_t panels = geometry_.panels;
  const int64_t blocks = (panels + variant_.n_panels - 1) / variant_.n_panels;
  // Whole register blocks per run, so each output is computed by the same block function in the
  // same K order whichever thread takes its run: the same bits at every thread and run count.
  const int64_t runs = std::min<int64_t>(blocks, int64_t{tasks} * blocked_runs_per_task());
  std::atomic<int64_t> next_run{0};
  ThreadPool::instance().run(tasks, [&](int) {
    for (int64_t run = next_run.fetch_add(1); run < runs; run = next_run.fetch_add(1)) {
      const int64_t panel_begin = blocks * run / runs * variant_.n_panels;
      const int64_t panel_end = std::min(panels, blocks * (run + 1) / runs * variant_.n_panels);
      run_panels_blocked(args, x, sums, panel_begin, panel_end);
    }
  });
}

void X86Kernel::reduce_parts(const RunArgs& args, float* partials, int64_t column_begin, int64_t column_end) const {
  const KSplit& split = program_->split();
  const int64_t part_floats = args.m * split.partial_row_floats;
  const int64_t columns = column_end - column_begin;
  for (int64_t row = 0; row < args.m; ++row) {
    float* sum = partials + row * split.partial_row_floats + column_begin;
    // Part order, whatever thread computed each part: the same bits at every thread count.
    for (int part = 1; part < split.parts; ++part) {
      const float* addend = sum + part * part_floats;
      for (int64_t column = 0; column < columns; ++column) sum[column] += addend[column];
    }
    if (args.bias) {
      switch (desc_.act) {
        case DType::fp32: add_bias<Fp32Activations>(args.bias, column_begin, columns, sum); break;
        case DType::bf16: add_bias<Bf16Activations>(args.bias, column_begin, columns, sum); break;
        case DType::fp16: add_bias<Fp16Activations>(args.bias, column_begin, columns, sum); break;
      }
    }
    void* y = static_cast<uint8_t*>(args.y) + (row * desc_.n + column_begin) * dtype_bytes(desc_.out);
    store_row(desc_.out, sum, columns, y);
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
      if (is_avx2_int8(variant_.isa))  // the same bits without AVX-512
        quantize_activation_rows_avx2(desc_, args.x, eq_scale, row_begin, row_end, x_int8, factors);
      else
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
  scratch.sums.resize(static_cast<std::size_t>(rows * sums_per_row_));
  if (needs_fp32_x) scratch.x_fp32.resize(static_cast<std::size_t>(rows * desc_.k));
  float* sums = scratch.sums.data();
  float* x_fp32 = needs_fp32_x ? scratch.x_fp32.data() : nullptr;

  // AMX-BF16 with k_block > 0 reads x packed in tiles, rows padded with zeros to whole tiles.
  uint16_t* packed = nullptr;
  const int64_t padded_rows = (rows + amx_tile_rows - 1) / amx_tile_rows * amx_tile_rows;
  if (blocked_) {
    scratch.x_packed.resize(static_cast<std::size_t>(amx_packed_x_bytes(desc_, rows) + 64));
    packed = reinterpret_cast<uint16_t*>(align64(scratch.x_packed.data()));
  }
  // scaled_decode=1 (AMX-BF16, AVX512-BF16) has the zero points in its decoded weights: no sums of x.
  const bool needs_sums = !variant_.scaled_decode;
  auto prepare = [&](int64_t row_begin, int64_t row_end) {
    if (needs_sums) prepare_rows(args, row_begin, row_end, sums, x_fp32);
    if (packed)
      amx_pack_x_rows(desc_, static_cast<const uint16_t*>(args.x), rows, row_begin,
                      row_end == rows ? padded_rows : row_end, packed);
  };
  if (parallel) {
    pool.run(tasks, [&](int task) { prepare(rows * task / tasks, rows * (task + 1) / tasks); });
  } else {
    prepare(0, rows);
  }
  if (packed) return {packed, sums};
  return {needs_fp32_x ? static_cast<const void*>(x_fp32) : args.x, sums};
}

void X86Kernel::run(const RunArgs& args) const {
  check_run_args(desc_, args);
  const std::pair<const void*, const float*> prepared = prepare_activations(args);
  const void* x = prepared.first;
  const float* sums = prepared.second;

  const int64_t panels = geometry_.panels;
  const int64_t blocks = (panels + variant_.n_panels - 1) / variant_.n_panels;
  const int parts = program_->split().parts;
  ThreadPool& pool = ThreadPool::instance();
  if (parts == 1) {
    // Whole register blocks of panels per thread, as even as the block count allows (the
    // cache-blocked kernels: in runs taken from a shared counter, run_blocked_runs).
    const int tasks = static_cast<int>(std::min<int64_t>(threads_, blocks));
    // One row block decodes each weight once either way; from two on, decoding once saves.
    const bool decode_once = decode_once_ && args.m > variant_.m_rows;
    if (decoder_) {
      run_blocked_runs(args, static_cast<const uint16_t*>(x), sums, tasks);
      return;
    }
    pool.run(tasks, [&](int task) {
      const int64_t first_block = blocks * task / tasks;
      const int64_t panel_begin = first_block * variant_.n_panels;
      const int64_t panel_end = std::min(panels, blocks * (task + 1) / tasks * variant_.n_panels);
      if (decode_once)
        run_panels_decoded_once(args, x, sums, panel_begin, panel_end);
      else
        run_panels(args, x, sums, panel_begin, panel_end, 0, nullptr);
    });
    return;
  }

  // Split K: every (register block, part) is a work item, parts of a block next to each other;
  // a thread takes a run of them. Then the parts are reduced, in part order, per column range.
  std::vector<float>& partials = thread_scratch().partials;
  partials.resize(static_cast<std::size_t>(parts * args.m * program_->split().partial_row_floats));
  const int64_t items = blocks * parts;
  const int tasks = static_cast<int>(std::min<int64_t>(threads_, items));
  pool.run(tasks, [&](int task) {
    for (int64_t item = items * task / tasks; item < items * (task + 1) / tasks; ++item) {
      const int64_t block = item / parts;
      run_panels(args, x, sums, block * variant_.n_panels, std::min(panels, (block + 1) * variant_.n_panels),
                 static_cast<int>(item % parts), partials.data());
    }
  });
  const int64_t column_blocks = (desc_.n + native_panel_width - 1) / native_panel_width;
  const bool parallel = args.m * desc_.n * parts >= parallel_reduce_elements && threads_ > 1;
  const int reduce_tasks = parallel ? static_cast<int>(std::min<int64_t>(threads_, column_blocks)) : 1;
  pool.run(reduce_tasks, [&](int task) {
    const int64_t begin = column_blocks * task / reduce_tasks * native_panel_width;
    const int64_t end = std::min(desc_.n, column_blocks * (task + 1) / reduce_tasks * native_panel_width);
    reduce_parts(args, partials.data(), begin, end);
  });
}

}  // namespace lowbit::x86
