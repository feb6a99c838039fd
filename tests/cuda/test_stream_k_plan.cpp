// Stream-K runs planned against the fix-up's cost (codegen/cuda/stream_k_plan.h): the model of
// each block's end on a case worked by hand, the plan's invariants (every iteration run once, by
// consecutive blocks, each at least one; never later than the even runs by the model), and what
// it does on the H100 grids it was made for. Host code only: no GPU needed.
#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "codegen/cuda/stream_k_plan.h"

namespace lowbit::cuda {
namespace {

// The run beginnings are a partition of the shared iterations over the blocks.
void expect_partition(const StreamKShape& shape, const RunBegins& begins) {
  ASSERT_EQ(begins.size(), static_cast<std::size_t>(shape.blocks) + 1);
  EXPECT_EQ(begins.front(), 0);
  EXPECT_EQ(begins.back(), shape.iterations());
  for (int block = 0; block < shape.blocks; ++block) EXPECT_LT(begins[block], begins[block + 1]) << block;
}

TEST(StreamKPlan, EvenRunsAreTheTemplates) {
  const StreamKShape shape{7, 5, 4};  // 35 iterations on 4 blocks: the template's b x 35 / 4
  EXPECT_EQ(even_runs(shape), (RunBegins{0, 8, 17, 26, 35}));
}

// Two tiles of 4 iterations on 3 blocks, even runs [0, 2), [2, 5), [5, 8); an iteration costs 1,
// a deposit 2, a read 1, a store 1:
// - block 1 deposits its piece of tile 0 (iterations 2, 3) at 2 + 2 = 4, then owns tile 1 from
//   iteration 4: its loop ends at 5, block 2's deposit (iterations 5..7) is flagged at 3 + 2 = 5,
//   read by 6, stored by 7;
// - block 0 owns tile 0: its loop ends at 2, it waits for block 1's deposit (4), reads it (5) and
//   stores (6);
// - block 2 only deposits: 5.
TEST(StreamKPlan, ModelledEndsOfAWorkedCase) {
  const StreamKShape shape{2, 4, 3};
  const FixUpCosts costs{1.0, 2.0, 1.0, 1.0};
  const std::vector<double> ends = modelled_ends(shape, costs, even_runs(shape));
  EXPECT_EQ(ends, (std::vector<double>{6.0, 7.0, 5.0}));
  EXPECT_EQ(modelled_makespan(shape, costs, even_runs(shape)), 7.0);
  // Runs on tile boundaries: no deposit, no read; each owner loops and stores.
  const StreamKShape whole{3, 4, 3};
  EXPECT_EQ(modelled_ends(whole, costs, even_runs(whole)), (std::vector<double>{5.0, 5.0, 5.0}));
}

// The plan never ends later than the even runs by the model, and partitions the iterations, over
// shapes of every kind: more blocks than tiles, fewer, one block, a block an iteration, costs
// with and without a fix-up.
TEST(StreamKPlan, PlansPartitionAndNeverEndLater) {
  const std::vector<FixUpCosts> every_cost = {{1.0, 0.0, 0.0, 0.0}, {1.0, 3.0, 1.0, 1.0}, {1.5, 3.4, 1.2, 1.0},
                                              h100_fix_up_costs(128, 128, 128), h100_fix_up_costs(64, 256, 64)};
  for (const StreamKShape& shape : {StreamKShape{48, 32, 132}, StreamKShape{96, 16, 132}, StreamKShape{60, 32, 120},
                                    StreamKShape{3, 17, 7}, StreamKShape{1, 1, 1}, StreamKShape{5, 3, 15},
                                    StreamKShape{11, 9, 2}, StreamKShape{224, 16, 132}})
    for (const FixUpCosts& costs : every_cost) {
      const RunBegins plan = planned_runs(shape, costs);
      expect_partition(shape, plan);
      EXPECT_LE(modelled_makespan(shape, costs, plan), modelled_makespan(shape, costs, even_runs(shape)))
          << shape.tiles << " tiles of " << shape.pairs << " on " << shape.blocks;
      EXPECT_EQ(plan, planned_runs(shape, costs));  // deterministic
    }
}

// The H100 grids the plan was made for (docs/benchmarks.md): the hybrid's remaining 60 tiles of
// 128 x 256 halved over 120 blocks (M = 1024 on 6144x4096) come out cut once each, the owner's
// piece the longer (the contributor's deposit then lands while the owner still runs), and
// stream-K's 48 tiles on 132 blocks (M = 256 on 6144x4096) end earlier than with even runs.
TEST(StreamKPlan, OwnersRunLongerOnTheH100Grids) {
  const FixUpCosts tall = h100_fix_up_costs(128, 256, 64);
  const StreamKShape halves{60, 32, 120};
  const RunBegins plan = planned_runs(halves, tall);
  for (int tile = 0; tile < halves.tiles; ++tile) {
    EXPECT_EQ(plan[2 * tile], tile * halves.pairs) << tile;
    EXPECT_GT(plan[2 * tile + 1] - plan[2 * tile], halves.pairs / 2) << tile;
  }
  EXPECT_LT(modelled_makespan(halves, tall, plan), modelled_makespan(halves, tall, even_runs(halves)) - 1.0);
  const StreamKShape shared{48, 32, 132};
  EXPECT_LT(modelled_makespan(shared, tall, planned_runs(shared, tall)),
            modelled_makespan(shared, tall, even_runs(shared)) - 1.0);
}

TEST(StreamKPlan, RefusesShapesWithoutAnIterationForEveryBlock) {
  EXPECT_THROW(even_runs(StreamKShape{2, 3, 7}), std::invalid_argument);
  EXPECT_THROW(planned_runs(StreamKShape{0, 3, 1}, FixUpCosts{}), std::invalid_argument);
}

}  // namespace
}  // namespace lowbit::cuda
