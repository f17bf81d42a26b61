// Text forms of event time used by rule files and decoders: ISO-8601 UTC timestamps
// ("2024-03-01T12:00:00Z", "2024-03-01T12:00:00.250+02:00") and durations ("250ms", "1h30m").
// Values are integer milliseconds (timestamps since the Unix epoch).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vigil {

// Parses an ISO-8601 date-time with seconds, optional fraction (up to ms are kept) and a
// zone designator `Z` or `±HH:MM`. Returns nullopt on any malformation (including 2024-02-30).
std::optional<int64_t> ParseTimestamp(std::string_view text);
// Formats as "2024-03-01T12:00:00Z" or "2024-03-01T12:00:00.250Z".
std::string FormatTimestamp(int64_t millis);

// Parses one or more <integer><unit> parts, unit one of ms s m h d w: "10m", "1h30m".
std::optional<int64_t> ParseDuration(std::string_view text);
// Formats with the largest exact units of d, h, m, s, ms: 5400000 -> "1h30m", 250 -> "250ms", 0 -> "0s".
std::string FormatDuration(int64_t millis);

// Milliseconds of one unit ("ms", "s", "m", "h", "d", "w"), or nullopt.
std::optional<int64_t> DurationUnitMillis(std::string_view unit);

}  // namespace vigil
