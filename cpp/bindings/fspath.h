// File system paths across the binding: `FsPath` is a std::string of the path's bytes, converted
// from what Python's os functions take: str (encoded as os.fsencode does, so a name that is not
// UTF-8, held in a str as surrogate escapes, keeps its bytes), bytes, or an os.PathLike.  A NUL
// byte is a ValueError.  Paths go back to Python decoded the same way (os.fsdecode).
#pragma once
#include <nanobind/nanobind.h>

#include <string>

namespace mascot::bind {

struct FsPath {
  std::string s;
  operator const std::string&() const { return s; }  // NOLINT: a path is its bytes
};

namespace nb = nanobind;

/// A path's bytes as Python's os.fsdecode gives them back (surrogate escapes for non-UTF-8).
inline nb::object fs_str(const std::string& p) {
  PyObject* o = PyUnicode_DecodeFSDefaultAndSize(p.data(), static_cast<Py_ssize_t>(p.size()));
  if (!o) throw nb::python_error();
  return nb::steal(o);
}

}  // namespace mascot::bind

NAMESPACE_BEGIN(NB_NAMESPACE)
NAMESPACE_BEGIN(detail)

template <>
struct type_caster<mascot::bind::FsPath> {
  NB_TYPE_CASTER(mascot::bind::FsPath, const_name("str | bytes | os.PathLike[str]"))

  bool from_python(handle src, uint32_t, cleanup_list*) noexcept {
    PyObject* fs = PyOS_FSPath(src.ptr());  // str / bytes as they are; PathLike.__fspath__()
    if (!fs) {
      PyErr_Clear();
      return false;
    }
    PyObject* bytes = nullptr;
    if (PyUnicode_Check(fs)) {
      bytes = PyUnicode_EncodeFSDefault(fs);
    } else if (PyBytes_Check(fs)) {
      bytes = fs;
      Py_INCREF(bytes);
    }
    Py_DECREF(fs);
    if (!bytes) {
      PyErr_Clear();
      return false;
    }
    value.s.assign(PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
    Py_DECREF(bytes);
    return value.s.find('\0') == std::string::npos;  // (nanobind then says which argument is wrong)
  }

  static handle from_cpp(const mascot::bind::FsPath& p, rv_policy, cleanup_list*) noexcept {
    return PyUnicode_DecodeFSDefaultAndSize(p.s.data(), static_cast<Py_ssize_t>(p.s.size()));
  }
};

NAMESPACE_END(detail)
NAMESPACE_END(NB_NAMESPACE)
