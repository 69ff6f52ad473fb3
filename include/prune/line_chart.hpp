// prune/line_chart.hpp: SVG line charts of a measure against how much was pruned -- one line
// per method, horizontal reference lines (the full model, chance), axes with ticks, a legend;
// optionally a logarithmic y axis (perplexity). Self-contained SVG, no script.
#pragma once

#include <prune/error.hpp>
#include <prune/heatmap.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace prune {

/// One line: (x, y) points in the order drawn.
struct line_series {
    std::string name;                              ///< legend text
    std::vector<std::pair<double, double>> points; ///< finite values only
};

/// What a line chart shows.
struct line_chart {
    std::string title;                                        ///< above the plot
    std::string x_label, y_label;                             ///< axis captions
    std::vector<line_series> series;                          ///< the methods
    std::vector<std::pair<std::string, double>> references;   ///< dashed horizontal lines (name, y)
    bool log_y = false;                                       ///< logarithmic y axis (values > 0)
};

namespace detail {

/// The plotted y of a value.
inline double chart_y(double v, bool log_y) { return log_y ? std::log10(v) : v; }

/// [low, high] of every plotted value (x or y), padded when flat.
inline std::pair<double, double> chart_range(const line_chart& c, bool y) {
    double low = std::numeric_limits<double>::infinity(), high = -low;
    auto see = [&](double v) {
        const double p = y ? chart_y(v, c.log_y) : v;
        low = std::min(low, p);
        high = std::max(high, p);
    };
    for (const auto& s : c.series)
        for (const auto& [x, v] : s.points) see(y ? v : x);
    if (y)
        for (const auto& r : c.references) see(r.second);
    if (!(high > low)) {
        low -= 0.5;
        high += 0.5;
    }
    return {low, high};
}

/// A colour of the palette.
inline const char* chart_colour(std::size_t i) {
    static constexpr std::array<const char*, 8> palette = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                                           "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
    return palette[i % palette.size()];
}

/// Throws value_error for a value the chart cannot place.
inline void check_chart(const line_chart& c) {
    auto bad = [&](double v) { return !std::isfinite(v) || (c.log_y && v <= 0.0); };
    for (const auto& s : c.series)
        for (const auto& [x, y] : s.points)
            if (!std::isfinite(x) || bad(y))
                throw value_error("prune::to_svg(line_chart): series '" + s.name + "' has the point (" + std::to_string(x) + ", " +
                                  std::to_string(y) + ") (expected finite values" + (c.log_y ? ", y > 0 on a log axis)" : ")"));
    for (const auto& [name, y] : c.references)
        if (bad(y)) throw value_error("prune::to_svg(line_chart): reference '" + name + "' is " + std::to_string(y));
}

}  // namespace detail

/// Renders the chart as a standalone SVG document; value_error for a non-finite value (or a
/// value <= 0 on a log axis).
[[nodiscard]] inline std::string to_svg(const line_chart& c) {
    detail::check_chart(c);
    const double left = 70, top = 40, width = 460, height = 280, legend_x = left + width + 20;
    const std::pair<double, double> xr = detail::chart_range(c, false), yr = detail::chart_range(c, true);
    const double x0 = xr.first, x1 = xr.second, y0 = yr.first, y1 = yr.second;  // lambdas below capture them
    auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * width; };
    auto py = [&](double v) { return top + height - (detail::chart_y(v, c.log_y) - y0) / (y1 - y0) * height; };
    auto num = [](double v) { return detail::fixed(v, 1); };
    std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"380\" font-family=\"sans-serif\" font-size=\"12\">\n";
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    svg += "<text x=\"16\" y=\"22\" font-size=\"15\" font-weight=\"bold\">" + detail::svg_escape(c.title) + "</text>\n";
    svg += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(width) + "\" height=\"" + num(height) +
           "\" fill=\"none\" stroke=\"#444\"/>\n";
    for (int i = 0; i <= 4; ++i) {  // ticks: 5 on each axis
        const double xv = x0 + (x1 - x0) * i / 4.0, yp = y0 + (y1 - y0) * i / 4.0;
        const double yv = c.log_y ? std::pow(10.0, yp) : yp;
        svg += "<text x=\"" + num(px(xv)) + "\" y=\"" + num(top + height + 16) + "\" text-anchor=\"middle\">" +
               detail::fixed(xv, 2) + "</text>\n";
        svg += "<text x=\"" + num(left - 6) + "\" y=\"" + num(py(yv) + 4) + "\" text-anchor=\"end\">" +
               detail::fixed(yv, std::abs(yv) >= 100 ? 0 : 2) + "</text>\n";
        svg += "<line x1=\"" + num(left) + "\" x2=\"" + num(left + width) + "\" y1=\"" + num(py(yv)) + "\" y2=\"" + num(py(yv)) +
               "\" stroke=\"#eee\"/>\n";
    }
    svg += "<text x=\"" + num(left + width / 2) + "\" y=\"" + num(top + height + 34) + "\" text-anchor=\"middle\">" +
           detail::svg_escape(c.x_label) + "</text>\n";
    svg += "<text x=\"16\" y=\"" + num(top + height / 2) + "\" transform=\"rotate(-90 16 " + num(top + height / 2) +
           ")\" text-anchor=\"middle\">" + detail::svg_escape(c.y_label + (c.log_y ? " (log scale)" : "")) + "</text>\n";
    double legend_y = top + 10;
    for (const auto& [name, y] : c.references) {
        svg += "<line x1=\"" + num(left) + "\" x2=\"" + num(left + width) + "\" y1=\"" + num(py(y)) + "\" y2=\"" + num(py(y)) +
               "\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>\n";
        svg += "<text x=\"" + num(legend_x) + "\" y=\"" + num(legend_y) + "\" fill=\"#666\">- - " + detail::svg_escape(name) + "</text>\n";
        legend_y += 18;
    }
    for (std::size_t i = 0; i < c.series.size(); ++i) {
        const auto& s = c.series[i];
        std::string path;
        for (const auto& [x, y] : s.points) path += (path.empty() ? "M" : " L") + num(px(x)) + "," + num(py(y));
        if (!path.empty())
            svg += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + detail::chart_colour(i) + "\" stroke-width=\"2\"/>\n";
        for (const auto& [x, y] : s.points)
            svg += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"3\" fill=\"" + detail::chart_colour(i) + "\"/>\n";
        svg += "<text x=\"" + num(legend_x) + "\" y=\"" + num(legend_y) + "\" fill=\"" + detail::chart_colour(i) + "\">&#9632; " +
               detail::svg_escape(s.name) + "</text>\n";
        legend_y += 18;
    }
    return svg + "</svg>\n";
}

}  // namespace prune
