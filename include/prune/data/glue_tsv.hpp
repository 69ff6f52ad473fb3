// prune/data/glue_tsv.hpp: GLUE-style tab-separated data files.
//
// GLUE's TSV files have no quoting: fields are split on tabs, one row per line. A file
// has a header row naming its columns (SST-2: "sentence\tlabel"; MRPC: "Quality\t#1 ID\t
// #2 ID\t#1 String\t#2 String"; ...), except CoLA's train/dev files, which have none; the
// caller says which columns hold the text, the optional text pair and the label, by
// header name, or by 0-based index when `header` is false. Labels are numbers (class
// indices, or a score for regression when num_labels == 1) or, with `label_names`, names
// mapped to their index (MNLI: entailment, neutral, contradiction).
//
// glue_task_named("MRPC") gives the columns, labels and main metric of each of the nine GLUE
// tasks as their TSV files come from GLUE's download script.
//
// Examples come out in the text form of prune/data/jsonl.hpp, ready for a tokenizer.
// Every error is a `prune::format_error` naming the file, the 1-based line and what was
// expected (a missing column, a row with the wrong number of fields, a bad label).
#pragma once

#include <prune/data/jsonl.hpp>
#include <prune/error.hpp>
#include <prune/io/json.hpp>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prune::data {

/// Which columns of a TSV file to read, and how.
struct tsv_options {
    std::string text_column;                     ///< header name (or index when header is false) of the text
    std::optional<std::string> text_pair_column; ///< the second text's column, when the task has pairs
    std::optional<std::string> label_column;     ///< the label's column; absent for unlabeled (test) files
    bool header = true;                          ///< false: no header row; columns are 0-based indices
    data_options labels;                         ///< num_labels, label_names, require_label
};

namespace detail {

/// Splits a line on tabs (no quoting, as GLUE writes them).
inline std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> fields;
    std::size_t start = 0;
    for (;;) {
        const std::size_t tab = line.find('\t', start);
        fields.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
        if (tab == std::string_view::npos) {
            return fields;
        }
        start = tab + 1;
    }
}

/// The index of a column given by name (with a header) or by 0-based index (without).
inline std::size_t find_column(const std::string& column, const std::vector<std::string_view>& header_fields,
                               bool header, std::size_t width, const std::string& where, const char* role) {
    if (header) {
        for (std::size_t i = 0; i < header_fields.size(); ++i) {
            if (header_fields[i] == column) {
                return i;
            }
        }
        std::string names;
        for (const auto& f : header_fields) {
            names += (names.empty() ? "'" : ", '") + std::string(f) + "'";
        }
        throw format_error("prune::data: " + where + ":1: no " + role + " column '" + column +
                           "' in the header (columns: " + names + ")");
    }
    std::size_t index = 0;
    bool digits = !column.empty() && column.size() < 6;
    for (char c : column) {
        digits = digits && c >= '0' && c <= '9';
        index = index * 10 + static_cast<std::size_t>(c - '0');
    }
    if (!digits) {
        throw value_error("prune::data: " + where + ": " + role + " column '" + column +
                          "' must be a 0-based index when the file has no header");
    }
    if (index >= width) {
        throw format_error("prune::data: " + where + ":1: " + role + " column " + column + " does not exist (rows have " +
                           std::to_string(width) + " fields)");
    }
    return index;
}

}  // namespace detail

