// ConfigReader (serve_config_reader.h): typed values from yaml-cpp nodes, with a diagnostic at
// the node's own line and column for every value that is wrong, and secret references resolved.
#include "adapters/serve_config_reader.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "grammar/time_format.h"

namespace vigil::serve_config_internal {
namespace {

bool IsSecretReference(const YAML::Node& node) {
  if (!node.IsMap() || node.size() != 1) return false;
  const YAML::Node key = node.begin()->first;
  return key.IsScalar() && (key.Scalar() == "env" || key.Scalar() == "file");
}

// Reads a secret file whole; on failure returns nullopt with the reason in `error`. Only a
// regular file of at most kMaxSecretBytes: `{file: /dev/zero}` or a log file by mistake must
// neither hang the loader nor fill memory.
constexpr uintmax_t kMaxSecretBytes = 64 * 1024;

std::optional<std::string> ReadWholeFile(const std::string& path, std::string* error) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    *error = "is a directory";
    return std::nullopt;
  }
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    *error = "not a regular file";
    return std::nullopt;
  }
  if (const uintmax_t size = std::filesystem::file_size(path, ec); !ec && size > kMaxSecretBytes) {
    *error = "larger than 64 KiB: not a secret";
    return std::nullopt;
  }
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = std::strerror(errno);
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  size_t n = 0;
  while (out.size() <= kMaxSecretBytes && (n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    *error = "read error";
    return std::nullopt;
  }
  if (out.size() > kMaxSecretBytes) {   // grew while read
    *error = "larger than 64 KiB: not a secret";
    return std::nullopt;
  }
  return out;
}

}  // namespace

ConfigReader::ConfigReader(std::string_view text, int file, std::string base_dir,
                           DiagnosticList* diags)
    : text_(text), file_(file), base_dir_(std::move(base_dir)), diags_(diags) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(static_cast<uint32_t>(i + 1));
  }
}

uint32_t ConfigReader::OffsetOf(const YAML::Mark& mark) const {
  if (mark.is_null() || mark.line < 0) return 0;
  const size_t line = std::min<size_t>(static_cast<size_t>(mark.line), line_starts_.size() - 1);
  const size_t offset = line_starts_[line] + static_cast<size_t>(std::max(mark.column, 0));
  return static_cast<uint32_t>(std::min(offset, text_.size()));
}

uint32_t ConfigReader::ScalarLength(uint32_t offset, const YAML::Node& node) const {
  if (offset >= text_.size()) return 1;
  const char first = text_[offset];
  size_t end = offset + 1;
  if (first == '"' || first == '\'') {
    // To the closing quote ('' is an escaped quote in single quotes, \" in double quotes).
    while (end < text_.size() && text_[end] != '\n') {
      if (first == '"' && text_[end] == '\\') {
        end += 2;
        continue;
      }
      if (text_[end] == first) {
        if (first == '\'' && end + 1 < text_.size() && text_[end + 1] == '\'') {
          end += 2;
          continue;
        }
        ++end;
        break;
      }
      ++end;
    }
    return static_cast<uint32_t>(std::min(end, text_.size()) - offset);
  }
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (!s.empty() && text_.substr(offset, s.size()) == s) return static_cast<uint32_t>(s.size());
  }
  // A folded or otherwise transformed scalar: up to the end of its first line.
  end = text_.find('\n', offset);
  if (end == std::string_view::npos) end = text_.size();
  while (end > offset + 1 && (text_[end - 1] == ' ' || text_[end - 1] == '\r')) --end;
  return static_cast<uint32_t>(end - offset);
}

SourceSpan ConfigReader::SpanOf(const YAML::Mark& mark, uint32_t length) const {
  if (mark.is_null()) return SourceSpan{file_, 0, 0};
  return SourceSpan{file_, OffsetOf(mark), length};
}

SourceSpan ConfigReader::SpanOf(const YAML::Node& node, const YAML::Node& fallback) const {
  const bool usable = node.IsDefined() && !node.Mark().is_null() && !node.IsNull();
  if (!usable) {
    if (fallback.IsDefined() && !fallback.Mark().is_null()) return SpanOf(fallback);
    if (node.IsDefined() && !node.Mark().is_null()) return SpanOf(node.Mark(), 1);
    return SourceSpan{file_, 0, 0};
  }
  const uint32_t offset = OffsetOf(node.Mark());
  const uint32_t length = node.IsScalar() ? ScalarLength(offset, node) : 1;
  return SourceSpan{file_, offset, length};
}

