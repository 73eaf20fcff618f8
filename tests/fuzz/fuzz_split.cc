// libFuzzer target: range splitting. The input picks a range and a count or
// chunk; every split UniformSplit accepts must cover [begin, end) exactly
// with contiguous, non-empty slices (checked at the ends and at sampled
// positions, since a split may have two million slices), and ValidateBounds
// must agree with the boundaries it produces. Single-threaded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/split.h"

namespace {
uint64_t Take(const uint8_t*& data, size_t& size) {
  uint64_t v = 0;
  const size_t n = size < sizeof(v) ? size : sizeof(v);
  std::memcpy(&v, data, n);
  data += n;
  size -= n;
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool by_chunk = data[0] & 1;
  ++data;
  --size;
  const uint64_t begin = Take(data, size);
  const uint64_t end = Take(data, size);
  const uint64_t n = Take(data, size);
  auto split = by_chunk ? orchard::UniformSplit::ByChunk(begin, end, n)
                        : orchard::UniformSplit::BySubtasks(begin, end, n);
  if (!split.ok()) return 0;
  const uint64_t count = split->count();
  if (end <= begin || count == 0 || count > orchard::kMaxSubtasks) abort();
  if (split->At(0).begin != begin || split->At(count - 1).end != end) abort();
  std::vector<uint64_t> bounds = {begin};
  uint64_t sample = Take(data, size);
  for (int k = 0; k < 64; ++k) {
    const uint64_t i = (k < 2) ? (k == 0 ? 0 : count - 1) : (sample = sample * 6364136223846793005ULL + 1442695040888963407ULL) % count;
    const orchard::Slice s = split->At(i);
    if (s.begin >= s.end || s.begin < begin || s.end > end) abort();
    if (i + 1 < count && split->At(i + 1).begin != s.end) abort();
    if (by_chunk && i + 1 < count && s.end - s.begin != n) abort();
  }
  if (count <= 4096) {
    for (uint64_t i = 0; i < count; ++i) bounds.push_back(split->At(i).end);
    if (!orchard::ValidateBounds(bounds, begin, end).ok()) abort();
  }
  return 0;
}
