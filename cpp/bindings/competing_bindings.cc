// Test hooks of the competing methods (quantizers, switching rules), part of mascot._core.
#include <nanobind/nanobind.h>

namespace nb = nanobind;

void bind_competing(nb::module_& m) { (void)m; }
