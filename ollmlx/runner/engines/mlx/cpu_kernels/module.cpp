// The Python module of ollmlx's CPU kernels. NB_DOMAIN mlx in CMakeLists.txt makes it share
// mlx's nanobind types, so it takes and returns mlx.core.array.

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/variant.h>

#include "common.h"

namespace nb = nanobind;
using namespace nb::literals;

NB_MODULE(_cpu_kernels, m) {
  m.doc() = "ollmlx's CPU kernels for mlx (AVX2)";
  m.def("quantized_rows", &ollmlx::quantized_rows, "x"_a, "w"_a, "scales"_a, "biases"_a, "group_size"_a, "bits"_a,
        nb::kw_only(), "stream"_a = nb::none());
  m.def("rope", &ollmlx::rope, "x"_a, "dims"_a, "traditional"_a, "base"_a.none(), "scale"_a, "offset"_a,
        "freqs"_a = nb::none(), nb::kw_only(), "stream"_a = nb::none());
  m.def("attention", &ollmlx::attention, "q"_a, "k"_a, "v"_a, "scale"_a, "causal"_a, "mask"_a = nb::none(),
        nb::kw_only(), "stream"_a = nb::none());
}
