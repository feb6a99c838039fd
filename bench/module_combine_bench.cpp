// Whether one cubin holding several kernels loads faster than one cubin each: an m=0 descriptor's
// row parts (the heuristic kernel of each row count 1..--rows) are emitted as lowbit emits them,
// then compiled (a) one program each, as get_kernel loads them today, and (b) as one program:
// the family's templates once, each part's instantiation after them with its Config and entry
// names suffixed by its row count. Each round loads every module and looks up every entry
// (cuModuleLoadData + cuModuleGetFunction: with the driver's lazy loading the lookup may be where
// a kernel's code is loaded), then unloads them, untimed. Prints the first round of each way (the
// process's first load is what a new process pays; --combined-first picks which way goes first)
// and the median of --repeats alternating rounds. Without a GPU it compiles and reports sizes.
// Parts whose templates differ from the first part's are left out and counted.
// Usage: lowbit_module_combine_bench [--desc D] [--rows N] [--repeats N] [--combined-first]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "codegen/cuda/cuda_api.h"
#include "codegen/cuda/registry.h"
#include "lowbit/descriptor.h"
#include "lowbit/errors.h"

namespace {

namespace cuda = lowbit::cuda;
using Clock = std::chrono::steady_clock;

constexpr const char* instantiation_marker = "\n// Instantiation for ";

// Every name an instantiation defines at namespace scope, which two parts in one program would share.
const char* const part_names[] = {"LowbitConfig", "lowbit_kernel", "lowbit_split_sum", "lowbit_split_reduce",
                                  "lowbit_stream_k_runs"};

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

struct Part {
  int rows = 0;
  std::string body;           // the templates
  std::string instantiation;  // Config and entries, names as emitted
  std::vector<std::string> entries;
};

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Loads each cubin and looks up its entries; returns the wall milliseconds, unloads after.
double load_and_look_up(const std::vector<std::vector<char>>& cubins, const std::vector<std::vector<std::string>>& entries) {
  std::vector<CUmodule> modules(cubins.size(), nullptr);
  const Clock::time_point start = Clock::now();
  for (std::size_t index = 0; index < cubins.size(); ++index) {
    cuda::check(cuda::driver().cuModuleLoadData(&modules[index], cubins[index].data()), "cuModuleLoadData");
    for (const std::string& entry : entries[index]) {
      CUfunction function = nullptr;
      cuda::check(cuda::driver().cuModuleGetFunction(&function, modules[index], entry.c_str()), "cuModuleGetFunction");
    }
  }
  const double elapsed = milliseconds_since(start);
  for (CUmodule module : modules) cuda::driver().cuModuleUnload(module);
  return elapsed;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string desc_text = "m=1,n=6144,k=4096,bits=4,group=128,zero=int,act=bf16,device=cuda:0";
  int rows = 16;
  int repeats = 9;
  bool combined_first = false;
  CLI::App app{"lowbit_module_combine_bench: one cubin holding every row part against one cubin a part"};
  app.add_option("--desc", desc_text, "descriptor; its m is replaced by 1..--rows");
  app.add_option("--rows", rows, "row counts")->check(CLI::Range(1, 64));
  app.add_option("--repeats", repeats, "rounds of each way")->check(CLI::Range(1, 1000));
  app.add_flag("--combined-first", combined_first, "load the combined cubin first");
  CLI11_PARSE(app, argc, argv);
  try {
    const std::string arch = "sm_90a";
    std::vector<Part> parts;
    int left_out = 0;
    for (int row = 1; row <= rows; ++row) {
      lowbit::OpDesc desc = lowbit::parse_descriptor(desc_text);
      desc.m = row;
      const cuda::CudaVariant variant = cuda::heuristic(desc, 9, 132);
      const std::string source = cuda::emit(desc, variant);
      const std::size_t marker = source.find(instantiation_marker);
      if (marker == std::string::npos) throw lowbit::Error("no instantiation marker in the source of row " + std::to_string(row));
      Part part{row, source.substr(0, marker), source.substr(marker), {}};
      if (!parts.empty() && part.body != parts.front().body) {
        ++left_out;
        continue;
      }
      for (const char* entry : {"lowbit_kernel", "lowbit_split_sum", "lowbit_split_reduce"})
        if (part.instantiation.find(std::string(entry) + "(") != std::string::npos) part.entries.push_back(entry);
      std::printf("row %2d: %s, entries %zu\n", row, cuda::variant_name(desc, variant, arch).c_str(), part.entries.size());
      parts.push_back(std::move(part));
    }
    std::printf("%zu parts share the first part's templates; %d left out\n", parts.size(), left_out);

    // (a) one program a part, compiled on a thread each.
    std::vector<std::vector<char>> separate(parts.size());
    Clock::time_point start = Clock::now();
    {
      std::vector<std::thread> workers;
      for (std::size_t index = 0; index < parts.size(); ++index)
        workers.emplace_back([&, index] {
          separate[index] = cuda::compile_to_cubin(parts[index].body + parts[index].instantiation, "part.cu", arch);
        });
      for (std::thread& worker : workers) worker.join();
    }
    const double separate_compile_ms = milliseconds_since(start);
    // (b) one program: the templates once, every instantiation with its names suffixed.
    std::string combined_source = parts.front().body;
    std::vector<std::string> combined_entries;
    for (const Part& part : parts) {
      std::string instantiation = part.instantiation;
      const std::string suffix = fmt::format("_r{}", part.rows);
      for (const char* name : part_names) instantiation = replace_all(instantiation, name, std::string(name) + suffix);
      combined_source += instantiation;
      for (const std::string& entry : part.entries) combined_entries.push_back(entry + suffix);
    }
    start = Clock::now();
    const std::vector<char> combined = cuda::compile_to_cubin(combined_source, "combined.cu", arch);
    const double combined_compile_ms = milliseconds_since(start);
    std::size_t separate_bytes = 0;
    for (const auto& cubin : separate) separate_bytes += cubin.size();
    std::printf("compile: separate %zu programs %.0f ms wall (a thread each), %zu KiB; combined %.0f ms, %zu KiB\n",
                parts.size(), separate_compile_ms, separate_bytes >> 10, combined_compile_ms, combined.size() >> 10);

    if (!cuda::driver().available) {
      std::printf("no GPU: load times not measured (%s)\n", cuda::driver().reason.c_str());
      return 0;
    }
    cuda::make_current(0);
    std::vector<std::vector<std::string>> separate_entries;
    for (const Part& part : parts) separate_entries.push_back(part.entries);
    const std::vector<std::vector<char>> combined_list{combined};
    const std::vector<std::vector<std::string>> combined_entry_list{combined_entries};
    auto run_separate = [&] { return load_and_look_up(separate, separate_entries); };
    auto run_combined = [&] { return load_and_look_up(combined_list, combined_entry_list); };
    const double first_a = combined_first ? run_combined() : run_separate();
    const double first_b = combined_first ? run_separate() : run_combined();
    std::printf("first round: %s %.3f ms, then %s %.3f ms\n", combined_first ? "combined" : "separate", first_a,
                combined_first ? "separate" : "combined", first_b);
    std::vector<double> separate_rounds, combined_rounds;
    for (int round = 0; round < repeats; ++round) {
      if (round % 2 == 0) {
        separate_rounds.push_back(run_separate());
        combined_rounds.push_back(run_combined());
      } else {
        combined_rounds.push_back(run_combined());
        separate_rounds.push_back(run_separate());
      }
    }
    std::printf("median of %d: separate %.3f ms (%zu modules), combined %.3f ms (1 module, %zu entries): %.2fx\n", repeats,
                median(separate_rounds), parts.size(), median(combined_rounds), combined_entries.size(),
                median(separate_rounds) / median(combined_rounds));
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit_module_combine_bench: %s\n", error.what());
    return 1;
  }
}
