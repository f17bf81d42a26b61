// The runtime form of one event: a compact, typed, relocatable record laid out by its EventType.
//
// Decoders (adapters/) write records with a RecordBuilder; the engine reads them through a
// RecordView and, when it must keep an event past the next decode (per-key buffering until the
// watermark passes), copies it into a RecordArena or an OwnedRecord with one memcpy.
//
// Layout. A record is one flat image of 8-byte cells, position independent:
//
//   cell 0   type id                         (EventType index in the Schema)
//   cell 1   event time, ms since the epoch  (the type's time field; 0 if the type has none)
//   cell 2   {field count, image size in bytes}
//   cell 3+i slot i = EventType::fields[i]:
//              int, timestamp (ms), duration (ms), bool (0/1) -> Cell::i
//              float                                           -> Cell::f
//              string, list<T>                                 -> Cell::ref {offset, size}
//   ...      variable part: string bytes (packed, unaligned) and list element arrays (8-aligned).
//
// A string cell's ref is {byte offset from the image start, length in bytes}. A list cell's ref is
// {byte offset of its element array, element count}; elements are Cells encoded as scalar slots
// are (list<string> elements are refs to bytes in the same image). Offsets are relative to the
// image, never pointers, so copying the bytes of `RecordView::image()` anywhere (8-aligned) yields
// a valid record: no fix-up, no per-field allocation, and the same bytes can go into a checkpoint.
// Padding bytes are zeroed, so equal records have equal images.
//
// Ownership rules:
//   * RecordBuilder owns the image it builds. A RecordView from RecordBuilder::Finish() is valid
//     until the builder's next Start() or its destruction. The builder keeps its capacity, so a
//     reused builder allocates nothing in steady state. Decoders copy every string into the
//     builder's image: a record never points into the decoder's input buffer or parser state.
//   * RecordArena owns copies appended to it; their views are valid until Clear() or destruction.
//     Blocks are kept and reused after Clear().
//   * OwnedRecord owns a single copy (one allocation); its view is valid for its lifetime.
//   * A RecordView never owns anything; copying a view copies only a pointer.
// None of these types is thread safe; a record image, once built, may be read from any thread.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vigil {

struct EventType;

// One 8-byte slot of a record image.
union Cell {
  struct Ref {
    uint32_t offset;   // bytes from the image start
    uint32_t size;     // bytes (string) or elements (list)
  };
  int64_t i;   // int, timestamp, duration, bool
  double f;    // float
  Ref ref;     // string, list
};
static_assert(sizeof(Cell) == 8);

// A list value inside a record: `size()` element cells. Valid as long as the record's image.
class ListView {
 public:
  ListView() = default;
  ListView(const Cell* image, const Cell* elements, uint32_t size)
      : image_(image), elements_(elements), size_(size) {}

  uint32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Cell& cell(uint32_t i) const { return elements_[i]; }
  int64_t GetInt(uint32_t i) const { return elements_[i].i; }   // int, timestamp, duration
  double GetFloat(uint32_t i) const { return elements_[i].f; }
  bool GetBool(uint32_t i) const { return elements_[i].i != 0; }
  std::string_view GetString(uint32_t i) const;

 private:
  const Cell* image_ = nullptr;
  const Cell* elements_ = nullptr;
  uint32_t size_ = 0;
};

// A read-only view of one record image. Accessors do not check the slot's type: the caller
// (the compiled program) knows it from the EventType.
class RecordView {
 public:
  static constexpr int kHeaderCells = 3;

  RecordView() = default;
  // `image` must point at a record image (8-aligned) that outlives the view.
  explicit RecordView(const Cell* image) : image_(image) {}

  bool valid() const { return image_ != nullptr; }
  int type_id() const { return static_cast<int>(image_[0].i); }
  int64_t event_time() const { return image_[1].i; }
  int field_count() const { return static_cast<int>(image_[2].ref.offset); }
  // Size of the whole image in bytes (a multiple of 8).
  size_t size_bytes() const { return image_[2].ref.size; }
  // The whole image, for copying (memcpy into any 8-aligned storage is a valid record).
  std::span<const Cell> image() const { return {image_, size_bytes() / sizeof(Cell)}; }

  const Cell& cell(int slot) const { return image_[kHeaderCells + slot]; }
  int64_t GetInt(int slot) const { return cell(slot).i; }   // int, timestamp, duration
  double GetFloat(int slot) const { return cell(slot).f; }
  bool GetBool(int slot) const { return cell(slot).i != 0; }
  std::string_view GetString(int slot) const {
    const Cell::Ref r = cell(slot).ref;
    return {reinterpret_cast<const char*>(image_) + r.offset, r.size};
  }
  ListView GetList(int slot) const {
    const Cell::Ref r = cell(slot).ref;
    return {image_, image_ + r.offset / sizeof(Cell), r.size};
  }

 private:
  const Cell* image_ = nullptr;
};

inline std::string_view ListView::GetString(uint32_t i) const {
  const Cell::Ref r = elements_[i].ref;
  return {reinterpret_cast<const char*>(image_) + r.offset, r.size};
}

// Builds one record image at a time; reused across records (keeps its capacity).
// Usage: Start(); set cells / Append*(); SetEventTime(); Finish().
// Cell references returned by cell() are invalidated by Append*() (the image may move); write
// the ref returned by an Append*() into cell(slot) after the call.
class RecordBuilder {
 public:
  // Largest image a builder makes; decoders bound their input so it is never reached.
  static constexpr size_t kMaxImageBytes = size_t{1} << 31;

  RecordBuilder() = default;
  RecordBuilder(const RecordBuilder&) = delete;
  RecordBuilder& operator=(const RecordBuilder&) = delete;

