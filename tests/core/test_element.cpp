#include <prune/element.hpp>
#include <catch2/catch.hpp>
TEST_CASE("element placeholder") { CHECK(true); }
