// Reading typed values out of a parsed YAML document with diagnostics (internal to
// serve_config*.cc). Entry point: the ConfigReader class.
//
// yaml-cpp gives every node a Mark (0-based line and byte column); ConfigReader turns it into a
// SourceSpan of grammar/diagnostics.h, so a bad value is reported at its own position with the
// source line and a caret. Each getter checks one value's kind and range and reports a
// diagnostic (code and message as listed in docs/operations.md, "Configuration") when it is
// wrong, returning nullopt; the caller keeps going, so one pass reports every error.
//
// Secrets: SecretValue accepts a plain scalar or a one-key mapping {env: NAME} / {file: PATH}
// and resolves it. The spans of secret values written inline are remembered (SecretSpans) so the
// loader can mask them in the text that diagnostics quote.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "adapters/serve_config.h"
#include "grammar/diagnostics.h"

namespace vigil::serve_config_internal {

// Diagnostic codes (docs/operations.md, "Configuration errors").
inline constexpr const char* kSyntax = "C101";           // YAML syntax error
inline constexpr const char* kUnknownKey = "C102";       // unknown or misplaced key
inline constexpr const char* kWrongType = "C103";        // mapping/list/scalar of the wrong kind
inline constexpr const char* kBadDuration = "C104";      // not a duration
inline constexpr const char* kBadEnum = "C105";          // not one of the allowed words
inline constexpr const char* kBadNumber = "C106";        // not an integer, or out of range
inline constexpr const char* kMissing = "C107";          // required key or section missing
inline constexpr const char* kDuplicate = "C108";        // duplicate key or name
inline constexpr const char* kUnknownSink = "C109";      // a sink name that is not defined
inline constexpr const char* kNeedCheckpoints = "C110";  // broker source without checkpoints
inline constexpr const char* kBadAddress = "C111";       // listen address malformed or remote
inline constexpr const char* kBadSecret = "C112";        // {env}/{file} unresolved or misplaced
inline constexpr const char* kBadPath = "C113";          // a path that does not exist / unreadable
inline constexpr const char* kConflict = "C114";         // settings that contradict each other
inline constexpr const char* kTransactionalNoKafka = "C201";  // warning
inline constexpr const char* kInlineSecret = "C202";          // warning
inline constexpr const char* kRouteToSpecialSink = "C203";    // warning

// A key of a mapping and its value (value may be a null node: `key:` with nothing after it).
// (A default YAML::Node is a defined null node, hence the flag.)
struct Field {
  YAML::Node key;
  YAML::Node value;
  bool found = false;
  bool present() const { return found; }
};

class ConfigReader {
 public:
  // `text` must outlive the reader; `base_dir` anchors relative paths (absolute, no trailing /).
  ConfigReader(std::string_view text, int file, std::string base_dir, DiagnosticList* diags);

  DiagnosticList& diags() { return *diags_; }
  const std::string& base_dir() const { return base_dir_; }
  std::string_view text() const { return text_; }

  SourceSpan SpanOf(const YAML::Mark& mark, uint32_t length = 1) const;
  // The node's span: its text for a scalar, its first character otherwise. A null node without
  // a mark (an empty value) takes `fallback`'s span (usually its key).
  SourceSpan SpanOf(const YAML::Node& node, const YAML::Node& fallback = YAML::Node()) const;
  SourceSpan SpanOf(const Field& f) const { return SpanOf(f.value, f.key); }

  // Checks that `node` is a mapping (a null node counts as an empty one), reports unknown keys
  // (with a "did you mean" among `allowed`; `elsewhere` lists keys valid in another variant,
  // reported as "does not apply to `what`") and duplicate keys. False if not a mapping.
  bool CheckMap(const YAML::Node& node, const YAML::Node& fallback, std::string_view what,
                const std::vector<std::string>& allowed,
                const std::vector<std::string>& elsewhere = {});
  // The field named `key` of a mapping checked by CheckMap (first occurrence), or an absent one.
  static Field Get(const YAML::Node& map, std::string_view key);

  // Typed values; each reports its own error and returns nullopt when it is wrong. `what` names
  // the value in messages ("watermark.idle_timeout").
  std::optional<std::string> String(const Field& f, std::string_view what);
  std::optional<int64_t> Integer(const Field& f, std::string_view what, int64_t min, int64_t max);
  std::optional<bool> Bool(const Field& f, std::string_view what);
  std::optional<int64_t> Duration(const Field& f, std::string_view what);
  // Index of the value in `names`; an unknown word gets a suggestion.
  std::optional<size_t> Enum(const Field& f, std::string_view what,
                             const std::vector<std::string>& names);
  // A path, made absolute against base_dir (not checked for existence). Empty stays empty.
  std::optional<std::string> Path(const Field& f, std::string_view what);
  // A string or a list of strings.
  std::optional<std::vector<std::string>> StringList(const Field& f, std::string_view what);
  // A plain scalar or {env: NAME} / {file: PATH}, resolved. `sensitive`: redact even inline.
  std::optional<Secret> SecretValue(const Field& f, std::string_view what, bool sensitive);

  // Spans of sensitive values written inline (to be masked in quoted source lines).
  const std::vector<SourceSpan>& secret_spans() const { return secret_spans_; }

  // "a mapping", "a list", "a string", "nothing" — for "expected X, got Y".
  static std::string_view KindName(const YAML::Node& node);
  // base_dir-relative `path` made absolute and normalised.
  std::string Absolute(const std::string& path) const;

 private:
  uint32_t OffsetOf(const YAML::Mark& mark) const;
  uint32_t ScalarLength(uint32_t offset, const YAML::Node& node) const;
  bool ExpectScalar(const Field& f, std::string_view what, std::string_view expected);

  std::string_view text_;
  int file_;
  std::string base_dir_;
  DiagnosticList* diags_;
  std::vector<uint32_t> line_starts_;
  std::vector<SourceSpan> secret_spans_;
};

}  // namespace vigil::serve_config_internal
