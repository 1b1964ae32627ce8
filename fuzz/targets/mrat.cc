// Fuzz target: the binary `.mrat` reader (mascot::read_mrat).  A successful read must pass
// RatingSet::validate and survive a write_mrat -> read_mrat round trip unchanged.
#include "../fuzz_common.h"
#include "mascot/ratings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mascot;
  const std::string path = fuzz::write_scratch("in.mrat", data, size);
  fuzz::expect_clean([&] {
    const RatingSet rs = read_mrat(path);
    rs.validate("fuzz");
    fuzz::require(size == 40 + 12 * static_cast<size_t>(rs.nnz()), "file size matches nnz");
    const std::string out = fuzz::scratch_dir() + "/out.mrat";
    write_mrat(out, rs);
    const RatingSet back = read_mrat(out);
    fuzz::require(
        back.n_users == rs.n_users && back.n_items == rs.n_items && back.users == rs.users && back.items == rs.items &&
            (rs.ratings.empty() || std::memcmp(back.ratings.data(), rs.ratings.data(), rs.ratings.size() * 4) == 0),
        "write_mrat/read_mrat round trip");
  });
  return 0;
}
