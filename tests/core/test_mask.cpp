#include <prune/mask.hpp>
#include <catch2/catch.hpp>
TEST_CASE("mask placeholder") { CHECK(true); }
