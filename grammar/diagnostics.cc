// Diagnostics: collecting, ordering and rendering them (see diagnostics.h), plus the edit
// distance used for "did you mean" suggestions.
//
// RenderText prints the format of docs/language.md ("Diagnostics"):
//   rules/card.vigil:7:30: error E201: unknown field 'ammount' of event type Charge
//       small: Charge{3,} where ammount < 5
//                               ^~~~~~~
//     help: did you mean 'amount'?
// The caret line copies tabs from the source line so the caret stays aligned; a span that runs
// past the end of its line is cut there. RenderJson writes the same data as a JSON array.
#include "grammar/diagnostics.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace vigil {

int SourceSet::Add(std::string path, std::string text) {
  files.push_back(SourceFile{std::move(path), std::move(text)});
  return static_cast<int>(files.size()) - 1;
}

LineCol ToLineCol(std::string_view text, uint32_t offset) {
  const size_t end = std::min<size_t>(offset, text.size());
  LineCol lc{1, 1};
  size_t line_start = 0;
  for (size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++lc.line;
      line_start = i + 1;
    }
  }
  lc.column = static_cast<uint32_t>(end - line_start) + 1;
  return lc;
}

void DiagnosticList::Error(std::string code, SourceSpan span, std::string message,
                           std::string help) {
  diags_.push_back(
      Diagnostic{Severity::kError, std::move(code), std::move(message), std::move(help), span});
  ++errors_;
}

void DiagnosticList::Warning(std::string code, SourceSpan span, std::string message,
                             std::string help) {
  diags_.push_back(
      Diagnostic{Severity::kWarning, std::move(code), std::move(message), std::move(help), span});
}

void DiagnosticList::Sort() {
  std::stable_sort(diags_.begin(), diags_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.span.file != b.span.file) return a.span.file < b.span.file;
    if (a.span.offset != b.span.offset) return a.span.offset < b.span.offset;
    return a.code < b.code;
  });
}

namespace {

const SourceFile* FileOf(const SourceSet& sources, const SourceSpan& span) {
  if (span.file < 0 || static_cast<size_t>(span.file) >= sources.files.size()) return nullptr;
  return &sources.files[static_cast<size_t>(span.file)];
}

std::string_view SeverityName(Severity s) { return s == Severity::kError ? "error" : "warning"; }

// The line of `text` containing `offset`, without its line break.
std::string_view LineAt(std::string_view text, uint32_t offset, size_t* line_start) {
  const size_t at = std::min<size_t>(offset, text.size());
  size_t start = 0;
  if (at > 0) {
    const size_t nl = text.rfind('\n', at - 1);
    if (nl != std::string_view::npos) start = nl + 1;
  }
  size_t end = text.find('\n', start);
  if (end == std::string_view::npos) end = text.size();
  if (end > start && text[end - 1] == '\r') --end;
  *line_start = start;
  return text.substr(start, end - start);
}

// Appends `s` as JSON string contents; invalid UTF-8 bytes become U+FFFD.
void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\u{:04x}", c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // Validate one UTF-8 sequence.
    size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    if (c >= 0xf5) len = 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    }
    if (ok && len == 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
    }
    if (ok && len == 4) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a
// substring), case-insensitive.
size_t EditDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = Lower(a[i - 1]) == Lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && Lower(a[i - 1]) == Lower(b[j - 2]) &&
          Lower(a[i - 2]) == Lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    prev2.swap(prev);
    prev.swap(cur);
  }
  return prev[m];
}

}  // namespace

std::string RenderText(const SourceSet& sources, const Diagnostic& d) {
  std::string out;
  const SourceFile* file = FileOf(sources, d.span);
  if (file == nullptr) {
    out = fmt::format("{} {}: {}\n", SeverityName(d.severity), d.code, d.message);
  } else {
    const LineCol lc = ToLineCol(file->text, d.span.offset);
    out = fmt::format("{}:{}:{}: {} {}: {}\n", file->path, lc.line, lc.column,
                      SeverityName(d.severity), d.code, d.message);
    size_t line_start = 0;
    std::string_view line = LineAt(file->text, d.span.offset, &line_start);
    size_t col = std::min<size_t>(std::min<size_t>(d.span.offset, file->text.size()) - line_start,
                                  line.size());
    // A very long line (generated or minified input) is shown as a window around the caret.
    constexpr size_t kMaxShown = 160, kContext = 60;
    std::string_view prefix, suffix;
    if (line.size() > kMaxShown) {
      const size_t from = col > kContext ? col - kContext : 0;
      const size_t to = std::min(line.size(), from + kMaxShown);
      if (from > 0) prefix = "...";
      if (to < line.size()) suffix = "...";
      line = line.substr(from, to - from);
      col = col - from + prefix.size();
    }
    const std::string shown = std::string(prefix) + std::string(line);
    out += shown;
    out.append(suffix);
    out += '\n';
    line = shown;
    for (size_t i = 0; i < col; ++i) out += line[i] == '\t' ? '\t' : ' ';
    out += '^';
    const size_t room = line.size() > col ? line.size() - col : 0;
    const size_t tildes = std::min<size_t>(d.span.length, room);
    if (tildes > 1) out.append(tildes - 1, '~');
    out += '\n';
  }
  if (!d.help.empty()) out += fmt::format("  help: {}\n", d.help);
  return out;
}

std::string RenderJson(const SourceSet& sources, const std::vector<Diagnostic>& diags) {
  if (diags.empty()) return "[]\n";
  std::string out = "[\n";
  for (size_t i = 0; i < diags.size(); ++i) {
    const Diagnostic& d = diags[i];
    const SourceFile* file = FileOf(sources, d.span);
    LineCol lc{0, 0};
    if (file != nullptr) lc = ToLineCol(file->text, d.span.offset);
    out += "  {\"file\": ";
    AppendJsonString(out, file != nullptr ? std::string_view(file->path) : std::string_view());
    out += fmt::format(", \"line\": {}, \"column\": {}, \"severity\": \"{}\", \"code\": ", lc.line,
                       lc.column, SeverityName(d.severity));
    AppendJsonString(out, d.code);
    out += ", \"message\": ";
    AppendJsonString(out, d.message);
    out += ", \"help\": ";
    AppendJsonString(out, d.help);
    out += i + 1 < diags.size() ? "},\n" : "}\n";
  }
  out += "]\n";
  return out;
}

std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates) {
  if (name.empty() || name.size() > 200) return {};
  const size_t limit = std::max<size_t>(1, name.size() / 3);
  std::string best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    if (c == name || c.empty() || c.size() > 200) continue;
    const size_t len_diff = c.size() > name.size() ? c.size() - name.size() : name.size() - c.size();
    if (len_diff > limit) continue;
    const size_t d = EditDistance(name, c);
    if (d < best_distance || (d == best_distance && c < best)) {
      best_distance = d;
      best = c;
    }
  }
  return best_distance <= limit ? best : std::string();
}

}  // namespace vigil
