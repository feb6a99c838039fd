#include "codegen/cuda/stream_k_plan.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>

namespace lowbit::cuda {
namespace {

// The H100's figures behind h100_fix_up_costs (docs/benchmarks.md, "stream-K's fix-up timed per
// block", int4 g128 bf16 at M = 256 on 6144x4096, main loops of 11.6 iterations a block):
// - an iteration's main loop, per 128 k of a 128-column tile: 0.288 + 0.00489 x block_m us (fitted
//   to the two timed tiles: n128m256k64's 11.6 iterations of 128 k ended at 17.9 us, n128m128k128's
//   of 256 k at 21.3); scaled by the columns for 64-column tiles (one warpgroup: an estimate);
// - a deposit (32 float4 stores a consumer thread, the barrier, the fence and the flag): 1.0 us
//   plus the partial at 55 bytes/ns (128 KiB: 3.4-3.7 us measured, 64 KiB: 2.3);
// - an owner's read of a partial: 0.16 us for the flag, plus the partial at 125 bytes/ns (128 KiB:
//   1.06-1.25 us, 64 KiB: 0.67);
// - the owner's epilogue: 1.0 us (1.0-1.1 measured at M = 256).
constexpr double loop_us_per_128k = 0.288;
constexpr double loop_us_per_128k_and_row = 0.00489;
constexpr double deposit_fixed_us = 1.0;
constexpr double deposit_bytes_per_us = 55000.0;
constexpr double read_fixed_us = 0.16;
constexpr double read_bytes_per_us = 125000.0;
constexpr double store_us = 1.0;
// planned_runs bisects the makespan to within this.
constexpr double bisection_tolerance_us = 0.01;

// When a block running [first, end) flags its deposit (its first segment, where that starts inside
// a tile: only a run's first segment can), or 0 where it deposits nothing.
double deposit_time(const StreamKShape& shape, const FixUpCosts& costs, int64_t first, int64_t end) {
  if (first % shape.pairs == 0) return 0.0;
  const int64_t tile_end = first / shape.pairs * shape.pairs + shape.pairs;
  return static_cast<double>(std::min(end, tile_end) - first) * costs.pair + costs.deposit;
}

// Block `block`'s modelled end when it runs [first, end), the later blocks' runs (begins past
// block + 1) and deposit times (flagged) being set.
double block_end(const StreamKShape& shape, const FixUpCosts& costs, const RunBegins& begins,
                 const std::vector<double>& flagged, int block, int64_t first, int64_t end) {
  double clock = 0.0;
  for (int64_t at = first; at < end;) {
    const int64_t tile_begin = at / shape.pairs * shape.pairs;
    const int64_t tile_end = tile_begin + shape.pairs;
    const int64_t segment_end = std::min(end, tile_end);
    clock += static_cast<double>(segment_end - at) * costs.pair;
    if (at != tile_begin) {
      clock += costs.deposit;
    } else {
      for (int other = block + 1; other < shape.blocks && begins[other] < tile_end; ++other)
        clock = std::max(clock, flagged[other]) + costs.read;
      clock += costs.store;
    }
    at = segment_end;
  }
  return clock;
}

// Runs whose modelled ends are all within `target`, or nothing where this construction finds
// none. From the last block back, each block takes the longest run (its beginning as early as
// possible, at least one iteration left to every earlier block) that ends by the target, and
// whose deposit, if it starts inside a tile, leaves that tile's owner time to read it and every
// later deposit into the tile and store by the target (a bound every owner's end must meet).
std::optional<RunBegins> runs_ending_by(const StreamKShape& shape, const FixUpCosts& costs, double target) {
  RunBegins begins(shape.blocks + 1, 0);
  begins[shape.blocks] = shape.iterations();
  std::vector<double> flagged(shape.blocks, 0.0);
  const int64_t longest = static_cast<int64_t>(std::ceil(target / costs.pair)) + 1;
  for (int block = shape.blocks - 1; block >= 0; --block) {
    const int64_t end = begins[block + 1];
    // Block 0 begins at 0; block b > 0 leaves an iteration to each of the b before it.
    const int64_t latest = block == 0 ? 0 : end - 1;
    const int64_t earliest = block == 0 ? 0 : std::max<int64_t>(block, end - longest);
    std::optional<int64_t> chosen;
    for (int64_t first = latest; first >= earliest; --first) {
      if (block_end(shape, costs, begins, flagged, block, first, end) > target) continue;
      if (first % shape.pairs != 0) {
        const int64_t tile_end = first / shape.pairs * shape.pairs + shape.pairs;
        int readers = 1;  // this deposit and the later ones into the same tile
        for (int other = block + 1; other < shape.blocks && begins[other] < tile_end; ++other) ++readers;
        if (deposit_time(shape, costs, first, end) + readers * costs.read + costs.store > target) continue;
      }
      chosen = first;
    }
    if (!chosen) return std::nullopt;
    begins[block] = *chosen;
    flagged[block] = deposit_time(shape, costs, *chosen, end);
  }
  return begins;
}

void check_shape(const StreamKShape& shape) {
  if (shape.tiles < 1 || shape.pairs < 1 || shape.blocks < 1 || shape.blocks > shape.iterations())
    throw std::invalid_argument("stream-K plan: needs tiles, pairs and blocks >= 1, and blocks <= tiles x pairs");
}

}  // namespace

FixUpCosts h100_fix_up_costs(int block_n, int block_m, int block_k) {
  const double partial_bytes = 4.0 * block_n * block_m;
  FixUpCosts costs;
  costs.pair = (2.0 * block_k / 128.0) * (block_n / 128.0) * (loop_us_per_128k + loop_us_per_128k_and_row * block_m);
  costs.deposit = deposit_fixed_us + partial_bytes / deposit_bytes_per_us;
  costs.read = read_fixed_us + partial_bytes / read_bytes_per_us;
  costs.store = store_us;
  return costs;
}

RunBegins even_runs(const StreamKShape& shape) {
  check_shape(shape);
  RunBegins begins(shape.blocks + 1);
  for (int block = 0; block <= shape.blocks; ++block) begins[block] = block * shape.iterations() / shape.blocks;
  return begins;
}

std::vector<double> modelled_ends(const StreamKShape& shape, const FixUpCosts& costs, const RunBegins& begins) {
  std::vector<double> flagged(shape.blocks);
  for (int block = 0; block < shape.blocks; ++block) flagged[block] = deposit_time(shape, costs, begins[block], begins[block + 1]);
  std::vector<double> ends(shape.blocks);
  for (int block = 0; block < shape.blocks; ++block)
    ends[block] = block_end(shape, costs, begins, flagged, block, begins[block], begins[block + 1]);
  return ends;
}

double modelled_makespan(const StreamKShape& shape, const FixUpCosts& costs, const RunBegins& begins) {
  const std::vector<double> ends = modelled_ends(shape, costs, begins);
  return *std::max_element(ends.begin(), ends.end());
}

RunBegins planned_runs(const StreamKShape& shape, const FixUpCosts& costs) {
  RunBegins plan = even_runs(shape);
  double planned = modelled_makespan(shape, costs, plan);
  // Bisect the makespan between the work alone spread evenly and the even runs' end.
  double low = static_cast<double>(shape.iterations()) * costs.pair / shape.blocks;
  double high = planned;
  for (int step = 0; step < 40 && high - low > bisection_tolerance_us; ++step) {
    const double target = 0.5 * (low + high);
    if (std::optional<RunBegins> runs = runs_ending_by(shape, costs, target)) {
      const double makespan = modelled_makespan(shape, costs, *runs);
      if (makespan < planned) planned = makespan, plan = std::move(*runs);
      high = target;
    } else {
      low = target;
    }
  }
  return plan;
}

}  // namespace lowbit::cuda
