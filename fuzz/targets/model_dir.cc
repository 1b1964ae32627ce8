// Fuzz target: the model-directory loader (mascot::load_model: P.npy + Q.npy).
// The input is split at the first "\n--Q.npy--\n" into P.npy and Q.npy; without the
// separator both files get the whole input.  (model.json is parsed by Python, MF.load; its
// fuzzing lives in fuzz/python/model_json.py.)  A successful load must have consistent shapes.
#include <algorithm>

#include "../fuzz_common.h"
#include "mascot/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mascot;
  static const char kSep[] = "\n--Q.npy--\n";
  const uint8_t* end = data + size;
  const uint8_t* sep = std::search(data, end, kSep, kSep + sizeof kSep - 1);
  const uint8_t* q = sep == end ? data : sep + (sizeof kSep - 1);
  const std::string dir = fuzz::scratch_subdir("model");
  fuzz::write_scratch("model/P.npy", data, static_cast<size_t>(sep - data));
  fuzz::write_scratch("model/Q.npy", q, static_cast<size_t>(end - q));
  fuzz::expect_clean([&] {
    const Model m = load_model(dir);
    fuzz::require(m.k >= 1 && m.n_users >= 0 && m.n_items >= 0, "positive k, non-negative sizes");
    fuzz::require(m.P.size() == static_cast<size_t>(m.n_users) * static_cast<size_t>(m.k), "P is n_users x k");
    fuzz::require(m.Q.size() == static_cast<size_t>(m.n_items) * static_cast<size_t>(m.k), "Q is n_items x k");
    if (m.n_users > 0 && m.n_items > 0) (void)m.predict(m.n_users - 1, m.n_items - 1);  // touches the last rows
  });
  return 0;
}
