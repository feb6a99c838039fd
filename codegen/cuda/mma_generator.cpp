#include "codegen/cuda/mma_generator.h"

#include <fmt/format.h>

#include <algorithm>

#include "codegen/cuda/embedded_templates.h"
#include "codegen/cuda/template_constants.h"
#include "lowbit/errors.h"
#include "lowbit/native_layout.h"

namespace lowbit::cuda {
namespace {

// The most dynamic shared memory a block may opt into (cudaDevAttrMaxSharedMemoryPerBlockOptin):
// 99 KiB on sm_86/sm_89 (sm_80 has 163 KiB; the family's smallest is taken), 227 KiB on sm_90.
int shared_limit(int arch_major) { return arch_major >= 9 ? 232448 : 101376; }

bool power_of_two(int value) { return value > 0 && (value & (value - 1)) == 0; }

int round_up(int64_t value, int multiple) { return static_cast<int>((value + multiple - 1) / multiple * multiple); }

// The tile shapes searched: small blocks with warps splitting K where N alone gives too few
// blocks to fill the GPU at small M; larger blocks where M brings reuse of the dequantized
// weights. Warp tiles stay at 32 x 16 .. 32 x 32 (64 .. 128 accumulators a lane).
struct Shape {
  int block_n, block_m, block_k, stages, warps_n, warps_m, warps_k;
};
constexpr Shape searched_shapes[] = {
    {32, 16, 128, 4, 1, 1, 4},  {64, 16, 128, 4, 2, 1, 2},  {64, 32, 64, 4, 2, 1, 2},   {128, 32, 64, 4, 4, 1, 1},
    {64, 64, 64, 4, 2, 2, 1},   {128, 64, 64, 3, 4, 2, 1},  {128, 64, 64, 4, 4, 2, 1},  {128, 128, 32, 4, 4, 4, 1},
    {32, 16, 256, 4, 1, 1, 8},  {64, 16, 256, 3, 2, 1, 4},  {16, 16, 256, 4, 1, 1, 8},  {64, 64, 128, 3, 2, 2, 2},
};

CudaVariant variant_of(const Shape& shape) {
  CudaVariant variant;
  variant.family = CudaFamily::mma;
  variant.warps = shape.warps_n * shape.warps_m * shape.warps_k;
  variant.block_n = shape.block_n;
  variant.block_m = shape.block_m;
  variant.block_k = shape.block_k;
  variant.stages = shape.stages;
  variant.warps_n = shape.warps_n;
  variant.warps_m = shape.warps_m;
  variant.warps_k = shape.warps_k;
  return variant;
}

}  // namespace

int MmaGenerator::shared_bytes(const OpDesc& desc, const CudaVariant& variant) {
  const bool whole_k = desc.group == whole_k_group;
  const int group = static_cast<int>(desc.group_size());
  const int stage_groups = whole_k || group >= variant.block_k ? 1 : variant.block_k / group;
  const int panels = variant.block_n / 16;
  // As MmaTile: weights [panels][block_k / 16][32 * bits bytes]; x [block_m][block_k + pad] 16-bit
  // (pad 8 for ldmatrix reads at 4 and 8 bits, 16 for 8-byte reads at 2 and 3 bits); scale and
  // zero tables; eqscale: [block_k] fp32.
  const int x_pad = desc.bits == 4 || desc.bits == 8 ? 8 : 16;
  const int stage_bytes = panels * variant.block_k / 16 * 32 * desc.bits + variant.block_m * (variant.block_k + x_pad) * 2 +
                          2 * panels * stage_groups * 32 + (desc.eqscale ? variant.block_k * 4 : 0);
  const int pipeline = variant.stages * stage_bytes;
  const int reduce = (variant.warps_k - 1) * variant.block_n * variant.block_m * 4;
  return std::max(pipeline, reduce);
}

Validity MmaGenerator::is_valid(const OpDesc& desc, const CudaVariant& variant, int arch_major) const {
  auto refuse = [](std::string reason) { return Validity{false, std::move(reason)}; };
  if (variant.family != CudaFamily::mma) return refuse("the mma generator builds family=mma variants only");
  if (desc.device.kind != DeviceKind::cuda) return refuse("the CUDA generators serve device=cuda:N only");
  if (arch_major < 8) return refuse("the mma family needs compute capability 8.0 or newer (bf16 mma.sync, cp.async)");
  if (desc.bits != 2 && desc.bits != 3 && desc.bits != 4 && desc.bits != 8)
    return refuse(fmt::format("bits={}: the mma family is generated for bits 2, 3, 4 and 8", desc.bits));
  if (desc.compute != Compute::floating) return refuse("compute=int8 is not generated on CUDA");
  if (desc.layout != Layout::native) return refuse("only layout=native is read by CUDA kernels");
  if (desc.act == DType::fp32) return refuse("the mma family needs act=bf16 or fp16 (tensor-core operands)");
  if (desc.m < 0 || desc.m > max_rows)
    return refuse(fmt::format("m={}: the mma family serves an exact m=1..{} or m=0 (any M)", desc.m, max_rows));
  if (desc.k >= (int64_t{1} << 27))
    return refuse(fmt::format("k={}: the mma family keeps k offsets in 32 bits (k < 2^27)", desc.k));
  if (round_up(desc.n, 16) / 16 > (int64_t{1} << 26))
    return refuse(fmt::format("n={}: too many panels for the grid", desc.n));
  if (!power_of_two(variant.block_n) || variant.block_n < 16 || variant.block_n > 256)
    return refuse(fmt::format("block_n={}: must be a power of two in 16..256", variant.block_n));
  if (!power_of_two(variant.block_m) || variant.block_m < 16 || variant.block_m > 256)
    return refuse(fmt::format("block_m={}: must be a power of two in 16..256", variant.block_m));
  if (!power_of_two(variant.block_k) || variant.block_k < 32 || variant.block_k > 256)
    return refuse(fmt::format("block_k={}: must be a power of two in 32..256", variant.block_k));
  if (variant.stages < 2 || variant.stages > 8) return refuse(fmt::format("stages={}: must be 2..8", variant.stages));
  if (!power_of_two(variant.warps_n) || !power_of_two(variant.warps_m) || !power_of_two(variant.warps_k))
    return refuse("warps_n, warps_m and warps_k must be powers of two");
  if (variant.warps != variant.warps_n * variant.warps_m * variant.warps_k || variant.warps > 16)
    return refuse(fmt::format("warps={} must be warps_n*warps_m*warps_k = {} and at most 16", variant.warps,
                              variant.warps_n * variant.warps_m * variant.warps_k));
  if (variant.unroll != CudaVariant{}.unroll)
    return refuse(fmt::format("unroll={}: the mma family does not read unroll; leave it at {}", variant.unroll,
                              CudaVariant{}.unroll));
  if (variant.block_n % (16 * variant.warps_n) != 0)
    return refuse(fmt::format("block_n={} must give each of warps_n={} warps whole 16-column panels", variant.block_n,
                              variant.warps_n));
  if (variant.block_m % (16 * variant.warps_m) != 0)
    return refuse(fmt::format("block_m={} must give each of warps_m={} warps whole 16-row tiles", variant.block_m,
                              variant.warps_m));
  if ((variant.block_k / 16) % variant.warps_k != 0)
    return refuse(fmt::format("block_k={} must give each of warps_k={} warps the same number of 16-k tiles",
                              variant.block_k, variant.warps_k));
  const int warp_tiles = variant.block_n / variant.warps_n / 16 * (variant.block_m / variant.warps_m / 8);
  if (warp_tiles > 16)
    return refuse(fmt::format("a warp tile of {} x {} needs {} accumulators a lane (at most 64 fit beside the "
                              "group sums)",
                              variant.block_n / variant.warps_n, variant.block_m / variant.warps_m, 4 * warp_tiles));
  const int shared = shared_bytes(desc, variant);
  if (shared > shared_limit(arch_major))
    return refuse(fmt::format("{} bytes of shared memory exceed the {} a block may use on compute capability {}.x",
                              shared, shared_limit(arch_major), arch_major));
  return {};
}

std::vector<CudaVariant> MmaGenerator::candidates(const OpDesc& desc) const {
  // Blocks much taller than M only compute zeros: keep block_m within M rounded up to 16.
  const int rows = std::max(16, round_up(std::max<int64_t>(desc.m, 1), 16));
  std::vector<CudaVariant> variants;
  for (const Shape& shape : searched_shapes) {
    CudaVariant variant = variant_of(shape);
    if (variant.block_m <= rows && is_valid(desc, variant, 9)) variants.push_back(variant);
  }
  return variants;
}

CudaVariant MmaGenerator::heuristic(const OpDesc& desc) const {
  // The candidates that won on an H100 (docs/benchmarks.md, the four Llama-3-8B shapes at
  // M = 16..256). Small M: few rows to reuse a weight tile, so narrow blocks with warps
  // splitting K give enough blocks; wide N (>= 16384) fills the GPU with wider tiles, which
  // re-read x less. Larger M: taller tiles, which re-read the weights less.
  const bool wide = desc.n >= 16384;
  const bool deep = desc.k >= 8192;
  Shape shape = searched_shapes[0];
  if (desc.m <= 16)
    shape = wide ? Shape{64, 16, 128, 4, 2, 1, 2} : desc.n >= 6144 ? Shape{64, 16, 256, 3, 2, 1, 4}
                                                                 : Shape{32, 16, 256, 4, 1, 1, 8};
  else if (desc.m <= 32)
    shape = wide ? Shape{128, 32, 64, 4, 4, 1, 1} : Shape{64, 16, 256, 3, 2, 1, 4};
  else if (desc.m <= 64)
    // Bits 2, 3 and 8 on 4096 columns at M=64 ran best with the deep-K shape (3 bits: 36.1 µs
    // against the int4 rule's 42.2; docs/benchmarks.md, "mma family: bits 2, 3 and 8").
    shape = wide                   ? Shape{128, 64, 64, 4, 4, 2, 1}
            : deep || desc.bits != 4 ? Shape{64, 16, 256, 3, 2, 1, 4}
                                     : Shape{64, 16, 128, 4, 2, 1, 2};
  else if (desc.m <= 128)
    shape = wide ? Shape{128, 32, 64, 4, 4, 1, 1} : desc.n >= 6144 && !deep ? Shape{64, 32, 64, 4, 2, 1, 2}
                                                                          : Shape{64, 64, 128, 3, 2, 2, 2};
  else
    shape = Shape{128, 32, 64, 4, 4, 1, 1};
  const CudaVariant chosen = variant_of(shape);
  if (is_valid(desc, chosen, 9)) return chosen;
  const std::vector<CudaVariant> variants = candidates(desc);
  return variants.empty() ? chosen : variants.front();  // is_valid names the reason when none serves
}

LaunchGeometry MmaGenerator::launch_geometry(const OpDesc& desc, const CudaVariant& variant) const {
  LaunchGeometry geometry;
  // x fastest over M: the blocks that share a weight tile run together and share it in L2.
  // m=0 (any M): one block row here; CudaKernel::run sizes the grid to each call's rows.
  geometry.grid_x = static_cast<unsigned>((std::max<int64_t>(desc.m, 1) + variant.block_m - 1) / variant.block_m);
  geometry.grid_y = static_cast<unsigned>((desc.n + variant.block_n - 1) / variant.block_n);
  geometry.threads = static_cast<unsigned>(variant.warps * 32);
  geometry.shared_bytes = static_cast<unsigned>(shared_bytes(desc, variant));
  return geometry;
}

std::string MmaGenerator::emit(const OpDesc& desc, const CudaVariant& variant) const {
  const Validity validity = is_valid(desc, variant, 9);
  if (!validity) throw Unsupported(fmt::format("cannot emit {}: {}", variant_name(desc, variant, "sm_90a"), validity.reason));
  // The GEMM reuses the GEMV template's conversion helpers, so both files are emitted (the
  // per-width decode, mma_format.cuh, is inlined into mma_gemm.cuh by the build).
  const std::string body = embedded_templates().at("gemv.cuh") + embedded_templates().at("mma_gemm.cuh");
  return fmt::format(
      "{body}\n"
      "// Instantiation for {descriptor}\n"
      "struct LowbitConfig {{\n"
      "{problem}"
      "  static constexpr int BLOCK_N = {block_n};\n"
      "  static constexpr int BLOCK_M = {block_m};\n"
      "  static constexpr int BLOCK_K = {block_k};\n"
      "  static constexpr int STAGES = {stages};\n"
      "  static constexpr int WARPS_N = {warps_n};\n"
      "  static constexpr int WARPS_M = {warps_m};\n"
      "  static constexpr int WARPS_K = {warps_k};\n"
      "  static constexpr int BITS = {bits};\n"
      "  static constexpr bool EQSCALE = {eqscale};\n"
      "}};\n"
      "static_assert(lowbit_gemv::MmaTile<LowbitConfig>::SHARED_BYTES == {shared}, \"generator and template agree\");\n"
      "extern \"C\" __global__ void __launch_bounds__({threads}) {entry}(const void* x, const void* qweight,\n"
      "    const unsigned short* scales, const unsigned short* zeros, const void* bias,\n"
      "    const float* eq_scale, void* y, int rows) {{\n"
      "  extern __shared__ __align__(16) unsigned char shared[];\n"
      "  lowbit_gemv::mma_gemm<LowbitConfig>(x, static_cast<const unsigned char*>(qweight), scales, zeros, bias, "
      "eq_scale, y, shared, rows);\n"
      "}}\n",
      fmt::arg("body", body), fmt::arg("descriptor", to_string(desc)), fmt::arg("problem", problem_constants(desc)),
      fmt::arg("block_n", variant.block_n),
      fmt::arg("block_m", variant.block_m), fmt::arg("block_k", variant.block_k), fmt::arg("stages", variant.stages),
      fmt::arg("warps_n", variant.warps_n), fmt::arg("warps_m", variant.warps_m), fmt::arg("warps_k", variant.warps_k),
      fmt::arg("bits", desc.bits), fmt::arg("eqscale", desc.eqscale ? "true" : "false"),
      fmt::arg("shared", shared_bytes(desc, variant)), fmt::arg("threads", variant.warps * 32),
      fmt::arg("entry", entry_point));
}

}  // namespace lowbit::cuda
