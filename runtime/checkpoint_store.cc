// Checkpoint files: atomic write (temp file, fsync, rename, directory fsync), CRC-32C, newest
// valid on read. The format and the reasons are in checkpoint_store.h.
#include "runtime/checkpoint_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace vigil {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'V', 'I', 'G', 'I', 'L', 'C', 'K', 'P'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 8 + 4 + 8 + 8;
constexpr size_t kTrailerSize = 4;
constexpr std::string_view kPrefix = "checkpoint-";
constexpr std::string_view kSuffix = ".vck";
constexpr std::string_view kTempPrefix = ".tmp-checkpoint-";

// The reflected Castagnoli polynomial's table, made once.
const std::array<uint32_t, 256>& CrcTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint32_t Crc32cTable(const unsigned char* p, size_t n, uint32_t crc) {
  const auto& t = CrcTable();
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHw(const unsigned char* p, size_t n, uint32_t crc) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint64_t GetLE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

bool FsyncDirectory(const std::string& dir, std::string* error) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    *error = Errno("cannot open directory", dir);
    return false;
  }
  const bool ok = ::fsync(fd) == 0;
  if (!ok) *error = Errno("cannot fsync directory", dir);
  ::close(fd);
  return ok;
}

// The epoch in a checkpoint file name, or false if the name is not one.
bool EpochOfName(std::string_view name, uint64_t* epoch) {
  if (name.size() != kPrefix.size() + 20 + kSuffix.size()) return false;
  if (name.substr(0, kPrefix.size()) != kPrefix) return false;
  if (name.substr(name.size() - kSuffix.size()) != kSuffix) return false;
  uint64_t v = 0;
  for (char c : name.substr(kPrefix.size(), 20)) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *epoch = v;
  return true;
}

}  // namespace

bool WriteAllToFd(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

uint32_t Crc32c(std::string_view bytes, uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  crc = hw ? Crc32cHw(p, bytes.size(), crc) : Crc32cTable(p, bytes.size(), crc);
#else
  crc = Crc32cTable(p, bytes.size(), crc);
#endif
  return ~crc;
}

CheckpointStore::CheckpointStore(std::string directory, int keep)
    : directory_(std::move(directory)), keep_(keep < 1 ? 1 : keep) {}

bool CheckpointStore::Open(std::string* error) {
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec) {
    *error = "cannot create checkpoint directory " + directory_ + ": " + ec.message();
    return false;
  }
  for (fs::directory_iterator it(directory_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kTempPrefix, 0) == 0) fs::remove(it->path(), ec);
  }
  if (ec) {
    *error = "cannot read checkpoint directory " + directory_ + ": " + ec.message();
    return false;
  }
  return true;
}

std::string CheckpointStore::PathOf(uint64_t epoch) const {
  char name[64];
  std::snprintf(name, sizeof name, "checkpoint-%020llu.vck", static_cast<unsigned long long>(epoch));
  return (fs::path(directory_) / name).string();
}

bool CheckpointStore::Write(uint64_t epoch, std::string_view payload, CheckpointWriteStats* stats,
                            std::string* error) {
  const std::string_view pieces[] = {payload};
  return Write(epoch, std::span<const std::string_view>(pieces), stats, error);
}

