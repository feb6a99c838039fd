#include "codegen/cuda/cuda_variant.h"

#include <fmt/format.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "lowbit/errors.h"
#include "lowbit/fields_json.h"

namespace lowbit::cuda {
std::string_view to_string(CudaFamily family) { return EnumNames<CudaFamily>::names[static_cast<std::size_t>(family)]; }

std::string variant_name(const OpDesc& desc, const CudaVariant& variant, const std::string& arch) {
  std::string compact_arch = arch;
  compact_arch.erase(std::remove(compact_arch.begin(), compact_arch.end(), '_'), compact_arch.end());
  std::string family(to_string(variant.family));
  family.erase(std::remove(family.begin(), family.end(), '_'), family.end());
  const std::string group = desc.group == whole_k_group ? std::string("k") : std::to_string(desc.group);
  if (variant.family == CudaFamily::mma)
    return fmt::format("cuda_{}_{}_w{}g{}_m{}_n{}m{}k{}_s{}_w{}x{}x{}", compact_arch, family, desc.bits, group, desc.m,
                       variant.block_n, variant.block_m, variant.block_k, variant.stages, variant.warps_n,
                       variant.warps_m, variant.warps_k);
  if (variant.family == CudaFamily::wgmma)
    return fmt::format("cuda_{}_{}_w{}g{}_m{}_n{}m{}k{}_s{}{}{}{}{}{}{}{}", compact_arch, family, desc.bits, group, desc.m,
                       variant.block_n, variant.block_m, variant.block_k, variant.stages,
                       variant.split_k == 1      ? std::string()
                       : variant.cluster_split == 0 ? fmt::format("_split{}", variant.split_k)
                                                    : fmt::format("_cs{}", variant.split_k),
                       variant.producer == 0 ? "" : "_ws",
                       variant.stream_k == 0 ? std::string() : fmt::format("_sk{}", variant.stream_k),
                       variant.remainder_split == 0 ? std::string() : fmt::format("r{}", variant.remainder_split),
                       variant.stream_k_plan == 0 ? "" : "p", variant.group_sums == 0 ? "" : "_gs",
                       variant.schedule_rows == 0 ? std::string() : fmt::format("_to{}", variant.schedule_rows));
  if (variant.family == CudaFamily::dequant_gemm)  // stages: tiles in flight per block of its dequantization pass
    return fmt::format("cuda_{}_{}_w{}g{}_m{}_w{}u{}s{}", compact_arch, family, desc.bits, group, desc.m, variant.warps,
                       variant.unroll, variant.stages);
  return fmt::format("cuda_{}_{}_w{}g{}_m{}_w{}u{}{}{}{}{}{}{}", compact_arch, family, desc.bits, group, desc.m,
                     variant.warps, variant.unroll,
                     variant.block_n == 0 ? std::string() : fmt::format("_n{}", variant.block_n),
                     variant.block_k == 0 ? std::string() : fmt::format("_k{}", variant.block_k),
                     variant.split_k == 1 ? std::string() : fmt::format("_split{}", variant.split_k),
                     variant.bulk_copy == 0 ? "" : "_bulk",
                     variant.panels == 1 ? std::string() : fmt::format("_p{}", variant.panels),
                     variant.prefetch == 0 ? "" : "_pf");
}

std::string family_field_misuse(const CudaVariant& variant) {
  // A field one or two families read, the value every other family must leave it at, and why.
  struct FamilyField {
    const char* name;
    int CudaVariant::*member;
    int neutral;
    bool wgmma, gemv_mma;  // the families that read it
    const char* what;
  };
  static constexpr FamilyField fields[] = {
      {"split_k", &CudaVariant::split_k, 1, true, true, "only the wgmma and gemv_mma families split K across blocks"},
      {"producer", &CudaVariant::producer, 0, true, false,
       "only the wgmma family has a warp-specialized copy warpgroup"},
      {"stream_k", &CudaVariant::stream_k, 0, true, false, "only the wgmma family has a stream-K schedule"},
      {"remainder_split", &CudaVariant::remainder_split, 0, true, false,
       "only the wgmma family's stream-K schedule shares a remainder of tiles"},
      {"cluster_split", &CudaVariant::cluster_split, 0, true, false,
       "only the wgmma family sums a split in a thread-block cluster's shared memory"},
      {"stream_k_plan", &CudaVariant::stream_k_plan, 0, true, false,
       "only the wgmma family's stream-K schedule plans its runs"},
      {"group_sums", &CudaVariant::group_sums, 0, true, false,
       "only the wgmma family scales its group sums instead of its weights"},
      {"schedule_rows", &CudaVariant::schedule_rows, 0, true, false,
       "only the wgmma family's any-M stream-K schedule is laid out for a row count"},
      {"bulk_copy", &CudaVariant::bulk_copy, 0, false, true,
       "only the gemv_mma family fills its ring with bulk copies"},
      {"panels", &CudaVariant::panels, 1, false, true, "only the gemv_mma family walks several panels per block"},
      {"prefetch", &CudaVariant::prefetch, 0, false, true,
       "only the gemv_mma family prefetches its weight spans into L2"},
  };
  const bool wgmma = variant.family == CudaFamily::wgmma;
  const bool gemv_mma = variant.family == CudaFamily::gemv_mma;
  for (const FamilyField& field : fields) {
    const int value = variant.*field.member;
    if (value == field.neutral || (field.wgmma && wgmma) || (field.gemv_mma && gemv_mma)) continue;
    return fmt::format("{}={}: {}; family={} needs {}={}", field.name, value, field.what, to_string(variant.family),
                       field.name, field.neutral);
  }
  return {};
}

nlohmann::json to_json(const CudaVariant& variant) { return fields_to_json(variant); }

CudaVariant variant_from_json(const nlohmann::json& json) {
  // The tile fields were added with the mma family (a gemv variant stored before lacks them),
  // split_k and producer with the wgmma family's split and copy warpgroup, bulk_copy and panels
  // with gemv_mma's bulk copies and panel walk, prefetch with its L2 prefetch, stream_k with the
  // wgmma family's stream-K schedule, remainder_split with its whole-tile first waves, cluster_split
  // with its split summed in a cluster, stream_k_plan with its planned runs, group_sums with its
  // unscaled weights, schedule_rows with its any-M stream-K (a variant stored before has none of them).
  nlohmann::json completed = json;
  if (completed.is_object()) {
    const nlohmann::json defaults = to_json(CudaVariant{});
    for (const char* name : {"block_n", "block_m", "block_k", "stages", "warps_n", "warps_m", "warps_k",
                             "split_k", "producer", "bulk_copy", "panels", "prefetch", "stream_k", "remainder_split",
                             "cluster_split", "stream_k_plan", "group_sums", "schedule_rows"})
      if (!completed.contains(name)) completed[name] = defaults[name];
  }
  return fields_from_json<CudaVariant>(completed, "CUDA variant");
}

}  // namespace lowbit::cuda
