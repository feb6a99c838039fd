// The CLI's commands, one function each; main.cpp only parses arguments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::cli {

struct Options {
  std::vector<std::string> descriptors;
  std::string db;
  std::vector<std::string> shipped_dbs;  // get --shipped-db: GetOptions.shipped_caches
  int threads = 0;
  bool json = false;
  bool no_tune = false;
  std::string arch;
  std::string out;
  std::string variant;  // compile --variant: a candidate's full name instead of the heuristic's
  std::string isa;  // --isa: x86 ISA family (GetOptions.isa)
  int rounds = 1;   // bench --rounds: CPU rows alternate a bandwidth reading and a kernel timing this often
  int64_t rows = 0;  // bench --rows: the M of an m=0 descriptor's timed call (0: any_m_rows)
  int top = 5;       // tune --top: the verified candidates each JSON result lists, fastest first
  bool exhaustive = false;  // tune --exhaustive: every CUDA candidate of every family
  std::vector<std::string> from;        // merge --from: the cache files merged into --db
  std::string on_conflict = "faster";   // merge --on-conflict: faster, newer or keep
};

int run_info(const Options& options);
int run_tune(const Options& options);
int run_get(const Options& options);
int run_bench(const Options& options);
int run_show(const Options& options);
int run_compile(const Options& options);
int run_export(const Options& options);
int run_merge(const Options& options);

}  // namespace lowbit::cli
