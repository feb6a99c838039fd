// The `lowbit` command, run as a separate process the way a user or a script runs it: exit
// codes (0 success, 2 bad input, 1 other failure), JSON on stdout, messages on stderr.
// Every test has its own mkdtemp directory for cache files and points LOWBIT_CACHE there.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/support/test_support.h"
#include "cache/decision_cache.h"
#include "lowbit/cpu_info.h"
#include "lowbit/descriptor.h"

extern char** environ;

namespace lowbit {
namespace {

namespace fs = std::filesystem;

// Small shapes: one tune takes well under a second.
constexpr const char* small_a = "m=1,n=64,k=256,bits=4,group=128";
constexpr const char* small_b = "m=1,n=128,k=512,bits=4,group=64,zero=none";

using testing::read_bytes;

struct Outcome {
  int exit_code = -1;  // -1: did not exit normally (signal)
  std::string out;
  std::string err;
  std::string command;  // for failure messages
};

std::ostream& operator<<(std::ostream& stream, const Outcome& outcome) {
  return stream << "\n$ " << outcome.command << "\nexit " << outcome.exit_code << "\n--- stdout\n"
                << outcome.out << "--- stderr\n"
                << outcome.err;
}

class CliTest : public ::testing::Test {
 protected:
  // The children inherit this environment: warnings on, default cache inside the directory.
  void SetUp() override { unsetenv("LOWBIT_QUIET"); }

  testing::TempDirectory temp_{"lowbit_cli"};
  const fs::path& directory_ = temp_.path();
  testing::ScopedEnvironment cache_env_{"LOWBIT_CACHE", (directory_ / "default.sqlite").string()};

  std::string db(const std::string& name = "cache.sqlite") const { return (directory_ / name).string(); }

  // Runs `lowbit arguments...` with stdout and stderr sent to files of the test directory
  // (no pipes: nothing can fill up and block the child).
  Outcome run(const std::vector<std::string>& arguments) {
    Outcome outcome;
    outcome.command = LOWBIT_EXECUTABLE;
    for (const std::string& argument : arguments) outcome.command += " " + argument;
    const fs::path out_path = directory_ / ("stdout." + std::to_string(runs_));
    const fs::path err_path = directory_ / ("stderr." + std::to_string(runs_));
    ++runs_;

    std::vector<std::string> argv_strings{LOWBIT_EXECUTABLE};
    argv_strings.insert(argv_strings.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    for (std::string& argument : argv_strings) argv.push_back(argument.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, LOWBIT_EXECUTABLE, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      ADD_FAILURE() << "posix_spawn " << LOWBIT_EXECUTABLE << " failed: " << std::strerror(spawned);
      return outcome;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        ADD_FAILURE() << "waitpid failed: " << std::strerror(errno);
        return outcome;
      }
    }
    if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
    outcome.out = read_bytes(out_path);
    outcome.err = read_bytes(err_path);
    return outcome;
  }

