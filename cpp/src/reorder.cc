// Group-based matrix reconstruction (paper §III-D).  Relabelling makes every group a
// contiguous id range, so the group metadata is O(g): boundaries, counts, precision.
#include "mascot/reorder.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "mascot/detail/rng.h"
#include "mascot/error.h"

namespace mascot {

int GroupTable::count_fp32() const {
  return static_cast<int>(std::count(precision.begin(), precision.end(), Precision::kFp32));
}

void shuffle_for_chunk_order(RatingSet* rs, uint64_t seed) {
  // key 2^33: apart from the per-epoch keys (2^32 + epoch) and the blocked grid's (2 id + side)
  detail::FastRng rng(detail::hash3(seed, detail::kStreamOrder, uint64_t{1} << 33));
  for (int64_t x = rs->nnz(); x > 1; --x) {
    const auto j = static_cast<size_t>(rng.next() % static_cast<uint64_t>(x));  // bias < x / 2^64
    const auto t = static_cast<size_t>(x - 1);
    std::swap(rs->users[t], rs->users[j]);
    std::swap(rs->items[t], rs->items[j]);
    std::swap(rs->ratings[t], rs->ratings[j]);
  }
}

std::vector<int32_t> split_groups(const std::vector<int64_t>& counts, int g) {
  const int64_t n = static_cast<int64_t>(counts.size());
  std::vector<int32_t> start{0};
  if (n == 0) return start;
  int64_t prev = 0;
  for (int j = 1; j < g; ++j) {
    // ideal boundary j*n/g, at least one past the previous one, then pushed forward past a
    // run of equal counts so a tie is never split
    int64_t b = std::max<int64_t>((static_cast<int64_t>(j) * n + g / 2) / g, prev + 1);
    while (b < n && counts[b] == counts[b - 1]) ++b;
    if (b >= n) break;
    start.push_back(static_cast<int32_t>(b));
    prev = b;
  }
  start.push_back(static_cast<int32_t>(n));
  return start;
}

namespace {

// Relabels one side: sorts ids by (cls, count descending, original id) and splits groups:
// with `cls` empty, about g groups by count; otherwise one group per class (cls 0 first).
void relabel(const std::vector<int64_t>& count_old, int g, const std::vector<uint8_t>& cls,
             std::vector<int32_t>* new_of_old, std::vector<int32_t>* old_of_new, std::vector<int64_t>* count_new,
             GroupTable* table) {
  const size_t n = count_old.size();
  old_of_new->resize(n);
  std::iota(old_of_new->begin(), old_of_new->end(), 0);
  if (cls.empty()) {
    std::stable_sort(old_of_new->begin(), old_of_new->end(),
                     [&](int32_t a, int32_t b) { return count_old[a] > count_old[b]; });
  } else {
    std::stable_sort(old_of_new->begin(), old_of_new->end(), [&](int32_t a, int32_t b) {
      return cls[a] != cls[b] ? cls[a] < cls[b] : count_old[a] > count_old[b];
    });
  }
  new_of_old->assign(n, 0);
  count_new->resize(n);
  for (size_t r = 0; r < n; ++r) {
    (*new_of_old)[(*old_of_new)[r]] = static_cast<int32_t>(r);
    (*count_new)[r] = count_old[(*old_of_new)[r]];
  }
  if (cls.empty()) {
    table->start = split_groups(*count_new, g);
  } else {
    const int32_t n16 = static_cast<int32_t>(std::count(cls.begin(), cls.end(), uint8_t{0}));
    table->start = {0};
    if (n16 > 0 && n16 < static_cast<int32_t>(n)) table->start.push_back(n16);
    table->start.push_back(static_cast<int32_t>(n));
  }
  const int realised = static_cast<int>(table->start.size()) - 1;
  table->precision.assign(realised, Precision::kFp16);
  if (!cls.empty())
    for (int j = 0; j < realised; ++j)
      if (cls[(*old_of_new)[table->start[j]]] != 0) table->precision[j] = Precision::kFp32;
  table->rating_count.assign(realised, 0);
  for (int j = 0; j < realised; ++j)
    for (int32_t id = table->start[j]; id < table->start[j + 1]; ++id) table->rating_count[j] += (*count_new)[id];
}

void count_ratings(const RatingSet& train, std::vector<int64_t>* uc, std::vector<int64_t>* ic) {
  uc->assign(static_cast<size_t>(train.n_users), 0);
  ic->assign(static_cast<size_t>(train.n_items), 0);
  const int64_t n = train.nnz();
  for (int64_t t = 0; t < n; ++t) {
    ++(*uc)[train.users[t]];
    ++(*ic)[train.items[t]];
  }
}

}  // namespace

Reorder Reorder::build(const RatingSet& train, int user_groups, int item_groups) {
  MASCOT_CHECK_ARG(user_groups >= 1 && item_groups >= 1, "groups must be >= 1");
  std::vector<int64_t> uc, ic;
  count_ratings(train, &uc, &ic);
  Reorder r;
  relabel(uc, user_groups, {}, &r.user_new, &r.user_old, &r.user_count, &r.user_groups);
  relabel(ic, item_groups, {}, &r.item_new, &r.item_old, &r.item_count, &r.item_groups);
  return r;
}

Reorder Reorder::build_random_precision(const RatingSet& train, double fp16_fraction, uint64_t seed) {
  MASCOT_CHECK_ARG(fp16_fraction >= 0 && fp16_fraction <= 1, "fp16_fraction must be in [0, 1]");
  std::vector<int64_t> uc, ic;
  count_ratings(train, &uc, &ic);
  // entity x is FP16 when its hash falls below fraction x 2^64 (counter-based, no state)
  const double below = std::ldexp(fp16_fraction, 64);
  auto coins = [&](size_t n, uint64_t stream) {
    std::vector<uint8_t> cls(n);
    for (size_t x = 0; x < n; ++x)
      cls[x] = fp16_fraction >= 1.0 ? 0 : static_cast<double>(detail::hash3(seed, stream, x)) < below ? 0 : 1;
    return cls;
  };
  Reorder r;
  relabel(uc, 1, coins(uc.size(), detail::kStreamRandomPrecisionP), &r.user_new, &r.user_old, &r.user_count,
          &r.user_groups);
  relabel(ic, 1, coins(ic.size(), detail::kStreamRandomPrecisionQ), &r.item_new, &r.item_old, &r.item_count,
          &r.item_groups);
  return r;
}

RatingSet Reorder::apply(const RatingSet& rs, int64_t* dropped) const {
  RatingSet out;
  out.n_users = static_cast<int64_t>(user_new.size());
  out.n_items = static_cast<int64_t>(item_new.size());
  const int64_t n = rs.nnz();
  out.users.reserve(n);
  out.items.reserve(n);
  out.ratings.reserve(n);
  int64_t drop = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t u = rs.users[t], i = rs.items[t];
    if (u < 0 || u >= out.n_users || i < 0 || i >= out.n_items) {
      ++drop;
      continue;
    }
    const int32_t nu = user_new[u], ni = item_new[i];
    if (user_count[nu] == 0 || item_count[ni] == 0) {
      ++drop;
      continue;
    }
    out.users.push_back(nu);
    out.items.push_back(ni);
    out.ratings.push_back(rs.ratings[t]);
  }
  if (dropped) *dropped = drop;
  return out;
}

