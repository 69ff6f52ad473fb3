// Tests for prune/line_chart.hpp: every series becomes one path with a marker per point, placed
// by the axis ranges (linear and logarithmic), references dashed, text escaped, bad values refused.
// Writes line_chart.svg for the rendering test.
#include <prune/line_chart.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>

namespace {
std::size_t occurrences(const std::string& text, const std::string& needle) {
    std::size_t count = 0;
    for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
}
}  // namespace

TEST_CASE("to_svg(line_chart): one path per series, a marker per point, references dashed") {
    prune::line_chart c;
    c.title = "perplexity <heads & co>";
    c.x_label = "fraction removed";
    c.y_label = "perplexity";
    c.series = {{"michel", {{0.0, 10.0}, {0.5, 20.0}, {1.0, 40.0}}}, {"random", {{0.0, 10.0}, {1.0, 100.0}}}};
    c.references = {{"full model", 10.0}};
    const std::string svg = prune::to_svg(c);
    CHECK(svg.rfind("<svg", 0) == 0);
    CHECK(svg.find("</svg>") != std::string::npos);
    CHECK(svg.find("&lt;heads &amp; co&gt;") != std::string::npos);
    CHECK(occurrences(svg, "<path ") == 2);
    CHECK(occurrences(svg, "<circle ") == 5);
    CHECK(occurrences(svg, "stroke-dasharray") == 1);
    // Linear axes: x from 0 to 1 over [70, 530], y from 10 to 100 over [320, 40] (the plot box).
    CHECK(svg.find("cx=\"70.0\" cy=\"320.0\"") != std::string::npos);   // (0, 10)
    CHECK(svg.find("cx=\"530.0\" cy=\"40.0\"") != std::string::npos);   // (1, 100)
    CHECK(svg.find("cx=\"300.0\" cy=\"288.9\"") != std::string::npos);  // (0.5, 20): 320 - 10/90 x 280
    std::ofstream("line_chart.svg") << svg;
}

TEST_CASE("to_svg(line_chart): a log axis places decades evenly") {
    prune::line_chart c;
    c.log_y = true;
    c.series = {{"a", {{0.0, 1.0}, {0.5, 10.0}, {1.0, 100.0}}}};
    const std::string svg = prune::to_svg(c);
    // log10: 0, 1, 2 over [320, 40]: the middle point at 180.
    CHECK(svg.find("cx=\"300.0\" cy=\"180.0\"") != std::string::npos);
    CHECK(svg.find("(log scale)") != std::string::npos);
}

TEST_CASE("to_svg(line_chart) refuses values it cannot place") {
    prune::line_chart c;
    c.series = {{"a", {{0.0, std::numeric_limits<double>::quiet_NaN()}}}};
    CHECK_THROWS_AS(prune::to_svg(c), prune::value_error);
    c.series = {{"a", {{0.0, 0.0}}}};
    c.log_y = true;
    CHECK_THROWS_WITH(prune::to_svg(c), Catch::Contains("y > 0 on a log axis"));
}
