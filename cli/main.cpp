// lowbit: the command line of the library. Exit 0 on success, 2 on bad input (message on
// stderr), 1 on any other failure. docs/cli.md documents every command.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cache/decision_cache.h"
#include "cli/commands.h"
#include "lowbit/errors.h"

int main(int argc, char** argv) {
  CLI::App app{"lowbit: generated, tuned and cached kernels for weight-only quantized matmul"};
  app.require_subcommand(1);
  lowbit::cli::Options options;

  auto add_db = [&](CLI::App* command) {
    command->add_option("--db", options.db, "cache file (default: $LOWBIT_CACHE, else the user cache directory)");
  };
  auto add_descs = [&](CLI::App* command) {
    command->add_option("--desc", options.descriptors, "operator descriptor, e.g. m=1,n=4096,k=4096,bits=4,group=128")
        ->required();
  };
  auto add_isa = [&](CLI::App* command) {
    command->add_option("--isa", options.isa,
                        "x86 ISA family to use: avx512, avx512_vnni (compute=int8), amx or avx2 (both modes) (default: $LOWBIT_ISA, else the best this CPU has)");
  };
  auto add_threads = [&](CLI::App* command) {
    command->add_option("--threads", options.threads, "cap on worker threads (0: every core)")
        ->check(CLI::Range(0, 4096));
  };

  CLI::App* info = app.add_subcommand("info", "this machine's fingerprint and available backends");
  info->add_flag("--json", options.json, "print JSON");

  CLI::App* tune = app.add_subcommand("tune", "tune descriptors on this machine and store the winners");
  add_descs(tune);
  add_db(tune);
  add_threads(tune);
  add_isa(tune);
  tune->add_flag("--json", options.json, "print JSON");
  tune->add_flag("--exhaustive", options.exhaustive,
                 "CUDA: time every candidate of every family (default: the preferred family's candidates and one "
                 "heuristic sentinel of each other family)");
  tune->add_option("--top", options.top, "verified candidates listed per descriptor in the JSON, fastest first")
      ->check(CLI::Range(0, 100000));

  CLI::App* get = app.add_subcommand("get", "resolve a kernel as an engine would (cache, tune or heuristic)");
  add_descs(get);
  add_db(get);
  add_threads(get);
  add_isa(get);
  get->add_option("--shipped-db", options.shipped_dbs,
                  "a cache shipped with a deployment, read (immutable) after --db, which takes every new result; "
                  "repeatable (default: $LOWBIT_SHIPPED_CACHE, paths joined by ':')");
  get->add_flag("--no-tune", options.no_tune, "on a cache miss take the heuristic variant instead of tuning");
  get->add_flag("--json", options.json, "print JSON");

  CLI::App* bench = app.add_subcommand("bench", "time a descriptor's kernel against memory bandwidth and the reference");
  add_descs(bench);
  add_db(bench);
  add_threads(bench);
  add_isa(bench);
  bench->add_flag("--no-tune", options.no_tune, "on a cache miss take the heuristic variant instead of tuning");
  bench->add_option("--rounds", options.rounds,
                    "CPU: rounds of (memory read bandwidth reading, kernel timing), each row's figures the medians "
                    "over its rounds")
      ->check(CLI::Range(1, 100));
  bench->add_option("--rows", options.rows,
                    "m=0 descriptors: the rows of the timed call (default 16); an exact-M descriptor runs its own m")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  bench->add_flag("--json", options.json, "print JSON");

  CLI::App* compile = app.add_subcommand("compile", "compile a CUDA descriptor's kernel to a cubin (no GPU needed)");
  add_descs(compile);
  compile->add_option("--arch", options.arch, "CUDA architecture, e.g. sm_80, sm_89, sm_90a")->required();
  compile->add_option("--out", options.out, "cubin file to write")->required();
  compile->add_option("--variant", options.variant,
                      "compile this candidate (its full name, as tune and the benches print them) instead of the "
                      "heuristic's");
  compile->add_flag("--json", options.json, "print JSON");

  CLI::App* show = app.add_subcommand("show", "list the decisions of a cache file");
  add_db(show);
  show->add_flag("--json", options.json, "print JSON");

  CLI::App* export_command = app.add_subcommand(
      "export", "write a cache file, everything in it, to one new self-contained file (the file a deployment ships)");
  add_db(export_command);
  export_command->add_option("--out", options.out, "the new file (must not exist)")->required();
  export_command->add_flag("--json", options.json, "print JSON");

  CLI::App* merge = app.add_subcommand("merge", "add the decisions, cubins and row plans of other cache files to --db");
  add_db(merge);
  merge->add_option("--from", options.from, "a cache file to merge in; repeatable, merged in order")->required();
  merge->add_option("--on-conflict", options.on_conflict,
                    "a decision both files hold: faster (the lower median wins), newer (the later one wins) or keep "
                    "(--db's stays); a row plan: the later one wins but under keep")
      ->check(CLI::IsMember({"faster", "newer", "keep"}));
  merge->add_flag("--json", options.json, "print JSON");

  // CLI11 answers an unknown word with "A subcommand is required"; name the word instead.
  auto is_command = [&](const char* word) {
    for (const CLI::App* command : app.get_subcommands({}))
      if (command->get_name() == word) return true;
    return false;
  };
  if (argc > 1 && argv[1][0] != '-' && !is_command(argv[1])) {
    std::fprintf(stderr, "lowbit: error: unknown command '%s'; commands: info, tune, get, bench, show, compile, export, merge (see --help)\n",
                 argv[1]);
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return 2;
  }

  try {
    if (*info) return lowbit::cli::run_info(options);
    if (*tune) return lowbit::cli::run_tune(options);
    if (*get) return lowbit::cli::run_get(options);
    if (*bench) return lowbit::cli::run_bench(options);
    if (*show) return lowbit::cli::run_show(options);
    if (*compile) return lowbit::cli::run_compile(options);
    if (*export_command) return lowbit::cli::run_export(options);
    if (*merge) return lowbit::cli::run_merge(options);
  } catch (const lowbit::InvalidArgument& error) {
    std::fprintf(stderr, "lowbit: error: %s\n", error.what());
    return 2;
  } catch (const lowbit::Unsupported& error) {
    std::fprintf(stderr, "lowbit: unsupported: %s\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lowbit: failed: %s\n", error.what());
    return 1;
  }
  return 1;
}
