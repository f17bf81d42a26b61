// Data-file tests of the checker: every tests/data/bad_rules/*.vigil starts with comment lines
//   // expect: LINE:COL CODE message
// listing every diagnostic the checker must report for that file, in order (errors and
// warnings; the exact message). The runner checks the file with CheckPaths (so imports are read
// from disk, relative to the file) and compares the produced list with the expected one.
// A diagnostic in another file is written `path:LINE:COL CODE message` (path relative to the
// repository root).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "grammar/check.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

std::string Describe(const CheckResult& r, const std::string& path) {
  std::string out;
  for (const Diagnostic& d : r.diagnostics.all()) {
    if (d.span.file < 0) {
      out += d.code + " " + d.message + "\n";
      continue;
    }
    const SourceFile& f = r.sources.files[static_cast<size_t>(d.span.file)];
    const LineCol lc = ToLineCol(f.text, d.span.offset);
    if (f.path != path) out += f.path + ":";
    out += std::to_string(lc.line) + ":" + std::to_string(lc.column) + " " + d.code + " " +
           d.message + "\n";
  }
  return out;
}

std::string Expected(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  const std::string prefix = "// expect: ";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) break;
    out += line.substr(prefix.size()) + "\n";
  }
  return out;
}

TEST_CASE("bad rules: every tests/data/bad_rules/*.vigil reports exactly its expected list") {
  // Paths in messages are relative to the repository root, as `vigil check` run there shows them.
  const fs::path saved = fs::current_path();
  fs::current_path(VIGIL_SOURCE_DIR);
  const fs::path dir = fs::path("tests") / "data" / "bad_rules";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".vigil") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 30);
  for (const fs::path& file : files) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    const std::string path = file.lexically_normal().generic_string();
    const std::string expected = Expected(text.str());
    const CheckResult result = CheckPaths({path});
    CAPTURE(path);
    CHECK_FALSE(expected.empty());
    CHECK(Describe(result, path) == expected);
  }
  fs::current_path(saved);
}

}  // namespace
}  // namespace vigil
