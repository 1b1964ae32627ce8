// Conversions between NumPy / Python and the core's types, shared by the binding files
// (module.cc: mascot._core; testing.cc and testing_competing.cc: mascot._core._testing).
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "mascot/error.h"
#include "mascot/model.h"
#include "mascot/ratings.h"

namespace mascot::bind {

namespace nb = nanobind;

template <class T>
using In1 = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
template <class T>
using In2 = nb::ndarray<const T, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
template <class T>
using In3 = nb::ndarray<const T, nb::ndim<3>, nb::c_contig, nb::device::cpu>;

/// Moves a vector into a NumPy array without a copy.
template <class T>
nb::object to_numpy(std::vector<T>&& v, std::initializer_list<size_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, T>(heap->data(), shape.size(), shape.begin(), owner));
}
template <class T>
nb::object to_numpy(std::vector<T>&& v) {
  const size_t n = v.size();
  return to_numpy(std::move(v), {n});
}

template <class T>
std::vector<T> to_vec(const In1<T>& a) {
  return std::vector<T>(a.data(), a.data() + a.shape(0));
}

/// A validated rating set from three parallel arrays (`what` names it in errors).
inline RatingSet make_set(const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r, int64_t n_users,
                          int64_t n_items, const char* what) {
  MASCOT_CHECK_ARG(u.shape(0) == i.shape(0) && u.shape(0) == r.shape(0),
                   std::string(what) + ": users, items and ratings must have the same length (got " +
                       std::to_string(u.shape(0)) + ", " + std::to_string(i.shape(0)) + ", " +
                       std::to_string(r.shape(0)) + ")");
  RatingSet rs;
  rs.n_users = n_users;
  rs.n_items = n_items;
  rs.users = to_vec(u);
  rs.items = to_vec(i);
  rs.ratings = to_vec(r);
  rs.validate(what);
  return rs;
}

/// A rating set of ids only (ratings 0): for the hooks that look at the structure.
inline RatingSet ids_only(const In1<int32_t>& u, const In1<int32_t>& i, int64_t nu, int64_t ni) {
  MASCOT_CHECK_ARG(u.shape(0) == i.shape(0), "users and items must have the same length");
  RatingSet rs;
  rs.n_users = nu;
  rs.n_items = ni;
  rs.users = to_vec(u);
  rs.items = to_vec(i);
  rs.ratings.assign(rs.users.size(), 0.0f);
  rs.validate("ratings");
  return rs;
}

/// (users, items, ratings, n_users, n_items), the arrays moved out of `rs`.
inline nb::tuple set_to_tuple(RatingSet&& rs) {
  const int64_t nu = rs.n_users, ni = rs.n_items;
  return nb::make_tuple(to_numpy(std::move(rs.users)), to_numpy(std::move(rs.items)), to_numpy(std::move(rs.ratings)),
                        nu, ni);
}

/// A Model holding copies of the factor matrices P (users x k) and Q (items x k).
inline Model model_from(const In2<float>& P, const In2<float>& Q) {
  MASCOT_CHECK_ARG(P.shape(1) == Q.shape(1), "P and Q must have the same number of columns");
  Model mdl;
  mdl.n_users = static_cast<int64_t>(P.shape(0));
  mdl.n_items = static_cast<int64_t>(Q.shape(0));
  mdl.k = static_cast<int>(P.shape(1));
  mdl.P.assign(P.data(), P.data() + P.size());
  mdl.Q.assign(Q.data(), Q.data() + Q.size());
  return mdl;
}

/// The test hooks of mascot._core._testing (testing.cc, testing_competing.cc).
void bind_testing(nb::module_& m);
void bind_testing_competing(nb::module_& m);

}  // namespace mascot::bind