/// Parses GLUE-style TSV text; `where` names it (the file) in messages.
[[nodiscard]] inline dataset parse_glue_tsv(std::string_view text, const std::string& where,
                                            const tsv_options& options) {
    if (options.labels.num_labels == 0) {
        throw value_error("prune::data: num_labels is 0 (expected 1 for regression or >= 2 classes)");
    }
    if (text.starts_with("\xEF\xBB\xBF")) {
        text.remove_prefix(3);
    }
    std::vector<std::pair<std::size_t, std::string_view>> lines;  // (line number, content), blank lines skipped
    std::size_t number = 0;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        ++number;
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if (!line.empty()) {
            lines.emplace_back(number, line);
        }
    }
    if (lines.empty() || (options.header && lines.size() == 1)) {
        throw format_error("prune::data: " + where + " has no examples" +
                           (options.header ? std::string(" (expected a header row and at least one row)") : ""));
    }
    const std::vector<std::string_view> first = detail::split_tabs(lines.front().second);
    const std::size_t width = first.size();
    const std::size_t text_index = detail::find_column(options.text_column, first, options.header, width, where, "text");
    std::optional<std::size_t> pair_index;
    if (options.text_pair_column) {
        pair_index = detail::find_column(*options.text_pair_column, first, options.header, width, where, "text_pair");
    }
    std::optional<std::size_t> label_index;
    if (options.label_column) {
        label_index = detail::find_column(*options.label_column, first, options.header, width, where, "label");
    } else if (options.labels.require_label) {
        throw value_error("prune::data: " + where + ": no label column given (expected one, or require_label = false)");
    }
    dataset data;
    data.form = example_form::text;
    data.source = where;
    for (std::size_t r = options.header ? 1 : 0; r < lines.size(); ++r) {
        const auto& [line_number, line] = lines[r];
        const std::string at = "prune::data: " + where + ":" + std::to_string(line_number);
        const std::vector<std::string_view> fields = detail::split_tabs(line);
        if (fields.size() != width) {
            throw format_error(at + ": the row has " + std::to_string(fields.size()) + " tab-separated fields (expected " +
                               std::to_string(width) + (options.header ? ", as the header)" : ", as the first row)"));
        }
        example ex;
        ex.form = example_form::text;
        ex.line = line_number;
        ex.text = detail::read_text(fields[text_index], at, "text");
        if (pair_index) {
            ex.text_pair = detail::read_text(fields[*pair_index], at, "text_pair");
        }
        if (label_index) {
            const std::string_view label = fields[*label_index];
            if (!label.empty() || options.labels.require_label) {
                ex.label = detail::read_label_text(label, options.labels, at);
            }
        }
        data.examples.push_back(std::move(ex));
    }
    return data;
}

/// Reads a GLUE-style TSV file: io_error when unreadable or when a line is longer than
/// io::max_line_bytes (refused as soon as that much is read), format_error naming the line otherwise.
[[nodiscard]] inline dataset read_glue_tsv(const std::filesystem::path& path, const tsv_options& options) {
    std::string text;
    io::for_each_line(path, [&](std::string_view line, std::size_t) {
        text.append(line);
        text += '\n';
    });
    return parse_glue_tsv(text, "'" + path.string() + "'", options);
}

/// A GLUE task: how to read its TSV files and the metric it is judged by.
struct glue_task {
    std::string name;     ///< as GLUE spells it: CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI
    tsv_options columns;  ///< columns and labels (labels.num_labels: 1 for STS-B's regression)
    std::string metric;   ///< main metric (prune/models/bert/metrics.hpp names): mcc, accuracy, f1, pearson
};

/// The GLUE task of that name (case-insensitive, "-" optional: "sst2", "STS-B"), or nullopt.
/// Columns as GLUE's train.tsv / dev.tsv files have them (MNLI: dev_matched.tsv).
[[nodiscard]] inline std::optional<glue_task> glue_task_named(std::string_view name) {
    std::string key;
    for (char c : name)
        if (c != '-' && c != '_') key += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    auto make = [](std::string n, std::string text, std::optional<std::string> pair, std::string label,
                   std::size_t labels, std::vector<std::string> names, std::string metric, bool header = true) {
        glue_task t;
        t.name = std::move(n);
        t.columns.text_column = std::move(text);
        t.columns.text_pair_column = std::move(pair);
        t.columns.label_column = std::move(label);
        t.columns.header = header;
        t.columns.labels.num_labels = labels;
        t.columns.labels.label_names = std::move(names);
        t.metric = std::move(metric);
        return t;
    };
    const std::vector<std::string> nli = {"entailment", "not_entailment"};
    if (key == "cola") return make("CoLA", "3", std::nullopt, "1", 2, {}, "mcc", false);
    if (key == "sst2") return make("SST-2", "sentence", std::nullopt, "label", 2, {}, "accuracy");
    if (key == "mrpc") return make("MRPC", "#1 String", "#2 String", "Quality", 2, {}, "f1");
    if (key == "qqp") return make("QQP", "question1", "question2", "is_duplicate", 2, {}, "f1");
    if (key == "stsb") return make("STS-B", "sentence1", "sentence2", "score", 1, {}, "pearson");
    if (key == "mnli")
        return make("MNLI", "sentence1", "sentence2", "gold_label", 3, {"contradiction", "entailment", "neutral"},
                    "accuracy");
    if (key == "qnli") return make("QNLI", "question", "sentence", "label", 2, nli, "accuracy");
    if (key == "rte") return make("RTE", "sentence1", "sentence2", "label", 2, nli, "accuracy");
    if (key == "wnli") return make("WNLI", "sentence1", "sentence2", "label", 2, {}, "accuracy");
    return std::nullopt;
}

}  // namespace prune::data
