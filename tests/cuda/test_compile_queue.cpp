// CI (no GPU): the compile queue (codegen/cuda/compile_queue.h) hands back every job once, each
// with its own program's cubin or its compile error, and can be dropped before it is drained.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "codegen/cuda/compile_queue.h"
#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/gemv_generator.h"
#include "codegen/cuda/registry.h"
#include "codegen/cuda/wgmma_generator.h"

namespace lowbit::cuda {
namespace {

#define SKIP_WITHOUT_NVRTC() \
  if (!nvrtc().available) GTEST_SKIP() << "NVRTC is not installed: " << nvrtc().reason

// Three gemv candidates of one shape, one of another, and a wgmma tile the generator refuses
// (three consumer warpgroups), whose emit throws: its error comes back like a compile's.
std::vector<CompileJob> mixed_jobs() {
  const OpDesc first = parse_descriptor("m=3,n=1000,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  const OpDesc second = parse_descriptor("m=1,n=96,k=544,bits=2,group=32,zero=none,act=fp16,device=cuda:0");
  GemvGenerator gemv;
  const std::vector<CudaVariant> variants = gemv.candidates(first);
  std::vector<CompileJob> jobs{{first, variants[0]}, {first, variants[1]}, {second, gemv.heuristic(second)}};
  const OpDesc tall = parse_descriptor("m=256,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0");
  CudaVariant refused = WgmmaGenerator(132).heuristic(tall);
  refused.block_n = 192;
  refused.warps = 12;
  jobs.push_back({tall, refused});
  jobs.push_back({first, variants[2]});
  return jobs;
}

TEST(CompileQueue, ReturnsEveryJobOnceWithItsOwnCubinOrError) {
  SKIP_WITHOUT_NVRTC();
  const std::vector<CompileJob> jobs = mixed_jobs();
  CompileQueue queue(jobs, "sm_90a", 2);
  ASSERT_EQ(queue.size(), jobs.size());
  std::set<std::size_t> returned;
  while (auto finished = queue.next()) {
    const std::size_t index = finished->first;
    ASSERT_LT(index, jobs.size());
    EXPECT_TRUE(returned.insert(index).second) << "job " << index << " returned twice";
    const CompileJob& job = jobs[index];
    if (index == 3) {
      EXPECT_TRUE(finished->second.cubin.empty());
      EXPECT_NE(finished->second.error.find("block_n=192"), std::string::npos) << finished->second.error;
      continue;
    }
    EXPECT_EQ(finished->second.error, "") << "job " << index;
    // NVRTC is deterministic: the job's own program, compiled here again, is the same cubin.
    EXPECT_EQ(finished->second.cubin,
              compile_to_cubin(emit(job.desc, job.variant), variant_name(job.desc, job.variant, "sm_90a"), "sm_90a"))
        << "job " << index;
  }
  EXPECT_EQ(returned.size(), jobs.size());
  EXPECT_FALSE(queue.next().has_value()) << "a drained queue keeps returning nothing";
  EXPECT_GT(queue.compile_seconds(), 0.0);
}

TEST(CompileQueue, DroppedBeforeDrainedStopsAndJoins) {
  SKIP_WITHOUT_NVRTC();
  std::vector<CompileJob> jobs = mixed_jobs();
  jobs.insert(jobs.end(), jobs.begin(), jobs.end());
  {
    CompileQueue queue(jobs, "sm_90a", 1);
    ASSERT_TRUE(queue.next().has_value());
  }  // the destructor hands out no further job and joins the one under way
  SUCCEED();
}

}  // namespace
}  // namespace lowbit::cuda
