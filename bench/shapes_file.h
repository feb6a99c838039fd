// The shapes files of bench/shapes/: one descriptor a line; blank lines and lines whose first
// non-blank character is '#' are skipped. Shared by the bench tools that take such a file.
#pragma once

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lowbit::bench {

inline std::vector<std::string> read_shapes_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot read the shapes file '" + path + "'");
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    lines.push_back(line.substr(first));
  }
  return lines;
}

}  // namespace lowbit::bench
