// Group-based matrix reconstruction (paper §III-D).  Relabelling makes every group a
// contiguous id range, so the group metadata is O(g): boundaries, counts, precision.
#include "mascot/reorder.h"

#include <algorithm>
#include <numeric>

#include "mascot/error.h"

namespace mascot {

int GroupTable::count_fp32() const {
  return static_cast<int>(std::count(precision.begin(), precision.end(), Precision::kFp32));
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

// Relabels one side: sorts ids by count (descending, ties by original id), splits groups.
void relabel(const std::vector<int64_t>& count_old, int g, std::vector<int32_t>* new_of_old,
             std::vector<int32_t>* old_of_new, std::vector<int64_t>* count_new, GroupTable* table) {
  const size_t n = count_old.size();
  old_of_new->resize(n);
  std::iota(old_of_new->begin(), old_of_new->end(), 0);
  std::stable_sort(old_of_new->begin(), old_of_new->end(),
                   [&](int32_t a, int32_t b) { return count_old[a] > count_old[b]; });
  new_of_old->assign(n, 0);
  count_new->resize(n);
  for (size_t r = 0; r < n; ++r) {
    (*new_of_old)[(*old_of_new)[r]] = static_cast<int32_t>(r);
    (*count_new)[r] = count_old[(*old_of_new)[r]];
  }
  table->start = split_groups(*count_new, g);
  const int realised = static_cast<int>(table->start.size()) - 1;
  table->precision.assign(realised, Precision::kFp16);
  table->rating_count.assign(realised, 0);
  for (int j = 0; j < realised; ++j)
    for (int32_t id = table->start[j]; id < table->start[j + 1]; ++id)
      table->rating_count[j] += (*count_new)[id];
}

}  // namespace

Reorder Reorder::build(const RatingSet& train, int user_groups, int item_groups) {
  MASCOT_CHECK_ARG(user_groups >= 1 && item_groups >= 1, "groups must be >= 1");
  std::vector<int64_t> uc(static_cast<size_t>(train.n_users), 0), ic(static_cast<size_t>(train.n_items), 0);
  const int64_t n = train.nnz();
  for (int64_t t = 0; t < n; ++t) {
    ++uc[train.users[t]];
    ++ic[train.items[t]];
  }
  Reorder r;
  relabel(uc, user_groups, &r.user_new, &r.user_old, &r.user_count, &r.user_groups);
  relabel(ic, item_groups, &r.item_new, &r.item_old, &r.item_count, &r.item_groups);
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
    if (u < 0 || u >= out.n_users || i < 0 || i >= out.n_items) { ++drop; continue; }
    const int32_t nu = user_new[u], ni = item_new[i];
    if (user_count[nu] == 0 || item_count[ni] == 0) { ++drop; continue; }
    out.users.push_back(nu);
    out.items.push_back(ni);
    out.ratings.push_back(rs.ratings[t]);
  }
  if (dropped) *dropped = drop;
  return out;
}

}  // namespace mascot
