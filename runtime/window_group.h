// The group of a `by` aggregate as bytes (docs/language.md "Groups"): the window state keeps a
// (key, group)'s windows under the key's bytes followed by these, and a grouped `when` rule's
// alert decodes them back into values. Entry points: AppendGroup and DecodeGroup.
//
// Encoding, per group field in order (the same as the matcher's key components): int, timestamp,
// duration and bool as 8 bytes (two's complement, host order); float as its 8 bytes with −0
// folded into 0 and every NaN one value; string as a 4-byte length and its bytes. Equal values
// give equal bytes, so a group is found by its bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/schema.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"

namespace vigil {

// Appends the values of `event`'s fields `slots` (of types `types`) to *out. A slot < 0 appends
// nothing and returns false (the event's type lacks the field: it has no group).
bool AppendGroup(RecordView event, std::span<const int32_t> slots, std::span<const ValueType> types,
                 std::string* out);

// The values encoded in `bytes` (strings view `bytes`) into *out, replacing its content.
void DecodeGroup(std::string_view bytes, std::span<const ValueType> types, std::vector<ExprValue>* out);

}  // namespace vigil