std::string_view ConfigReader::KindName(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsMap()) return IsSecretReference(node) ? "a secret reference" : "a mapping";
  if (node.IsSequence()) return "a list";
  return "a string";
}

bool ConfigReader::CheckMap(const YAML::Node& node, const YAML::Node& fallback,
                            std::string_view what, const std::vector<std::string>& allowed,
                            const std::vector<std::string>& elsewhere) {
  if (!node.IsDefined() || node.IsNull()) return true;
  if (!node.IsMap()) {
    diags_->Error(kWrongType, SpanOf(node, fallback),
                  fmt::format("{}: expected a mapping, got {}", what, KindName(node)));
    return false;
  }
  std::map<std::string, YAML::Node> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      diags_->Error(kWrongType, SpanOf(key),
                    fmt::format("{}: a key must be a word, got {}", what, KindName(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    if (auto [at, inserted] = seen.emplace(name, key); !inserted) {
      diags_->Error(kDuplicate, SpanOf(key), fmt::format("duplicate key '{}' in {}", name, what),
                    fmt::format("the first is on line {}", at->second.Mark().line + 1));
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
    if (std::find(elsewhere.begin(), elsewhere.end(), name) != elsewhere.end()) {
      diags_->Error(kUnknownKey, SpanOf(key),
                    fmt::format("key '{}' does not apply to {}", name, what));
      continue;
    }
    const std::string closest = ClosestName(name, allowed);
    diags_->Error(kUnknownKey, SpanOf(key), fmt::format("unknown key '{}' in {}", name, what),
                  closest.empty() ? std::string() : fmt::format("did you mean '{}'?", closest));
  }
  return true;
}

Field ConfigReader::Get(const YAML::Node& map, std::string_view key) {
  if (!map.IsDefined() || !map.IsMap()) return {};
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) {
      return Field{it->first, it->second, true};
    }
  }
  return {};
}

bool ConfigReader::ExpectScalar(const Field& f, std::string_view what, std::string_view expected) {
  if (f.value.IsDefined() && f.value.IsScalar()) return true;
  if (IsSecretReference(f.value)) {
    diags_->Error(kBadSecret, SpanOf(f), fmt::format("{} cannot be a secret reference", what),
                  "only connection settings (Kafka properties and topics, RabbitMQ host, vhost, "
                  "user, password, queue, exchange, routing_key) and metrics.admin_token can");
    return false;
  }
  diags_->Error(kWrongType, SpanOf(f),
                fmt::format("{}: expected {}, got {}", what, expected, KindName(f.value)));
  return false;
}

std::optional<std::string> ConfigReader::String(const Field& f, std::string_view what) {
  if (!ExpectScalar(f, what, "a string")) return std::nullopt;
  return f.value.Scalar();
}

std::optional<int64_t> ConfigReader::Integer(const Field& f, std::string_view what, int64_t min,
                                             int64_t max) {
  if (!ExpectScalar(f, what, "an integer")) return std::nullopt;
  const std::string& s = f.value.Scalar();
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || p != s.data() + s.size() || ec == std::errc::invalid_argument) {
    diags_->Error(kBadNumber, SpanOf(f), fmt::format("{}: expected an integer, got '{}'", what, s));
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || v < min || v > max) {
    diags_->Error(kBadNumber, SpanOf(f),
                  fmt::format("{} must be between {} and {}, got {}", what, min, max, s));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> ConfigReader::Bool(const Field& f, std::string_view what) {
  if (!ExpectScalar(f, what, "true or false")) return std::nullopt;
  const std::string& s = f.value.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  diags_->Error(kWrongType, SpanOf(f), fmt::format("{}: expected true or false, got '{}'", what, s),
                "write true or false (yes/no/on/off are not booleans here)");
  return std::nullopt;
}

std::optional<int64_t> ConfigReader::Duration(const Field& f, std::string_view what) {
  if (!ExpectScalar(f, what, "a duration")) return std::nullopt;
  const std::string& s = f.value.Scalar();
  if (s == "0") return 0;
  if (auto d = ParseDuration(s)) return d;
  const bool bare_number =
      !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  diags_->Error(kBadDuration, SpanOf(f), fmt::format("{}: '{}' is not a duration", what, s),
                bare_number ? fmt::format("add a unit: '{}s' or '{}ms'", s, s)
                            : std::string("write numbers with units: 250ms, 10s, 5m, 1h30m "
                                          "(units ms s m h d w)"));
  return std::nullopt;
}

std::optional<size_t> ConfigReader::Enum(const Field& f, std::string_view what,
                                         const std::vector<std::string>& names) {
  if (!ExpectScalar(f, what, "a word")) return std::nullopt;
  const std::string& s = f.value.Scalar();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == s) return i;
  }
  const std::string closest = ClosestName(s, names);
  std::string all;
  for (const std::string& n : names) all += (all.empty() ? "" : ", ") + n;
  diags_->Error(kBadEnum, SpanOf(f), fmt::format("unknown {} '{}'", what, s),
                closest.empty() ? fmt::format("expected one of: {}", all)
                                : fmt::format("did you mean '{}'?", closest));
  return std::nullopt;
}

