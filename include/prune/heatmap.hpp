// prune/heatmap.hpp: SVG heatmaps of what survives pruning (heads: layers x heads,
// MLPs: layers, m-pruning sparsity: layers x matrices), self-contained and readable:
// row and column labels, a title, the value printed in every cell, and a colour legend.
#pragma once

#include <prune/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace prune {

/// What a heatmap shows: values[r][c] in [low, high] (NaN = no value, drawn grey).
struct heatmap {
    std::string title;                       ///< drawn above the grid
    std::vector<std::string> row_labels;     ///< one per row (e.g. "layer 0")
    std::vector<std::string> column_labels;  ///< one per column (e.g. "head 3")
    std::vector<std::vector<double>> values; ///< rows x columns; rows may be shorter (ragged): missing cells are blank
    double low = 0.0;                        ///< value drawn in the lightest colour
    double high = 1.0;                       ///< value drawn in the darkest colour
    std::string legend = "fraction kept";    ///< caption of the colour scale
    int decimals = 2;                        ///< digits printed in each cell
};

namespace detail {
/// Escapes text for SVG.
inline std::string svg_escape(const std::string& text) {
    std::string out;
    for (char ch : text) {
        switch (ch) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += ch;
        }
    }
    return out;
}
/// A colour on a white-to-dark-blue scale for t in [0, 1].
inline std::string heat_colour(double t) {
    t = std::clamp(t, 0.0, 1.0);
    const auto mix = [t](int from, int to) { return static_cast<int>(std::lround(from + (to - from) * t)); };
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", mix(0xf7, 0x08), mix(0xfb, 0x30), mix(0xff, 0x6b));
    return buffer;
}
/// Formats a number with a fixed count of decimals.
inline std::string fixed(double value, int decimals) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return buffer;
}
}  // namespace detail

/// Renders a heatmap as a standalone SVG document; throws shape_error when the labels and
/// values disagree in size.
[[nodiscard]] inline std::string to_svg(const heatmap& map) {
    const std::size_t rows = map.values.size();
    std::size_t columns = map.column_labels.size();
    if (map.row_labels.size() != rows) {
        throw shape_error("prune::to_svg: " + std::to_string(map.row_labels.size()) + " row labels for " +
                          std::to_string(rows) + " rows of values");
    }
    for (std::size_t r = 0; r < rows; ++r) {
        if (map.values[r].size() > columns) {
            throw shape_error("prune::to_svg: row " + std::to_string(r) + " has " +
                              std::to_string(map.values[r].size()) + " values for " + std::to_string(columns) +
                              " column labels");
        }
    }
    if (!(map.high > map.low)) {
        throw value_error("prune::to_svg: the scale needs high > low");
    }
    const int cell = 44;
    std::size_t longest_row_label = 0;
    for (const auto& label : map.row_labels) {
        longest_row_label = std::max(longest_row_label, label.size());
    }
    const int left = 16 + static_cast<int>(longest_row_label) * 8;
    const int top = 64;
    const int grid_width = cell * static_cast<int>(columns);
    const int grid_height = cell * static_cast<int>(rows);
    const int legend_width = 90;
    const int title_width = 24 + static_cast<int>(map.title.size()) * 11;  // 15 px bold DejaVu Sans: <= 11 px a character
    const int width = std::max(left + std::max(grid_width, 160) + legend_width + 16, title_width);
    const int height = top + std::max(grid_height, 140) + 24;

    std::string svg;
    svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
           std::to_string(height) + "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">\n";
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    svg += "<text x=\"16\" y=\"22\" font-size=\"15\" font-weight=\"bold\">" +
           detail::svg_escape(map.title) + "</text>\n";
    for (std::size_t c = 0; c < columns; ++c) {
        svg += "<text x=\"" + std::to_string(left + cell * static_cast<int>(c) + cell / 2) + "\" y=\"" +
               std::to_string(top - 8) + "\" text-anchor=\"middle\">" + detail::svg_escape(map.column_labels[c]) +
               "</text>\n";
    }
    for (std::size_t r = 0; r < rows; ++r) {
        const int y = top + cell * static_cast<int>(r);
        svg += "<text x=\"" + std::to_string(left - 6) + "\" y=\"" + std::to_string(y + cell / 2 + 4) +
               "\" text-anchor=\"end\">" + detail::svg_escape(map.row_labels[r]) + "</text>\n";
        for (std::size_t c = 0; c < map.values[r].size(); ++c) {
            const double value = map.values[r][c];
            const int x = left + cell * static_cast<int>(c);
            const bool missing = std::isnan(value);
            const double t = missing ? 0.0 : (value - map.low) / (map.high - map.low);
            svg += "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y) + "\" width=\"" +
                   std::to_string(cell) + "\" height=\"" + std::to_string(cell) + "\" fill=\"" +
                   (missing ? std::string("#d0d0d0") : detail::heat_colour(t)) +
                   "\" stroke=\"white\" stroke-width=\"1\"/>\n";
            svg += "<text x=\"" + std::to_string(x + cell / 2) + "\" y=\"" + std::to_string(y + cell / 2 + 4) +
                   "\" text-anchor=\"middle\" font-size=\"11\" fill=\"" + (t > 0.55 ? "white" : "black") + "\">" +
                   (missing ? std::string("-") : detail::fixed(value, map.decimals)) + "</text>\n";
        }
    }
    // legend: a vertical gradient from high (top) to low (bottom)
    const int legend_x = left + std::max(grid_width, 160) + 24;
    const int legend_height = 120;
    svg += "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
           "<stop offset=\"0\" stop-color=\"" + detail::heat_colour(1.0) + "\"/>"
           "<stop offset=\"1\" stop-color=\"" + detail::heat_colour(0.0) + "\"/></linearGradient></defs>\n";
    svg += "<rect x=\"" + std::to_string(legend_x) + "\" y=\"" + std::to_string(top) +
           "\" width=\"16\" height=\"" + std::to_string(legend_height) +
           "\" fill=\"url(#scale)\" stroke=\"#888\"/>\n";
    svg += "<text x=\"" + std::to_string(legend_x + 22) + "\" y=\"" + std::to_string(top + 10) + "\">" +
           detail::fixed(map.high, map.decimals) + "</text>\n";
    svg += "<text x=\"" + std::to_string(legend_x + 22) + "\" y=\"" + std::to_string(top + legend_height) + "\">" +
           detail::fixed(map.low, map.decimals) + "</text>\n";
    svg += "<text x=\"" + std::to_string(legend_x) + "\" y=\"" + std::to_string(top - 8) + "\">" +
           detail::svg_escape(map.legend) + "</text>\n";
    svg += "</svg>\n";
    return svg;
}

}  // namespace prune
