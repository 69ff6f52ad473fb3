// prune/models/bert/eigen.hpp: how the reference BERT includes Eigen.
//
// GCC 12 reports false "may be used uninitialized" warnings inside Eigen's AVX-512 packet
// transposes (avx512fintrin.h) when built with -march=native on AVX-512 machines. The
// warning is attributed to the intrinsic's location, so it must be silenced before Eigen
// is first included; this header does that and nothing else.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <Eigen/Core>
