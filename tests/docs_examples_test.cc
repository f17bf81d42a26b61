// The language reference must tell the truth: every ```vigil block of docs/language.md is a
// complete declaration that checks without errors (against tests/data/docs_schema.vigil unless
// the block declares its own event types).
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "grammar/check.h"

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> VigilBlocks(const std::string& markdown) {
  std::vector<std::string> blocks;
  std::istringstream in(markdown);
  std::string line, block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line == "```vigil") {
      inside = true;
      block.clear();
    } else if (inside && line == "```") {
      inside = false;
      blocks.push_back(block);
    } else if (inside) {
      block += line + "\n";
    }
  }
  return blocks;
}

}  // namespace

TEST_CASE("docs: every vigil example of docs/language.md checks clean") {
  const std::string root = VIGIL_SOURCE_DIR;
  const auto blocks = VigilBlocks(ReadFile(root + "/docs/language.md"));
  REQUIRE(blocks.size() >= 5);
  const std::string schema = ReadFile(root + "/tests/data/docs_schema.vigil");
  REQUIRE(!schema.empty());
  for (const std::string& block : blocks) {
    CAPTURE(block);
    std::vector<vigil::SourceFile> files;
    const bool declares_types = block.rfind("event ", 0) == 0;
    files.push_back({"example.vigil", declares_types ? block : "import \"schema.vigil\"\n" + block});
    if (!declares_types) files.push_back({"schema.vigil", schema});
    const vigil::CheckResult result = vigil::CheckSources(std::move(files));
    std::string rendered;
    for (const auto& d : result.diagnostics.all())
      if (d.severity == vigil::Severity::kError) rendered += vigil::RenderText(result.sources, d);
    CHECK(rendered == "");
  }
}