std::string ConfigReader::Absolute(const std::string& path) const {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(base_dir_) / p;
  std::string out = p.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::optional<std::string> ConfigReader::Path(const Field& f, std::string_view what) {
  auto s = String(f, what);
  if (!s) return std::nullopt;
  return Absolute(*s);
}

std::optional<std::vector<std::string>> ConfigReader::StringList(const Field& f,
                                                                 std::string_view what) {
  if (f.value.IsDefined() && f.value.IsSequence()) {
    std::vector<std::string> out;
    bool ok = true;
    for (const YAML::Node& item : f.value) {
      auto s = String(Field{f.key, item, true}, what);
      if (s) {
        out.push_back(*s);
      } else {
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return out;
  }
  if (!ExpectScalar(f, what, "a string or a list of strings")) return std::nullopt;
  return std::vector<std::string>{f.value.Scalar()};
}

std::optional<Secret> ConfigReader::SecretValue(const Field& f, std::string_view what,
                                                bool sensitive) {
  if (f.value.IsDefined() && f.value.IsScalar()) {
    if (sensitive) {
      // The span is masked in the quoted text, so the warning shows the line without the value.
      secret_spans_.push_back(SpanOf(f));
      if (!f.value.Scalar().empty()) {
        diags_->Warning(kInlineSecret, SpanOf(f),
                        fmt::format("{} is a secret written inline in the file", what),
                        "write {env: NAME} or {file: PATH} to keep it out of the file");
      }
    }
    return Secret::Inline(f.value.Scalar(), sensitive);
  }
  if (!f.value.IsDefined() || !f.value.IsMap()) {
    diags_->Error(kWrongType, SpanOf(f),
                  fmt::format("{}: expected a string, {{env: NAME}} or {{file: PATH}}, got {}",
                              what, KindName(f.value)));
    return std::nullopt;
  }
  if (!IsSecretReference(f.value)) {
    diags_->Error(
        kBadSecret, SpanOf(f),
        fmt::format("{}: a secret reference is a mapping with one key, env or file", what),
        "write {env: NAME} or {file: PATH}");
    return std::nullopt;
  }
  const Field ref{f.value.begin()->first, f.value.begin()->second, true};
  const std::string kind = ref.key.Scalar();
  auto name = String(ref, fmt::format("{} ({})", what, kind));
  if (!name) return std::nullopt;
  Secret secret;
  if (kind == "env") {
    secret.origin = Secret::Origin::kEnv;
    secret.reference = *name;
    const char* value = name->empty() ? nullptr : std::getenv(name->c_str());
    if (value == nullptr) {
      diags_->Error(kBadSecret, SpanOf(ref),
                    fmt::format("environment variable '{}' (for {}) is not set", *name, what));
      return std::nullopt;
    }
    secret.value = value;
    return secret;
  }
  secret.origin = Secret::Origin::kFile;
  secret.reference = Absolute(*name);
  std::string error;
  auto contents = ReadWholeFile(secret.reference, &error);
  if (!contents) {
    diags_->Error(
        kBadSecret, SpanOf(ref),
        fmt::format("cannot read secret file '{}' (for {}): {}", secret.reference, what, error));
    return std::nullopt;
  }
  while (!contents->empty() && (contents->back() == '\n' || contents->back() == '\r')) {
    contents->pop_back();
  }
  secret.value = std::move(*contents);
  return secret;
}

}  // namespace vigil::serve_config_internal
