// Fuzz target: the LIBMF-style text reader (mascot::read_text).  A successful read must pass
// RatingSet::validate, have n_users/n_items = max id + 1, and survive write_text -> read_text.
#include <algorithm>

#include "../fuzz_common.h"
#include "mascot/ratings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mascot;
  const std::string path = fuzz::write_scratch("in.txt", data, size);
  fuzz::expect_clean([&] {
    const RatingSet rs = read_text(path);
    rs.validate("fuzz");
    fuzz::require(rs.nnz() > 0, "a successful read has ratings");
    fuzz::require(rs.n_users == int64_t{*std::max_element(rs.users.begin(), rs.users.end())} + 1, "n_users = max + 1");
    fuzz::require(rs.n_items == int64_t{*std::max_element(rs.items.begin(), rs.items.end())} + 1, "n_items = max + 1");
    const std::string out = fuzz::scratch_dir() + "/out.txt";
    write_text(out, rs);
    const RatingSet back = read_text(out);
    fuzz::require(
        back.users == rs.users && back.items == rs.items &&
            (rs.ratings.empty() || std::memcmp(back.ratings.data(), rs.ratings.data(), rs.ratings.size() * 4) == 0),
        "write_text/read_text round trip");
  });
  return 0;
}
