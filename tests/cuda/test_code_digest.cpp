// The CUDA generator version names the host code it was built from (codegen/cuda/code_digest.h):
// its format, and digest_sources.cmake itself on copies of files, edited, restored and renamed.
// No GPU needed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "codegen/cuda/code_digest.h"
#include "codegen/cuda/registry.h"
#include "tests/support/test_support.h"

namespace lowbit::cuda {
namespace {

TEST(CodeDigest, GeneratorVersionNamesTheTemplatesAndTheHostCode) {
  const std::string digest = cuda_code_digest();
  EXPECT_TRUE(std::regex_match(digest, std::regex("[0-9a-f]{64}"))) << digest;
  const std::string version = generator_version();
  EXPECT_TRUE(std::regex_match(version, std::regex("cuda_[a-z_]+@[0-9]+(\\+cuda_[a-z_]+@[0-9]+)*;templates=[0-9a-f]{16};"
                                                   "code=[0-9a-f]{16}")))
      << version;
  EXPECT_EQ(version.substr(version.size() - 16), digest.substr(0, 16));
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Runs digest_sources.cmake on `inputs` (paths under root) and returns the digest it wrote.
std::string digest_of(const std::filesystem::path& root, const std::vector<std::filesystem::path>& inputs) {
  std::string list;
  for (const auto& input : inputs) {
    if (!list.empty()) list += '|';
    list += input.string();
  }
  const std::filesystem::path output = root / "digest.cpp";
  const std::string command = std::string("\"") + LOWBIT_CMAKE_COMMAND + "\" \"-DINPUTS=" + list + "\" \"-DROOT=" +
                              root.string() + "\" \"-DOUTPUT=" + output.string() + "\" -P \"" + LOWBIT_DIGEST_SCRIPT + "\"";
  if (std::system(command.c_str()) != 0) {
    ADD_FAILURE() << "failed: " << command;
    return {};
  }
  std::stringstream text;
  text << std::ifstream(output).rdbuf();
  std::smatch found;
  const std::string generated = text.str();
  if (!std::regex_search(generated, found, std::regex("return \"([0-9a-f]{64})\";"))) {
    ADD_FAILURE() << "no digest in " << generated;
    return {};
  }
  return found[1];
}

TEST(CodeDigest, AnEditOfADigestedFileChangesItAndItsRestoreRestoresIt) {
  const testing::TempDirectory directory("code_digest");
  const auto root = directory.path();
  write_file(root / "launch.cpp", "int grid(int n) { return (n + 127) / 128; }\n");
  write_file(root / "launch.h", "int grid(int n);\n");
  const std::vector<std::filesystem::path> files{root / "launch.cpp", root / "launch.h"};
  const std::string original = digest_of(root, files);
  ASSERT_FALSE(original.empty());
  EXPECT_EQ(digest_of(root, files), original) << "the same files must give the same digest";

  write_file(root / "launch.cpp", "int grid(int n) { return (n + 63) / 64; }\n");
  const std::string edited = digest_of(root, files);
  EXPECT_NE(edited, original) << "an edit must change the digest";

  write_file(root / "launch.cpp", "int grid(int n) { return (n + 127) / 128; }\n");
  EXPECT_EQ(digest_of(root, files), original) << "the restored text must give the first digest again";

  // The same texts under another name: names are part of what is digested.
  std::filesystem::rename(root / "launch.h", root / "grid.h");
  EXPECT_NE(digest_of(root, {root / "launch.cpp", root / "grid.h"}), original);
}

}  // namespace
}  // namespace lowbit::cuda
