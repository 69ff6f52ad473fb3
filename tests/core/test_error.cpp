// Tests of prune/error.hpp: the exception hierarchy and PRUNE_ASSERT.
#include <prune/error.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <type_traits>

TEST_CASE("every prune exception is a prune::error and a std::runtime_error", "[error]") {
    STATIC_REQUIRE(std::is_base_of_v<std::runtime_error, prune::error>);
    STATIC_REQUIRE(std::is_base_of_v<prune::error, prune::shape_error>);
    STATIC_REQUIRE(std::is_base_of_v<prune::error, prune::value_error>);
    STATIC_REQUIRE(std::is_base_of_v<prune::error, prune::format_error>);
    STATIC_REQUIRE(std::is_base_of_v<prune::error, prune::io_error>);
    STATIC_REQUIRE(std::is_base_of_v<prune::error, prune::dtype_error>);
    try {
        throw prune::dtype_error("dtype I32 of tensor x (expected F32)");
    } catch (const prune::error& e) {
        CHECK(std::string(e.what()) == "dtype I32 of tensor x (expected F32)");
    }
}

TEST_CASE("PRUNE_ASSERT passes a true invariant and evaluates it once", "[error]") {
    int evaluations = 0;
    PRUNE_ASSERT(++evaluations == 1);
    CHECK(evaluations == 1);
    // A false invariant aborts the process (not testable in-process without a death test).
}