void Reorder::apply_in_place(RatingSet* rs, int64_t* dropped) const {
  const int64_t n = rs->nnz(), nu = static_cast<int64_t>(user_new.size()), ni = static_cast<int64_t>(item_new.size());
  int64_t kept = 0;
  for (int64_t t = 0; t < n; ++t) {  // kept <= t: every write lands on a position already read
    const int64_t u = rs->users[t], i = rs->items[t];
    if (u < 0 || u >= nu || i < 0 || i >= ni) continue;
    const int32_t nu_id = user_new[u], ni_id = item_new[i];
    if (user_count[nu_id] == 0 || item_count[ni_id] == 0) continue;
    rs->users[kept] = nu_id;
    rs->items[kept] = ni_id;
    rs->ratings[kept] = rs->ratings[t];
    ++kept;
  }
  if (dropped) *dropped = n - kept;
  rs->users.resize(static_cast<size_t>(kept));
  rs->items.resize(static_cast<size_t>(kept));
  rs->ratings.resize(static_cast<size_t>(kept));
  if (kept < n / 2) {  // give the memory of many dropped ratings back
    rs->users.shrink_to_fit();
    rs->items.shrink_to_fit();
    rs->ratings.shrink_to_fit();
  }
  rs->n_users = nu;
  rs->n_items = ni;
}

}  // namespace mascot
