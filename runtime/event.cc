// Record images (see event.h): the builder decoders write with, the arena and single-copy
// owners the engine keeps events in, and the text form used by tests and dead letters.
#include "runtime/event.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include <fmt/format.h>

#include "grammar/schema.h"
#include "grammar/time_format.h"

namespace vigil {

void RecordBuilder::Grow(size_t bytes) {
  assert(bytes <= kMaxImageBytes);
  size_t cells = std::max<size_t>(capacity_cells_ * 2, 64);
  while (cells * sizeof(Cell) < bytes) cells *= 2;
  // Zeroed (not for_overwrite): AlignTo8 reads the whole last word of the image, whose bytes
  // past the end must hold determinate values (zeros, or an earlier record's bytes).
  auto grown = std::make_unique<Cell[]>(cells);
  if (size_bytes_ > 0) std::memcpy(grown.get(), buf_.get(), size_bytes_);
  buf_ = std::move(grown);
  capacity_cells_ = cells;
}

Cell::Ref RecordBuilder::AppendCells(const Cell* cells, uint32_t n) {
  AlignTo8();
  Reserve(size_bytes_ + size_t{n} * sizeof(Cell));
  const Cell::Ref ref{static_cast<uint32_t>(size_bytes_), n};
  if (n > 0) std::memcpy(buf_.get() + size_bytes_ / sizeof(Cell), cells, n * sizeof(Cell));
  size_bytes_ += size_t{n} * sizeof(Cell);
  return ref;
}

RecordArena::RecordArena(size_t block_bytes)
    : block_cells_(std::max<size_t>(block_bytes / sizeof(Cell), 64)) {}

RecordView RecordArena::Append(RecordView record) {
  const std::span<const Cell> image = record.image();
  const size_t need = image.size();
  // Find a block with room, starting at the current one; blocks before it are full.
  while (current_ < blocks_.size() &&
         blocks_[current_].capacity - blocks_[current_].used < need) {
    ++current_;
  }
  if (current_ == blocks_.size()) {
    Block block;
    block.capacity = std::max(block_cells_, need);
    block.cells = std::make_unique_for_overwrite<Cell[]>(block.capacity);
    blocks_.push_back(std::move(block));
  }
  Block& block = blocks_[current_];
  Cell* dst = block.cells.get() + block.used;
  std::memcpy(dst, image.data(), need * sizeof(Cell));
  block.used += need;
  return RecordView(dst);
}

void RecordArena::Clear() {
  for (Block& b : blocks_) b.used = 0;
  current_ = 0;
}

size_t RecordArena::bytes_used() const {
  size_t used = 0;
  for (const Block& b : blocks_) used += b.used;
  return used * sizeof(Cell);
}

size_t RecordArena::bytes_reserved() const {
  size_t cap = 0;
  for (const Block& b : blocks_) cap += b.capacity;
  return cap * sizeof(Cell);
}

OwnedRecord::OwnedRecord(RecordView record) {
  const std::span<const Cell> image = record.image();
  image_ = std::make_unique_for_overwrite<Cell[]>(image.size());
  std::memcpy(image_.get(), image.data(), image.size_bytes());
}

namespace {

void AppendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void AppendScalar(std::string& out, ScalarType type, const Cell& cell, std::string_view text) {
  switch (type) {
    case ScalarType::kString: AppendQuoted(out, text); break;
    case ScalarType::kInt: out += fmt::format("{}", cell.i); break;
    case ScalarType::kFloat: out += fmt::format("{}", cell.f); break;
    case ScalarType::kBool: out += cell.i != 0 ? "true" : "false"; break;
    case ScalarType::kTimestamp: out += FormatTimestamp(cell.i); break;
    case ScalarType::kDuration: out += FormatDuration(cell.i); break;
  }
}

}  // namespace

std::string FormatRecord(const EventType& type, RecordView record) {
  std::string out = type.name;
  out += '{';
  for (int slot = 0; slot < record.field_count(); ++slot) {
    const FieldDef& field = type.fields[static_cast<size_t>(slot)];
    if (slot > 0) out += ", ";
    out += field.name;
    out += ": ";
    const ScalarType scalar = field.type.scalar;
    if (field.type.is_list()) {
      const ListView list = record.GetList(slot);
      out += '[';
      for (uint32_t i = 0; i < list.size(); ++i) {
        if (i > 0) out += ", ";
        const std::string_view text =
            scalar == ScalarType::kString ? list.GetString(i) : std::string_view();
        AppendScalar(out, scalar, list.cell(i), text);
      }
      out += ']';
    } else {
      const std::string_view text =
          scalar == ScalarType::kString ? record.GetString(slot) : std::string_view();
      AppendScalar(out, scalar, record.cell(slot), text);
    }
  }
  out += '}';
  return out;
}

}  // namespace vigil
