// Stream-K runs planned against the fix-up's cost (the wgmma family's stream_k_plan = 1).
//
// A stream-K grid gives each of its sharing blocks a run of consecutive iterations (stage pairs)
// over the shared tiles. Where a run starts inside a tile, the block *deposits* that piece's fp32
// partial in the workspace; the block whose piece starts a tile *owns* it: it waits for every
// later block's deposit into that tile, adds it, and stores the tile. Even runs (the template's
// default: block x ITERATIONS / BLOCKS) end together, so the deposits, written last, sit on the
// owners' path: on the H100 a 128 KiB deposit took 3.4 us against 1.2 to read it back, and at
// M = 256 on 6144x4096 the launch ended 10 us after the blocks' main loops (docs/benchmarks.md,
// the stream-K timeline). A plan moves the run boundaries so that every block, deposit, waits
// and reads included, ends as early as possible: blocks that deposit get less work, owners more.
//
// The plan is computed at code generation from a model of one block's time (FixUpCosts) and
// emitted as a table of run beginnings (WgmmaGenerator::emit); the kernel only follows it.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit::cuda {

// The shared part of a stream-K grid: `tiles` tiles of `pairs` iterations each, shared by
// `blocks` blocks (each at least one iteration: blocks <= tiles x pairs).
struct StreamKShape {
  int64_t tiles = 0;
  int64_t pairs = 0;
  int blocks = 0;
  int64_t iterations() const { return tiles * pairs; }
};

// One block's costs, in microseconds (only their ratios shape a plan).
struct FixUpCosts {
  double pair = 1.0;     // one iteration of the main loop
  double deposit = 0.0;  // a partial stored, fenced and flagged
  double read = 0.0;     // a partial waited for and added by its owner
  double store = 0.0;    // the owner's epilogue: the tile to y
};

// The H100 model of a block_n x block_m tile with block_k-k stages (fitted to the stream-K
// timelines of docs/benchmarks.md; the .cpp gives the figures).
FixUpCosts h100_fix_up_costs(int block_n, int block_m, int block_k);

// Run beginnings: blocks + 1 iteration indices, the first 0, the last shape.iterations(),
// strictly increasing; block b runs [begins[b], begins[b + 1]).
using RunBegins = std::vector<int64_t>;

// The template's even runs: b x iterations / blocks.
RunBegins even_runs(const StreamKShape& shape);
// Each block's modelled end (after its last segment's fix-up), in microseconds from the shared
// phase's start.
std::vector<double> modelled_ends(const StreamKShape& shape, const FixUpCosts& costs, const RunBegins& begins);
// The latest of modelled_ends.
double modelled_makespan(const StreamKShape& shape, const FixUpCosts& costs, const RunBegins& begins);
// Runs that end no later than the even ones by the model, found by moving single boundaries while
// the block ends, latest first, compare lexicographically smaller (deterministic: the same shape
// and costs give the same plan).
RunBegins planned_runs(const StreamKShape& shape, const FixUpCosts& costs);

}  // namespace lowbit::cuda