  // Parses stdout as JSON, failing the test (not crashing) when it is not.
  static nlohmann::json parse_json(const Outcome& outcome) {
    nlohmann::json json = nlohmann::json::parse(outcome.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(json.is_discarded()) << "stdout is not JSON" << outcome;
    return json;
  }

  int runs_ = 0;
};

TEST_F(CliTest, HelpExitsZeroAndListsTheCommands) {
  const Outcome outcome = run({"--help"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome;
  for (const char* command : {"info", "tune", "get", "bench", "show", "compile"})
    EXPECT_NE(outcome.out.find(command), std::string::npos) << "help does not mention " << command << outcome;
}

TEST_F(CliTest, CompileWritesACubinWithoutAGpu) {
  const std::string out = db("kernel.cubin");
  const Outcome outcome =
      run({"compile", "--desc", "m=1,n=1000,k=4096,group=64,device=cuda:0", "--arch", "sm_90a", "--out", out, "--json"});
  if (outcome.exit_code == 2 && outcome.err.find("NVRTC") != std::string::npos)
    GTEST_SKIP() << "NVRTC is not installed here" << outcome;
  ASSERT_EQ(outcome.exit_code, 0) << outcome;
  const std::string cubin = read_bytes(out);
  ASSERT_GT(cubin.size(), 64u) << outcome;
  EXPECT_EQ(cubin.substr(0, 4), std::string("\x7f" "ELF", 4)) << "not an ELF cubin";
  const nlohmann::json json = parse_json(outcome);
  EXPECT_EQ(json.at("bytes").get<std::size_t>(), cubin.size()) << outcome;
  EXPECT_EQ(json.at("variant").get<std::string>().rfind("cuda_sm90a_", 0), 0u) << outcome;
}

// --variant compiles a named candidate: the heuristic's by its name gives the same cubin; an unknown
// name is refused naming --variant, the candidate count and examples, and an example compiles.
TEST_F(CliTest, CompileNamedVariant) {
  const std::string desc = "m=1,n=1000,k=4096,group=64,device=cuda:0";
  const std::string first = db("heuristic.cubin");
  const Outcome heuristic = run({"compile", "--desc", desc, "--arch", "sm_90a", "--out", first, "--json"});
  if (heuristic.exit_code == 2 && heuristic.err.find("NVRTC") != std::string::npos)
    GTEST_SKIP() << "NVRTC is not installed here" << heuristic;
  ASSERT_EQ(heuristic.exit_code, 0) << heuristic;
  const std::string name = parse_json(heuristic).at("variant").get<std::string>();
  const std::string second = db("named.cubin");
  const Outcome named = run({"compile", "--desc", desc, "--arch", "sm_90a", "--out", second, "--variant", name, "--json"});
  ASSERT_EQ(named.exit_code, 0) << named;
  EXPECT_EQ(parse_json(named).at("variant").get<std::string>(), name) << named;
  EXPECT_EQ(read_bytes(second), read_bytes(first)) << "the same variant compiled twice differs";

  const Outcome unknown =
      run({"compile", "--desc", desc, "--arch", "sm_90a", "--out", db("none.cubin"), "--variant", "cuda_sm90a_nope"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown;
  EXPECT_NE(unknown.err.find("--variant 'cuda_sm90a_nope' is not a candidate"), std::string::npos) << unknown;
  const std::size_t examples = unknown.err.find("(e.g. ");
  ASSERT_NE(examples, std::string::npos) << unknown;
  const std::size_t begin = examples + 6;
  const std::string example = unknown.err.substr(begin, unknown.err.find_first_of(",)", begin) - begin);
  const Outcome other = run({"compile", "--desc", desc, "--arch", "sm_90a", "--out", db("example.cubin"), "--variant",
                             example, "--json"});
  ASSERT_EQ(other.exit_code, 0) << other;
  EXPECT_EQ(parse_json(other).at("variant").get<std::string>(), example) << other;
  EXPECT_FALSE(std::filesystem::exists(db("none.cubin"))) << "a refused compile wrote its output";
}

TEST_F(CliTest, InfoJsonHasThisMachinesFingerprint) {
  const Outcome outcome = run({"info", "--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome;
  const nlohmann::json json = parse_json(outcome);
  ASSERT_TRUE(json.is_object()) << outcome;
  ASSERT_TRUE(json.contains("cpu")) << outcome;
  ASSERT_TRUE(json["cpu"].contains("fingerprint")) << outcome;
  ASSERT_TRUE(json["cpu"]["fingerprint"].is_string()) << outcome;
  EXPECT_EQ(json["cpu"]["fingerprint"].get<std::string>(), cpu_info().fingerprint());
  EXPECT_EQ(json.at("backends").at("x86").at("available").get<bool>(), testing::cpu_serves_avx512()) << outcome;
  EXPECT_EQ(json.at("default_cache").get<std::string>(), (directory_ / "default.sqlite").string());
}

TEST_F(CliTest, GetTunesOnceThenASecondProcessHitsTheCache) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const Outcome first = run({"get", "--desc", small_a, "--db", db(), "--threads", "2", "--json"});
  ASSERT_EQ(first.exit_code, 0) << first;
  const nlohmann::json tuned = parse_json(first);
  ASSERT_TRUE(tuned.is_object()) << first;
  EXPECT_EQ(tuned.value("source", ""), "tuned") << first;
  EXPECT_EQ(tuned.value("descriptor", ""), to_string(parse_descriptor(small_a))) << first;
  ASSERT_TRUE(tuned.contains("variant") && tuned["variant"].is_string()) << first;
  EXPECT_FALSE(tuned["variant"].get<std::string>().empty()) << first;

  const Outcome second = run({"get", "--desc", small_a, "--db", db(), "--threads", "2", "--json"});
  ASSERT_EQ(second.exit_code, 0) << second;
  const nlohmann::json hit = parse_json(second);
  ASSERT_TRUE(hit.is_object()) << second;
  EXPECT_EQ(hit.value("source", ""), "cache") << second;
  EXPECT_EQ(hit.value("variant", ""), tuned["variant"].get<std::string>()) << second;
  EXPECT_EQ(hit.at("median_us"), tuned.at("median_us")) << "the hit reports the stored time" << second;
  ASSERT_TRUE(hit.contains("get_kernel_ms")) << second;
  ASSERT_TRUE(hit["get_kernel_ms"].is_number()) << second;
  const double milliseconds = hit["get_kernel_ms"].get<double>();
  // Recorded, not held to the 1 ms goal: CI machines are noisy. 50 ms would mean tuning.
  RecordProperty("cache_hit_get_kernel_ms", std::to_string(milliseconds));
  std::printf("cache-hit get_kernel: %.3f ms\n", milliseconds);
  EXPECT_GE(milliseconds, 0);
  EXPECT_LT(milliseconds, 50) << second;
  EXPECT_TRUE(first.err.find("lowbit: warning:") == std::string::npos) << first;
  EXPECT_TRUE(second.err.find("lowbit: warning:") == std::string::npos) << second;
  EXPECT_FALSE(fs::exists(directory_ / "default.sqlite")) << "--db was not used";
}

// CUDA descriptors through tune, get and bench. On a GPU: tune stores the decision and cubin,
// a second process hits the cache, bench verifies and times the kernel. Without one, each
// command exits 2 with the CUDA backend's reason.
TEST_F(CliTest, CudaTuneThenGetHitsTheCacheThenBench) {
  const char* cuda_desc = "m=2,n=1000,k=4160,bits=4,group=64,zero=int,act=fp16,device=cuda:0";
  const nlohmann::json info = parse_json(run({"info", "--json"}));
  const bool gpu = info.at("backends").at("cuda").at("available").get<bool>();
  const Outcome tune = run({"tune", "--desc", cuda_desc, "--db", db(), "--json"});
  if (!gpu) {
    for (const Outcome& outcome : {tune, run({"bench", "--desc", cuda_desc, "--db", db()}),
                                   run({"get", "--desc", cuda_desc, "--db", db()})}) {
      EXPECT_EQ(outcome.exit_code, 2) << outcome;
      EXPECT_NE(outcome.err.find("no CUDA kernel serves"), std::string::npos) << outcome;
      EXPECT_NE(outcome.err.find(info["backends"]["cuda"].value("reason", "?")), std::string::npos) << outcome;
    }
    EXPECT_FALSE(fs::exists(db()));
    GTEST_SKIP() << "no usable GPU here, refusals checked: " << info["backends"]["cuda"].value("reason", "");
  }
  ASSERT_EQ(tune.exit_code, 0) << tune;
  const nlohmann::json tuned = parse_json(tune)["results"][0];
  EXPECT_TRUE(tuned.value("stored", false)) << tune;
  EXPECT_EQ(tuned.value("variant", "").rfind("cuda_sm", 0), 0u) << tune;
  EXPECT_TRUE(tuned["mem_read_gbps"].is_null()) << "a host bandwidth was reported for a GPU kernel" << tune;

  const Outcome get = run({"get", "--desc", cuda_desc, "--db", db(), "--json"});
  ASSERT_EQ(get.exit_code, 0) << get;
  const nlohmann::json hit = parse_json(get);
  EXPECT_EQ(hit.value("source", ""), "cache") << get;
  EXPECT_EQ(hit.value("variant", ""), tuned.value("variant", "")) << get;
  std::printf("CUDA cache-hit get_kernel: %.3f ms (context %.1f ms)\n", hit.value("get_kernel_ms", -1.0),
              hit.value("cuda_context_ms", -1.0));
  EXPECT_LT(hit.value("get_kernel_ms", 1e9), 50) << "a cache hit compiled or tuned" << get;

  const Outcome bench = run({"bench", "--desc", cuda_desc, "--db", db(), "--json"});
  ASSERT_EQ(bench.exit_code, 0) << bench;
  const nlohmann::json row = parse_json(bench);
  EXPECT_EQ(row.value("source", ""), "cache") << bench;
  EXPECT_EQ(row.value("protocol", ""), "cuda-rotate-median:1") << bench;
  EXPECT_GT(row.value("time_us", 0.0), 0) << bench;
  EXPECT_LE(row.value("rel_err", 1.0), tolerance(parse_descriptor(cuda_desc))) << bench;

  // An m=0 descriptor: bench --rows times the kernel of that row count, and names it.
  const std::string any_desc = std::string(cuda_desc).replace(0, 3, "m=0");
  for (const char* rows : {"3", "40"}) {
    const Outcome any = run({"bench", "--desc", any_desc, "--db", db(), "--no-tune", "--rows", rows, "--json"});
    ASSERT_EQ(any.exit_code, 0) << any;
    const nlohmann::json timed = parse_json(any);
    EXPECT_EQ(timed.value("m", int64_t{0}), std::stoll(rows)) << any;
    EXPECT_NE(timed.value("variant", "").find(std::string("_m") + (std::string(rows) == "3" ? "3_" : "0_")),
              std::string::npos)
        << any;
    EXPECT_LE(timed.value("rel_err", 1.0), dequantized_weights_tolerance(parse_descriptor(any_desc))) << any;
  }
}

// --isa avx2 runs the fallback on an AVX-512 machine: every command takes it, and what it tunes
// is stored apart from the unforced decisions (another generator version).
TEST_F(CliTest, IsaForcesTheAvx2Fallback) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const Outcome get = run({"get", "--desc", small_a, "--db", db(), "--isa", "avx2", "--no-tune", "--json"});
  ASSERT_EQ(get.exit_code, 0) << get;
  EXPECT_EQ(parse_json(get).value("variant", "").rfind("x86_avx2fma_w4g128_", 0), 0u) << get;
  const Outcome tune = run({"tune", "--desc", small_b, "--db", db(), "--isa", "avx2", "--json"});
  ASSERT_EQ(tune.exit_code, 0) << tune;
  EXPECT_EQ(parse_json(tune)["results"][0].value("variant", "").rfind("x86_avx2fma_", 0), 0u) << tune;
  const Outcome bench = run({"bench", "--desc", small_b, "--db", db(), "--isa", "avx2", "--json"});
  ASSERT_EQ(bench.exit_code, 0) << bench;
  EXPECT_EQ(parse_json(bench).value("source", ""), "cache") << bench;
  const Outcome unforced = run({"get", "--desc", small_b, "--db", db(), "--no-tune", "--json"});
  ASSERT_EQ(unforced.exit_code, 0) << unforced;
  EXPECT_EQ(parse_json(unforced).value("source", ""), "heuristic") << "an avx2 decision served an unforced call"
                                                                  << unforced;
}

// m=0's row plans (written by a CUDA get, here through the cache API) are listed beside the
// decisions: JSON with the plan parsed, and a line each in the text form.
TEST_F(CliTest, ShowListsRowPlans) {
  cache::RowPlan plan;
  plan.descriptor = "m=0,n=1000,k=4160,bits=4,group=64,zero=int,device=cuda:0";
  plan.fingerprint = "cuda;sm_90;sms=132;name=NVIDIA H100 80GB HBM3";
  plan.generator_version = "cuda_gemv@4";
  plan.plan_json = R"({"any_rows":null,"exact_rows":[{"m":1,"variant":{"family":"gemv_mma"},"artifact_key":")" +
                   std::string(64, 'a') + R"("}],"unserved_rows":[],"ranges":[]})";
  {
    cache::DecisionCache writer = cache::DecisionCache::open(db(), cache::OpenMode::read_write);
    ASSERT_TRUE(writer.store_row_plan(plan));
  }
  const Outcome json_show = run({"show", "--db", db(), "--json"});
  ASSERT_EQ(json_show.exit_code, 0) << json_show;
  const nlohmann::json listed = parse_json(json_show);
  ASSERT_TRUE(listed.contains("row_plans") && listed["row_plans"].is_array()) << json_show;
  ASSERT_EQ(listed["row_plans"].size(), 1u) << json_show;
  const nlohmann::json& row = listed["row_plans"][0];
  EXPECT_EQ(row.at("descriptor").get<std::string>(), plan.descriptor);
  EXPECT_EQ(row.at("generator_version").get<std::string>(), plan.generator_version);
  EXPECT_EQ(row.at("plan").at("exact_rows").size(), 1u) << json_show;
  EXPECT_TRUE(listed.at("decisions").empty()) << json_show;
  const Outcome text_show = run({"show", "--db", db()});
  ASSERT_EQ(text_show.exit_code, 0) << text_show;
  EXPECT_NE(text_show.out.find("1 row plans"), std::string::npos) << text_show;
  EXPECT_NE(text_show.out.find(plan.descriptor + "\n  1 exact rows, 0 ranges  cuda_gemv@4"), std::string::npos)
      << text_show;
}

// Two tuned files merged into a third, then exported to the file a deployment ships: every
// decision arrives, a second merge of the same file adds nothing, and export never overwrites.
TEST_F(CliTest, MergeTwoTunedFilesThenExportOne) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  ASSERT_EQ(run({"tune", "--desc", small_a, "--db", db("a.sqlite"), "--threads", "2"}).exit_code, 0);
  ASSERT_EQ(run({"tune", "--desc", small_b, "--db", db("b.sqlite"), "--threads", "2"}).exit_code, 0);
  const Outcome merged =
      run({"merge", "--db", db("all.sqlite"), "--from", db("a.sqlite"), "--from", db("b.sqlite"), "--json"});
  ASSERT_EQ(merged.exit_code, 0) << merged;
  const nlohmann::json report = parse_json(merged);
  ASSERT_EQ(report.at("merged").size(), 2u) << merged;
  EXPECT_EQ(report["merged"][0].at("decisions_added").get<int>(), 1) << merged;
  EXPECT_EQ(report["merged"][1].at("decisions_added").get<int>(), 1) << merged;
  EXPECT_EQ(report.at("now").at("decisions").get<int>(), 2) << merged;
  EXPECT_EQ(report.at("on_conflict").get<std::string>(), "faster");
  const Outcome again = run({"merge", "--db", db("all.sqlite"), "--from", db("a.sqlite"), "--on-conflict", "newer"});
  ASSERT_EQ(again.exit_code, 0) << again;
  EXPECT_NE(again.out.find("decisions 0 added, 0 replaced, 1 kept"), std::string::npos) << again;

