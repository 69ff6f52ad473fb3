// Tests of prune/error.hpp: the exception hierarchy, number_text and PRUNE_ASSERT.
#include <prune/error.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
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

TEST_CASE("number_text prints the shortest text that reads back as the same double", "[error]") {
    // What a user typed comes back as typed (std::to_string gave "0.000000" and "-1.000000").
    CHECK(prune::number_text(1e-12) == "1e-12");
    CHECK(prune::number_text(-1.0) == "-1");
    CHECK(prune::number_text(1.5) == "1.5");
    CHECK(prune::number_text(0.001) == "0.001");
    CHECK(prune::number_text(2e-3) == "0.002");
    CHECK(prune::number_text(0.1) == "0.1");
    CHECK(prune::number_text(std::numeric_limits<double>::infinity()) == "inf");
    CHECK(prune::number_text(-std::numeric_limits<double>::infinity()) == "-inf");
    CHECK(prune::number_text(std::nan("")) == "nan");
    CHECK(prune::number_text(-std::nan("")) == "nan");
    // Round trip through strtod (an independent parser) for values of every magnitude.
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> mantissa(-1.0, 1.0);
    std::uniform_int_distribution<int> exponent(-300, 300);
    for (int i = 0; i < 2000; ++i) {
        const double v = std::ldexp(mantissa(rng), exponent(rng));
        const std::string text = prune::number_text(v);
        INFO(text);
        CHECK(std::strtod(text.c_str(), nullptr) == v);
    }
}
