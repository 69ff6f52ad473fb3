#include <prune/tensor.hpp>
#include <catch2/catch.hpp>
TEST_CASE("tensor placeholder") { CHECK(true); }