  const Outcome exported = run({"export", "--db", db("all.sqlite"), "--out", db("shipped.sqlite"), "--json"});
  ASSERT_EQ(exported.exit_code, 0) << exported;
  EXPECT_EQ(parse_json(exported).at("decisions").get<int>(), 2) << exported;
  const Outcome shown = run({"show", "--db", db("shipped.sqlite"), "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown;
  EXPECT_EQ(parse_json(shown).at("decisions").size(), 2u) << shown;
  const std::string bytes = read_bytes(db("shipped.sqlite"));
  const Outcome overwrite = run({"export", "--db", db("all.sqlite"), "--out", db("shipped.sqlite")});
  EXPECT_EQ(overwrite.exit_code, 2) << overwrite;
  EXPECT_NE(overwrite.err.find("exists"), std::string::npos) << overwrite;
  EXPECT_EQ(read_bytes(db("shipped.sqlite")), bytes);
}

TEST_F(CliTest, TuneTwoDescriptorsThenShowListsThem) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const Outcome outcome =
      run({"tune", "--desc", small_a, "--desc", small_b, "--db", db(), "--threads", "2", "--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome;
  const nlohmann::json json = parse_json(outcome);
  ASSERT_TRUE(json.is_object()) << outcome;
  ASSERT_TRUE(json.contains("results") && json["results"].is_array()) << outcome;
  ASSERT_EQ(json["results"].size(), 2u) << outcome;
  for (const auto& result : json["results"]) {
    ASSERT_TRUE(result.contains("mem_read_gbps") && result["mem_read_gbps"].is_number()) << outcome;
    EXPECT_GT(result["mem_read_gbps"].get<double>(), 0) << outcome;
  }
  std::set<std::string> tuned;
  const std::vector<std::string> expected{to_string(parse_descriptor(small_a)), to_string(parse_descriptor(small_b))};
  for (std::size_t i = 0; i < 2; ++i) {
    const nlohmann::json& row = json["results"][i];
    SCOPED_TRACE(row.dump());
    EXPECT_EQ(row.at("descriptor").get<std::string>(), expected[i]);
    EXPECT_FALSE(row.at("variant").get<std::string>().empty());
    EXPECT_GT(row.at("time_us").get<double>(), 0);
    EXPECT_GT(row.at("weight_gbps").get<double>(), 0);
    EXPECT_TRUE(row.at("stored").get<bool>());
    EXPECT_LT(row.at("rel_err").get<double>(), 1e-2);
    tuned.insert(row["descriptor"].get<std::string>() + " " + row["variant"].get<std::string>());
  }

  const Outcome show = run({"show", "--db", db(), "--json"});
  ASSERT_EQ(show.exit_code, 0) << show;
  const nlohmann::json listed = parse_json(show);
  ASSERT_TRUE(listed.contains("decisions") && listed["decisions"].is_array()) << show;
  std::set<std::string> shown;
  for (const nlohmann::json& row : listed["decisions"]) {
    shown.insert(row.at("descriptor").get<std::string>() + " " + row.at("variant").get<std::string>());
    // --threads 2 below the core count adds ";threads=2" to the key (docs/cache.md).
    EXPECT_EQ(row.at("fingerprint").get<std::string>().rfind(cpu_info().fingerprint(), 0), 0u) << show;
    EXPECT_TRUE(row.at("variant_params").is_object()) << show;
  }
  EXPECT_EQ(shown, tuned) << show;
}

TEST_F(CliTest, BenchReportsTimeBandwidthAndError) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const Outcome outcome = run({"bench", "--desc", small_a, "--db", db(), "--threads", "2", "--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome;
  const nlohmann::json json = parse_json(outcome);
  ASSERT_TRUE(json.is_object()) << outcome;
  for (const char* key : {"time_us", "weight_gbps", "mem_read_gbps", "ref_time_us", "rel_err"})
    ASSERT_TRUE(json.contains(key) && json[key].is_number()) << "missing number " << key << outcome;
  EXPECT_GT(json["time_us"].get<double>(), 0) << outcome;
  EXPECT_GT(json["weight_gbps"].get<double>(), 0) << outcome;
  EXPECT_GT(json["mem_read_gbps"].get<double>(), 0) << outcome;
  EXPECT_GT(json["ref_time_us"].get<double>(), 0) << outcome;
  EXPECT_GE(json["rel_err"].get<double>(), 0) << outcome;
  EXPECT_LT(json["rel_err"].get<double>(), 1e-2) << outcome;
  EXPECT_EQ(json.value("source", ""), "tuned") << outcome;
  EXPECT_TRUE(fs::exists(db())) << "bench did not store the tuned decision";
}

// --rounds alternates a bandwidth reading with a kernel timing; the row carries the rounds, the
// per-round ratio's median (read_fraction) and the sum of the rounds' timed runs.
TEST_F(CliTest, BenchRoundsSetEachTimingAgainstItsOwnBandwidthReading) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const Outcome outcome =
      run({"bench", "--desc", small_a, "--db", db(), "--threads", "2", "--no-tune", "--rounds", "3", "--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome;
  const nlohmann::json json = parse_json(outcome);
  ASSERT_TRUE(json.is_object()) << outcome;
  ASSERT_TRUE(json.contains("rounds") && json.contains("read_fraction")) << outcome;
  EXPECT_EQ(json["rounds"].get<int>(), 3) << outcome;
  EXPECT_GE(json["repeats"].get<int>(), 3 * 10) << "each round times at least 10 runs" << outcome;
  EXPECT_GT(json["read_fraction"].get<double>(), 0) << outcome;
  EXPECT_GE(json["time_us"].get<double>(), json["time_min_us"].get<double>()) << outcome;
  const Outcome refused = run({"bench", "--desc", small_a, "--db", db(), "--rounds", "0"});
  EXPECT_EQ(refused.exit_code, 2) << refused;
  EXPECT_NE(refused.err.find("--rounds"), std::string::npos) << refused;
}

// --rows sets the M of an m=0 descriptor's timed call (on CUDA, the kernel of that row count runs);
// an exact-M descriptor with another --rows is refused, naming the option.
TEST_F(CliTest, BenchRowsSetTheMOfAnAnyMDescriptor) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const Outcome outcome =
      run({"bench", "--desc", "m=0,n=64,k=256,bits=4,group=128", "--db", db(), "--threads", "2", "--no-tune", "--rows",
           "3", "--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome;
  const nlohmann::json json = parse_json(outcome);
  ASSERT_TRUE(json.is_object()) << outcome;
  EXPECT_EQ(json.value("m", int64_t{0}), 3) << outcome;
  EXPECT_LT(json["rel_err"].get<double>(), 1e-2) << outcome;
  const Outcome refused = run({"bench", "--desc", small_a, "--db", db(), "--no-tune", "--rows", "3"});
  EXPECT_EQ(refused.exit_code, 2) << refused;
  EXPECT_NE(refused.err.find("--rows 3"), std::string::npos) << refused;
}

TEST_F(CliTest, GarbageDbWarnsAndStillTunes) {
  LOWBIT_SKIP_WITHOUT_AVX512();
  const std::string garbage(4096, 'G');
  {
    std::ofstream file(db(), std::ios::binary);
    file << garbage;
  }
  const Outcome outcome = run({"get", "--desc", small_a, "--db", db(), "--threads", "2", "--json"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome;
  EXPECT_NE(outcome.err.find("lowbit: warning:"), std::string::npos) << outcome;
  EXPECT_NE(outcome.err.find(db()), std::string::npos) << "the warning does not name the file" << outcome;
  const nlohmann::json json = parse_json(outcome);
  EXPECT_EQ(json.value("source", ""), "tuned") << outcome;
  EXPECT_EQ(read_bytes(db()), garbage) << "the foreign file was modified";
}

struct BadInput {
  std::string name;
  std::vector<std::string> arguments;  // "DB" stands for the test's cache file
  std::string mention;                 // what stderr must contain
  bool writes_nothing = true;          // false: the command may open (create) its --db first
};

// Names the case in test listings (ctest shows the printed parameter).
void PrintTo(const BadInput& input, std::ostream* stream) { *stream << input.name; }

class CliBadInput : public CliTest, public ::testing::WithParamInterface<BadInput> {};

TEST_P(CliBadInput, ExitsTwoAndNamesTheProblem) {
  std::vector<std::string> arguments = GetParam().arguments;
  for (std::string& argument : arguments)
    if (argument == "DB") argument = db();
  const Outcome outcome = run(arguments);
  EXPECT_EQ(outcome.exit_code, 2) << outcome;
  EXPECT_NE(outcome.err.find(GetParam().mention), std::string::npos)
      << "stderr does not mention '" << GetParam().mention << "'" << outcome;
  EXPECT_TRUE(outcome.out.empty()) << "bad input printed a result" << outcome;
  // Nothing was tuned or stored on the way to the error.
  if (GetParam().writes_nothing) {
    EXPECT_FALSE(fs::exists(db())) << outcome;
  }
  EXPECT_FALSE(fs::exists(directory_ / "default.sqlite")) << outcome;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CliBadInput,
    ::testing::Values(BadInput{"GroupNotDividingK", {"get", "--desc", "n=64,k=100,group=128"}, "group"},
                      BadInput{"BitsFive", {"get", "--desc", "bits=5,n=64,k=128"}, "bits"},
                      BadInput{"UnknownDescriptorField", {"get", "--desc", "n=64,k=128,colour=red"}, "colour"},
                      BadInput{"MissingK", {"get", "--desc", "n=64", "--db", "DB"}, "'k'"},
                      BadInput{"NoDesc", {"get"}, "--desc"},
                      // main.cpp names the unknown word itself (CLI11 alone would only say
                      // "A subcommand is required").
                      BadInput{"UnknownCommand", {"frobnicate"}, "frobnicate"},
                      BadInput{"NoCommand", {}, "subcommand"},
                      BadInput{"UnsupportedFloatOnVnni", {"get", "--desc", "n=64,k=128", "--isa", "avx512_vnni", "--db", "DB"},
                               "compute=float"},
                      BadInput{"UnsupportedCuda", {"get", "--desc", "n=64,k=128,bits=8,act=fp32,device=cuda:0", "--db", "DB"}, "cuda"},
                      BadInput{"TuneUnsupported", {"tune", "--desc", "n=64,k=128", "--isa", "avx512_vnni", "--db", "DB"},
                               "compute=float", /*writes_nothing=*/false},
                      BadInput{"UnknownIsa", {"get", "--desc", "n=64,k=128", "--isa", "sse4", "--db", "DB"},
                               "allowed: avx2, avx512, avx512_vnni"},
                      BadInput{"NegativeThreads", {"get", "--desc", "n=64,k=128", "--threads", "-1"}, "--threads"},
                      BadInput{"ShowMissingDirectory", {"show", "--db", "/nonexistent/x.sqlite"}, "/nonexistent/x.sqlite"},
                      BadInput{"ShowMissingFile", {"show", "--db", "DB"}, "cache.sqlite"},
                      BadInput{"CompileBadArch",
                               {"compile", "--desc", "m=1,n=64,k=128,device=cuda:0", "--arch", "sm_9", "--out", "DB"},
                               "sm_XY"},
                      BadInput{"CompileCpuDescriptor",
                               {"compile", "--desc", "m=1,n=64,k=128", "--arch", "sm_90a", "--out", "DB"},
                               "device=cuda"},
                      BadInput{"ExportMissingFile", {"export", "--db", "DB", "--out", "/nonexistent/out.sqlite"},
                               "cache.sqlite"},
                      BadInput{"ExportWithoutOut", {"export", "--db", "DB"}, "--out"},
                      BadInput{"MergeWithoutFrom", {"merge", "--db", "DB"}, "--from"},
                      BadInput{"MergeUnknownRule", {"merge", "--db", "DB", "--from", "x.sqlite", "--on-conflict", "best"},
                               "--on-conflict"},
                      BadInput{"MergeMissingSource", {"merge", "--db", "DB", "--from", "/nonexistent/x.sqlite"},
                               "/nonexistent/x.sqlite"},
                      BadInput{"MergeIntoItself", {"merge", "--db", "DB", "--from", "DB"}, "itself"}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return info.param.name; });

}  // namespace
}  // namespace lowbit
