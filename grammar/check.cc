// Loading rule files and running the checker: CheckPaths and CheckSources (check.h).
//
// Loading is a depth-first walk over imports: a file is read, parsed (ParseFile), and its
// `import`s are loaded relative to its own directory before the next file. A file is keyed by
// its normalized path, so each is loaded once however often it is imported; meeting a file that
// is still being loaded is an import cycle (E104, with the chain). An unreadable file or a
// missing import is E103 at the import's path. The parsed files then go to Checker::Run
// (check_globals.cc), and all diagnostics are sorted at the end.
//
// CheckPaths reads the disk; CheckSources resolves imports among the given in-memory files only,
// so the fuzzer and tests never touch the disk.
#include "grammar/check.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "grammar/check_internal.h"
#include "grammar/parser.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Files above this size are refused (spans are 32-bit; rule files are small).
constexpr size_t kMaxFileBytes = 64u << 20;

std::string Normal(const std::string& path) {
  return fs::path(path).lexically_normal().generic_string();
}

class Loader {
 public:
  // Reads `path`; on failure returns nullopt and sets `error` ("no such file").
  using Reader = std::function<std::optional<std::string>(const std::string& path,
                                                          std::string* error)>;
  // The identity of a file (two paths naming one file give the same key).
  using KeyOf = std::function<std::string(const std::string& path)>;

  Loader(SourceSet& sources, DiagnosticList& diags, Reader read, KeyOf key)
      : sources_(sources), diags_(diags), read_(std::move(read)), key_(std::move(key)) {}

  // Loads `path` and its imports; `site` is the import that asked for it (file -1 for roots).
  void Load(const std::string& path, SourceSpan site) {
    const std::string key = key_(path);
    if (auto it = index_.find(key); it != index_.end()) {
      if (state_[static_cast<size_t>(it->second)] == kLoading) {
        std::string chain;
        bool in_cycle = false;
        for (int f : stack_) {
          in_cycle = in_cycle || f == it->second;
          if (in_cycle) chain += sources_.files[static_cast<size_t>(f)].path + " -> ";
        }
        chain += sources_.files[static_cast<size_t>(it->second)].path;
        diags_.Error("E104", site, "import cycle: " + chain);
      }
      return;
    }
    std::string error;
    std::optional<std::string> text = read_(path, &error);
    if (!text) {
      diags_.Error("E103", site,
                   fmt::format("cannot {} '{}': {}", site.file < 0 ? "read" : "import", path,
                               error));
      return;
    }
    if (text->size() > kMaxFileBytes) {
      diags_.Error("E103", site, fmt::format("cannot read '{}': file is larger than 64 MiB", path));
      return;
    }
    const int index = sources_.Add(path, std::move(*text));
    index_.emplace(key, index);
    state_.push_back(kLoading);
    files_.push_back(ParseFile(sources_.files[static_cast<size_t>(index)].text, index, diags_));
    std::vector<std::pair<std::string, SourceSpan>> imports;
    for (const ast::TopLevel& item : files_[static_cast<size_t>(index)].items) {
      if (const auto* imp = check::As<ast::ImportDecl>(item)) {
        const fs::path target(imp->path.value);
        const std::string resolved =
            target.is_absolute() ? Normal(imp->path.value)
                                 : Normal((fs::path(path).parent_path() / target).string());
        imports.emplace_back(resolved, check::Span(index, imp->path));
      }
    }
    stack_.push_back(index);
    for (const auto& [resolved, span] : imports) Load(resolved, span);
    stack_.pop_back();
    state_[static_cast<size_t>(index)] = kDone;
    order_.push_back(index);
  }

  std::vector<ast::File>& files() { return files_; }
  // File indexes, each after the files it imports.
  const std::vector<int>& order() const { return order_; }

 private:
  enum State { kLoading, kDone };
  SourceSet& sources_;
  DiagnosticList& diags_;
  Reader read_;
  KeyOf key_;
  std::map<std::string, int> index_;     // key -> file index
  std::vector<State> state_;
  std::vector<int> stack_;               // files being loaded, for the cycle message
  std::vector<ast::File> files_;
  std::vector<int> order_;
};

void Finish(CheckResult& result, Loader& loader) {
  check::Checker checker(result.sources, result.diagnostics);
  result.rules = checker.Run(loader.files(), loader.order());
  result.diagnostics.Sort();
}

std::optional<std::string> ReadDisk(const std::string& path, std::string* error) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    *error = "no such file";
    return std::nullopt;
  }
  if (fs::is_directory(st)) {
    *error = "is a directory";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot open the file";
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    *error = "read error";
    return std::nullopt;
  }
  return text.str();
}

}  // namespace

CheckResult CheckPaths(const std::vector<std::string>& paths) {
  CheckResult result;
  try {
    Loader loader(result.sources, result.diagnostics, ReadDisk, [](const std::string& path) {
      std::error_code ec;
      fs::path canonical = fs::weakly_canonical(path, ec);
      return ec ? Normal(path) : canonical.generic_string();
    });
    for (const std::string& path : paths) {
      std::error_code ec;
      if (!fs::is_directory(path, ec)) {
        loader.Load(Normal(path), SourceSpan{});
        continue;
      }
      std::vector<std::string> found;
      fs::recursive_directory_iterator it(path, ec), end;
      while (!ec && it != end) {
        std::error_code file_ec;
        if (it->path().extension() == ".vigil" && it->is_regular_file(file_ec)) {
          found.push_back(Normal(it->path().string()));
        }
        it.increment(ec);
      }
      if (ec) {
        result.diagnostics.Error("E103", SourceSpan{},
                                 fmt::format("cannot read directory '{}': {}", path, ec.message()));
      }
      std::sort(found.begin(), found.end());
      for (const std::string& f : found) loader.Load(f, SourceSpan{});
    }
    Finish(result, loader);
  } catch (const std::exception& e) {
    result.diagnostics.Error("E101", SourceSpan{}, fmt::format("internal error: {}", e.what()));
  }
  return result;
}

CheckResult CheckSources(std::vector<SourceFile> files) {
  CheckResult result;
  try {
    std::map<std::string, std::string> by_path;
    std::vector<std::string> order;
    for (SourceFile& f : files) {
      std::string path = Normal(f.path);
      if (by_path.emplace(path, std::move(f.text)).second) order.push_back(path);
    }
    Loader loader(
        result.sources, result.diagnostics,
        [&by_path](const std::string& path, std::string* error) -> std::optional<std::string> {
          auto it = by_path.find(path);
          if (it == by_path.end()) {
            *error = "no such file";
            return std::nullopt;
          }
          return it->second;
        },
        [](const std::string& path) { return path; });
    for (const std::string& path : order) loader.Load(path, SourceSpan{});
    Finish(result, loader);
  } catch (const std::exception& e) {
    result.diagnostics.Error("E101", SourceSpan{}, fmt::format("internal error: {}", e.what()));
  }
  return result;
}

}  // namespace vigil