bool CheckpointStore::Write(uint64_t epoch, std::span<const std::string_view> pieces, CheckpointWriteStats* stats,
                            std::string* error) {
  const auto start = std::chrono::steady_clock::now();
  uint64_t size = 0;
  for (std::string_view piece : pieces) size += piece.size();
  std::string head;
  head.append(kMagic, sizeof kMagic);
  PutU32(&head, kFormatVersion);
  PutU64(&head, epoch);
  PutU64(&head, size);
  uint32_t crc = Crc32c(head);
  for (std::string_view piece : pieces) crc = Crc32c(piece, crc);
  std::string tail;
  PutU32(&tail, crc);

  const std::string final_path = PathOf(epoch);
  const std::string temp_path =
      (fs::path(directory_) / (std::string(kTempPrefix) + std::to_string(epoch))).string();
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = Errno("cannot create", temp_path);
    return false;
  }
  bool ok = WriteAllToFd(fd, head);
  for (std::string_view piece : pieces) ok = ok && WriteAllToFd(fd, piece);
  ok = ok && WriteAllToFd(fd, tail);
  if (!ok) *error = Errno("cannot write", temp_path);
  if (ok && ::fsync(fd) != 0) {
    ok = false;
    *error = Errno("cannot fsync", temp_path);
  }
  ::close(fd);
  if (ok && ::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    ok = false;
    *error = Errno("cannot rename to", final_path);
  }
  if (!ok) {
    ::unlink(temp_path.c_str());
    return false;
  }
  if (!FsyncDirectory(directory_, error)) return false;

  int removed = 0;
  const std::vector<uint64_t> epochs = List();
  for (size_t i = static_cast<size_t>(keep_); i < epochs.size(); ++i) {
    if (::unlink(PathOf(epochs[i]).c_str()) == 0) ++removed;
  }
  if (stats != nullptr) {
    stats->bytes = head.size() + size + tail.size();
    stats->write_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - start).count();
    stats->removed = removed;
  }
  return true;
}

std::vector<uint64_t> CheckpointStore::List() const {
  std::vector<uint64_t> epochs;
  std::error_code ec;
  for (fs::directory_iterator it(directory_, ec), end; !ec && it != end; it.increment(ec)) {
    uint64_t epoch = 0;
    if (EpochOfName(it->path().filename().string(), &epoch)) epochs.push_back(epoch);
  }
  std::sort(epochs.rbegin(), epochs.rend());
  return epochs;
}

bool CheckpointStore::Read(uint64_t epoch, std::string* payload, std::string* error) const {
  const std::string path = PathOf(epoch);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = Errno("cannot open", path);
    return false;
  }
  std::string bytes;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
  const bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (read_error) {
    *error = Errno("cannot read", path);
    return false;
  }
  const std::string name = fs::path(path).filename().string();
  if (bytes.size() < kHeaderSize + kTrailerSize) {
    *error = name + ": truncated (" + std::to_string(bytes.size()) + " bytes, shorter than a header)";
    return false;
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    *error = name + ": not a Vigil checkpoint (bad magic)";
    return false;
  }
  const uint64_t version = GetLE(bytes.data() + 8, 4);
  if (version != kFormatVersion) {
    *error = name + ": checkpoint format " + std::to_string(version) + ", this build reads " +
             std::to_string(kFormatVersion);
    return false;
  }
  const uint64_t file_epoch = GetLE(bytes.data() + 12, 8);
  const uint64_t length = GetLE(bytes.data() + 20, 8);
  if (length != bytes.size() - kHeaderSize - kTrailerSize) {
    *error = name + ": truncated or padded (payload " + std::to_string(length) + " bytes, file holds " +
             std::to_string(bytes.size() - kHeaderSize - kTrailerSize) + ")";
    return false;
  }
  const uint32_t stored = static_cast<uint32_t>(GetLE(bytes.data() + bytes.size() - 4, 4));
  const uint32_t computed = Crc32c(std::string_view(bytes.data(), bytes.size() - kTrailerSize));
  if (stored != computed) {
    char msg[96];
    std::snprintf(msg, sizeof msg, ": checksum mismatch (stored %08x, computed %08x)", stored, computed);
    *error = name + msg;
    return false;
  }
  if (file_epoch != epoch) {
    *error = name + ": holds epoch " + std::to_string(file_epoch);
    return false;
  }
  payload->assign(bytes, kHeaderSize, length);
  return true;
}

CheckpointRead CheckpointStore::ReadNewestValid() const {
  CheckpointRead out;
  for (uint64_t epoch : List()) {
    std::string error;
    if (Read(epoch, &out.payload, &error)) {
      out.found = true;
      out.epoch = epoch;
      out.path = PathOf(epoch);
      return out;
    }
    out.skipped.push_back({epoch, PathOf(epoch), error});
  }
  out.payload.clear();
  return out;
}

}  // namespace vigil