  // Begins a record of `field_count` slots, all zero.
  void Start(int type_id, int field_count);
  Cell& cell(int slot) { return buf_[RecordView::kHeaderCells + slot]; }
  void SetEventTime(int64_t millis) { buf_[1].i = millis; }
  // Copies `bytes` into the image; returns the string ref to store in a cell.
  Cell::Ref AppendString(std::string_view bytes);
  // Copies `n` cells into the image (8-aligned); returns the list ref to store in a cell.
  Cell::Ref AppendCells(const Cell* cells, uint32_t n);
  // Pads the image to 8 bytes, records its size and returns a view of it (valid until Start).
  RecordView Finish();
  // The record the last Finish() completed (what a decoder just produced); valid until Start.
  RecordView record() const { return RecordView(buf_.get()); }

  size_t capacity_bytes() const { return capacity_cells_ * sizeof(Cell); }

 private:
  // Start, AppendString and Finish run once per event or field in every decoder: they are
  // inline, their zeroing and copying without a call to memset / memcpy (the records are a few
  // hundred bytes, their strings mostly a few bytes); growing is out of line.
  void Reserve(size_t bytes) {
    if (bytes > capacity_bytes()) Grow(bytes);
  }
  [[gnu::noinline]] void Grow(size_t bytes);
  void AlignTo8();

  std::unique_ptr<Cell[]> buf_;
  size_t capacity_cells_ = 0;
  size_t size_bytes_ = 0;
};

// Copies n bytes without a library call for the short strings records mostly hold: two
// possibly overlapping loads and stores of the largest power of two <= n (up to 16 bytes).
[[gnu::always_inline]] inline void CopyShortBytes(char* dst, const char* src, size_t n) {
  if (n >= 8) {
    if (n > 16) {
      std::memcpy(dst, src, n);
      return;
    }
    uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, src + n - 4, 4);
    std::memcpy(dst, &a, 4);
    std::memcpy(dst + n - 4, &b, 4);
  } else if (n >= 2) {
    uint16_t a, b;
    std::memcpy(&a, src, 2);
    std::memcpy(&b, src + n - 2, 2);
    std::memcpy(dst, &a, 2);
    std::memcpy(dst + n - 2, &b, 2);
  } else if (n == 1) {
    *dst = *src;
  }
}

inline void RecordBuilder::Start(int type_id, int field_count) {
  const size_t cells = RecordView::kHeaderCells + static_cast<size_t>(field_count);
  // Zeroed in blocks of 4 cells (the capacity is a power of two >= 64 cells, so the rounding
  // stays inside it); the empty asm keeps GCC from turning the loop back into a memset call.
  const size_t blocks = (cells + 3) / 4;
  size_bytes_ = 0;
  Reserve(blocks * 4 * sizeof(Cell));
  Cell* p = buf_.get();
  for (size_t b = 0; b < blocks; ++b) {
    std::memset(p + 4 * b, 0, 4 * sizeof(Cell));
    asm("" : : "r"(p) : "memory");
  }
  p[0].i = type_id;
  p[2].ref.offset = static_cast<uint32_t>(field_count);
  size_bytes_ = cells * sizeof(Cell);
}

inline Cell::Ref RecordBuilder::AppendString(std::string_view bytes) {
  Reserve(size_bytes_ + bytes.size());
  const Cell::Ref ref{static_cast<uint32_t>(size_bytes_), static_cast<uint32_t>(bytes.size())};
  CopyShortBytes(reinterpret_cast<char*>(buf_.get()) + size_bytes_, bytes.data(), bytes.size());
  size_bytes_ += bytes.size();
  return ref;
}

inline void RecordBuilder::AlignTo8() {
  const size_t tail = size_bytes_ & 7;
  if (tail == 0) return;
  // The capacity is a whole number of cells: the padded cell is inside it. Zero its bytes past
  // the end of the image (the high bytes of the word on a little-endian machine).
  char* cell = reinterpret_cast<char*>(buf_.get()) + (size_bytes_ - tail);
  if constexpr (std::endian::native == std::endian::little) {
    uint64_t word;
    std::memcpy(&word, cell, 8);
    word &= (uint64_t{1} << (8 * tail)) - 1;
    std::memcpy(cell, &word, 8);
  } else {
    std::memset(cell + tail, 0, 8 - tail);
  }
  size_bytes_ += 8 - tail;
}

inline RecordView RecordBuilder::Finish() {
  AlignTo8();
  buf_[2].ref.size = static_cast<uint32_t>(size_bytes_);
  return RecordView(buf_.get());
}

// Owns copies of records in large blocks; a view of an appended record stays valid until
// Clear(). For buffering events per key until the watermark passes.
class RecordArena {
 public:
  explicit RecordArena(size_t block_bytes = 64 * 1024);

  // Copies `record` (one memcpy) and returns a view of the copy.
  RecordView Append(RecordView record);
  // Forgets every record; keeps the blocks for reuse.
  void Clear();
  size_t bytes_used() const;
  size_t bytes_reserved() const;

 private:
  struct Block {
    std::unique_ptr<Cell[]> cells;
    size_t capacity = 0;   // cells
    size_t used = 0;       // cells
  };
  size_t block_cells_;
  std::vector<Block> blocks_;
  size_t current_ = 0;
};

// A single heap copy of one record.
class OwnedRecord {
 public:
  OwnedRecord() = default;
  explicit OwnedRecord(RecordView record);
  RecordView view() const { return RecordView(image_.get()); }
  bool valid() const { return image_ != nullptr; }

 private:
  std::unique_ptr<Cell[]> image_;
};

// Text form for tests, dead letters and debugging:
// `Charge{card_id: "c1", amount: 12.5, tags: ["a"], at: 2024-03-01T12:00:00Z}`.
std::string FormatRecord(const EventType& type, RecordView record);

}  // namespace vigil
