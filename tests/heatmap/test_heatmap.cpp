// Tests for prune/heatmap.hpp: the SVG holds every label, value and the legend, escapes
// text, and rejects mismatched sizes. Writes heatmap.svg for the rendering test.
#include <prune/heatmap.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>

namespace {
std::size_t occurrences(const std::string& text, const std::string& needle) {
    std::size_t count = 0;
    for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++count;
    }
    return count;
}
}  // namespace

TEST_CASE("to_svg draws every cell, label and the legend") {
    prune::heatmap map;
    map.title = "Heads kept across 3 seeds <task & co>";
    map.row_labels = {"layer 0", "layer 1"};
    map.column_labels = {"h0", "h1", "h2"};
    map.values = {{1.0, 0.0, 1.0 / 3.0}, {std::numeric_limits<double>::quiet_NaN(), 2.0 / 3.0}};
    const std::string svg = prune::to_svg(map);
    CHECK(svg.rfind("<svg", 0) == 0);
    CHECK(svg.find("</svg>") != std::string::npos);
    CHECK(svg.find("&lt;task &amp; co&gt;") != std::string::npos);
    CHECK(svg.find("layer 1") != std::string::npos);
    CHECK(svg.find(">h2<") != std::string::npos);
    CHECK(svg.find(">0.33<") != std::string::npos);
    CHECK(svg.find(">0.67<") != std::string::npos);
    CHECK(svg.find(">-<") != std::string::npos);  // the NaN cell
    CHECK(occurrences(svg, "stroke=\"white\"") == 5);  // five cells drawn (ragged second row)
    CHECK(svg.find("fraction kept") != std::string::npos);
    std::ofstream("heatmap.svg") << svg;
}

TEST_CASE("to_svg rejects sizes that disagree and an empty scale") {
    prune::heatmap map;
    map.row_labels = {"layer 0"};
    map.column_labels = {"h0"};
    map.values = {{0.5, 0.5}};
    CHECK_THROWS_AS(prune::to_svg(map), prune::shape_error);
    map.values = {{0.5}, {0.5}};
    CHECK_THROWS_AS(prune::to_svg(map), prune::shape_error);
    map.values = {{0.5}};
    map.high = map.low;
    CHECK_THROWS_AS(prune::to_svg(map), prune::value_error);
}
