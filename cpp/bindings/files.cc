// mascot._core.OutputSet (detail::OutputSet, the one publication mechanism: mascot/_files.py
// builds the package's writers on it), the test hook of its fault points, and the translation of
// error messages that are not UTF-8 (a path's bytes in them) into Python exceptions.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include "fspath.h"
#include "mascot/detail/fileutil.h"
#include "mascot/detail/json.h"
#include "mascot/error.h"
#include "mascot/memory_plan.h"
#include "mascot/model.h"

namespace mascot::bind {

using namespace nb::literals;

namespace {
using detail::OutputSet;
using Handle = OutputSet::Handle;

PyObject* python_type(const std::exception& e) {
  if (dynamic_cast<const IoError*>(&e)) return PyExc_OSError;
  if (dynamic_cast<const Interrupted*>(&e)) return PyExc_KeyboardInterrupt;
  if (dynamic_cast<const InsufficientMemory*>(&e) || dynamic_cast<const std::bad_alloc*>(&e)) return PyExc_MemoryError;
  if (dynamic_cast<const std::invalid_argument*>(&e)) return PyExc_ValueError;
  return PyExc_RuntimeError;
}
}  // namespace

void bind_files(nb::module_& m) {
  // Registered last, so tried first: a message holding bytes that are not UTF-8 (a file name)
  // becomes the exception its type maps to (module.cc, error.h), the bytes decoded as os.fsdecode
  // does: the path in it reads as the str the caller passed.  Other messages go on unchanged.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const std::exception& e) {
      const std::string w = e.what();
      if (detail::utf8_valid(w) == w) throw;
      PyObject* msg = PyUnicode_DecodeFSDefaultAndSize(w.data(), static_cast<Py_ssize_t>(w.size()));
      if (!msg) throw;
      PyErr_SetObject(python_type(e), msg);
      Py_DECREF(msg);
    }
  });

  nb::class_<OutputSet>(
      m, "OutputSet",
      "The publication of outputs (mascot/detail/fileutil.h): declare inputs and outputs, prepare() (resolve, "
      "check, stage beside the targets), fill the staged temps, publish() them all or none; discard() (or "
      "dropping the object) removes what is staged.  mascot._files wraps it.")
      .def(nb::init<>())
      .def(
          "input", [](OutputSet& s, const std::string& what, const FsPath& p) { s.input(what, p.s); }, "what"_a,
          "path"_a, "A file the caller reads: no output may be it or contain it.")
      .def(
          "file", [](OutputSet& s, const std::string& what, const FsPath& p) { return s.file(what, p.s); }, "what"_a,
          "path"_a, "A file output; returns its handle.")
      .def(
          "directory",
          [](OutputSet& s, const std::string& what, const FsPath& p, std::vector<std::string> own,
             const std::string& marker, bool replace, const std::string& content) {
            detail::DirSpec spec;
            spec.ours = [own](const std::string& n) { return std::find(own.begin(), own.end(), n) != own.end(); };
            spec.marker = marker;
            spec.replace = replace;
            spec.content = content;
            return s.directory(what, p.s, std::move(spec));
          },
          "what"_a, "path"_a, "own"_a, "marker"_a = "", "replace"_a = true, "content"_a = "the output",
          "A directory output replaced as a whole: an existing one must hold only names in `own` (and `marker` "
          "when not empty); replace=False refuses any existing one.")
      .def(
          "model_directory",
          [](OutputSet& s, const std::string& what, const FsPath& p) {
            return s.directory(what, p.s, model_dir_spec());
          },
          "what"_a, "path"_a, "A model directory output (the core's rules: model_dir_spec).")
      .def("prepare", &OutputSet::prepare, "Resolves, checks and stages the outputs declared so far.")
      .def(
          "staging_path", [](const OutputSet& s, Handle h) { return fs_str(s.staging_path(h)); }, "handle"_a,
          "The staged temp file or directory to fill.")
      .def(
          "target_path", [](const OutputSet& s, Handle h) { return fs_str(s.target_path(h)); }, "handle"_a,
          "The resolved target (symlinks followed).")
      .def(
          "write", [](OutputSet& s, Handle h, nb::bytes data) { s.write(h, data.c_str(), data.size()); }, "handle"_a,
          "data"_a, "Appends bytes to a file output's staged content.")
      .def("publish", &OutputSet::publish, nb::call_guard<nb::gil_scoped_release>(),
           "Puts every output in place, all or none (a FIFO target waits for its reader).")
      .def("discard", &OutputSet::discard, "Removes everything staged; releases locks.")
      .def_prop_ro("published", &OutputSet::published)
      .def_prop_ro("discarded", &OutputSet::discarded)
      .def_prop_ro(
          "notes", [](const OutputSet& s) { return s.notes(); },
          "What prepare() did that a user may want to know (an interrupted replacement put back).");
}

void bind_files_testing(nb::module_& t) {
  t.def("set_publish_fault", &detail::set_publish_fault, "spec"_a,
        "Test hook: fault points of the publication (mascot/detail/fileutil.h, set_publish_fault); '' clears.");
}

}  // namespace mascot::bind
