// prune/data/jsonl.hpp: data files in JSON Lines, the CLI contract's format (docs/formats.md).
//
// One example per line, either tokenized,
//   {"input_ids": [101, 7592, 102], "token_type_ids": [0, 0, 0], "attention_mask": [1, 1, 1], "label": 1}
// (token_type_ids and attention_mask optional), or text for a tokenizer,
//   {"text": "a sentence", "text_pair": "another", "label": 0}
// (text_pair optional). The label is a class index in [0, num_labels), or any finite
// number when num_labels == 1 (regression); with `label_names` given, a string label is
// mapped to its index. Other keys are ignored. Blank lines are skipped; a UTF-8 BOM and
// CRLF line ends are accepted. All lines of a file must have the same form.
//
// Every error is a `prune::format_error` (or io_error when the file cannot be read)
// naming the file, the 1-based line number and what was expected. An empty file (no
// example) is an error.
#pragma once

#include <prune/error.hpp>
#include <prune/io/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prune::data {

/// Which form an example (or a file) has.
enum class example_form {
    token_ids,  ///< input_ids (+ token_type_ids, attention_mask)
    text,       ///< text (+ text_pair) for a tokenizer
};

/// One example of a data file.
struct example {
    example_form form = example_form::token_ids;  ///< which fields below are filled
    std::vector<std::int32_t> input_ids;           ///< token ids (token_ids form)
    std::vector<std::int32_t> token_type_ids;      ///< segment ids, empty when absent (= all 0)
    std::vector<std::int32_t> attention_mask;      ///< 0/1, empty when absent (= all 1)
    std::string text;                              ///< the first text (text form)
    std::optional<std::string> text_pair;          ///< the second text, when present
    std::optional<double> label;                   ///< class index or regression target; empty when unlabeled
    std::size_t line = 0;                          ///< 1-based line (or row) in its file

    /// The label as a class index (PRUNE_ASSERTs a label is present).
    [[nodiscard]] int label_index() const noexcept {
        PRUNE_ASSERT(label.has_value());
        return static_cast<int>(*label);
    }
};

/// All examples of a file, in file order.
struct dataset {
    std::vector<example> examples;                   ///< at least one
    example_form form = example_form::token_ids;     ///< the form every example has
    std::string source;                              ///< the file, for messages
};

/// How to read labels and check ids.
struct data_options {
    std::size_t num_labels = 2;                 ///< 1 = regression (a float label); >= 2 = class indices
    bool require_label = true;                  ///< false to accept unlabeled examples (prediction)
    std::vector<std::string> label_names;       ///< when given, string labels map to their index here
    std::optional<std::size_t> vocab_size;      ///< when given, every input id must be below it
};

namespace detail {

/// The label of a value (number or, with label_names, a string); format_error naming where.
inline double read_label(const io::json& value, const data_options& options, const std::string& where) {
    if (value.is_string() && !options.label_names.empty()) {
        const std::string name = value.get<std::string>();
        for (std::size_t i = 0; i < options.label_names.size(); ++i) {
            if (options.label_names[i] != name) {
                continue;
            }
            if (options.num_labels == 1 || i >= options.num_labels) {
                // more names than classes, or names for a regression task: the options disagree
                throw format_error(where + ": label '" + name + "' is name " + std::to_string(i) +
                                   " of the label names, not a class index in [0, " +
                                   std::to_string(options.num_labels) + ")" +
                                   (options.num_labels == 1 ? " (num_labels is 1, regression: expected a number)"
                                                            : ""));
            }
            return static_cast<double>(i);
        }
        std::string known;
        for (const auto& n : options.label_names) {
            known += (known.empty() ? "" : ", ") + n;
        }
        throw format_error(where + ": label '" + name + "' is not one of the label names (" + known + ")");
    }
    if (!value.is_number()) {
        throw format_error(where + ": label is " + io::describe_json(value) +
                           (options.num_labels == 1 ? std::string(" (expected a number: num_labels is 1, regression)")
                                                    : " (expected a class index in [0, " +
                                                          std::to_string(options.num_labels) + "))"));
    }
    const double y = value.get<double>();
    if (options.num_labels == 1) {
        if (!std::isfinite(y)) {
            throw format_error(where + ": label " + io::describe_json(value) + " is not finite");
        }
        return y;
    }
    if (y != std::floor(y) || y < 0 || y >= static_cast<double>(options.num_labels)) {
        throw format_error(where + ": label " + io::describe_json(value) + " is not a class index in [0, " +
                           std::to_string(options.num_labels) + ")");
    }
    return y;
}

/// A label given as text (TSV): parsed as a number, or mapped through label_names.
inline double read_label_text(std::string_view text, const data_options& options, const std::string& where) {
    if (!options.label_names.empty()) {
        return read_label(io::json(std::string(text)), options, where);
    }
    const std::string s(text);
    // the text must be exactly one JSON number ("2", "3.800", "1e-3"; not "nan", " 2", "0x1")
    const io::json number = io::json::parse(s, nullptr, /*allow_exceptions=*/false);
    if (!number.is_number() || s.find_first_of(" \t\r\n") != std::string::npos) {
        throw format_error(where + ": label '" + s + "' is not a number" +
                           (options.num_labels == 1 ? std::string(" (regression)")
                                                    : " (expected a class index in [0, " +
                                                          std::to_string(options.num_labels) +
                                                          "), or give label names)"));
    }
    return read_label(number, options, where);
}

/// A text field, refused with format_error when it holds a NUL byte: the tokenizers and the
/// C APIs behind them would drop everything after it silently.
[[nodiscard]] inline std::string read_text(std::string_view text, const std::string& where, const char* field) {
    const std::size_t nul = text.find('\0');
    if (nul != std::string_view::npos) {
        throw format_error(where + ": " + field + " holds a NUL byte at byte " + std::to_string(nul) +
                           " (expected text without NUL bytes)");
    }
    return std::string(text);
}

/// An array of ids within [0, limit); format_error naming where and the field.
inline std::vector<std::int32_t> read_ids(const io::json& value, const std::string& where, const char* field,
                                          std::int64_t limit) {
    if (!value.is_array()) {
        throw format_error(where + ": " + field + " is " + io::describe_json(value) +
                           " (expected an array of integers)");
    }
    std::vector<std::int32_t> ids;
    ids.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        const io::json& v = value[i];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() >= limit ||
            (v.is_number_unsigned() && v.get<std::uint64_t>() >= static_cast<std::uint64_t>(limit))) {
            throw format_error(where + ": " + field + "[" + std::to_string(i) + "] is " + io::describe_json(v) +
                               " (expected an integer in [0, " + std::to_string(limit) + "))");
        }
        ids.push_back(static_cast<std::int32_t>(v.get<std::int64_t>()));
    }
    return ids;
}

}  // namespace detail

/// Parses one JSON line into an example; format_error "<where>:<line>: ..." on any problem.
[[nodiscard]] inline example parse_jsonl_line(std::string_view line, const std::string& where, std::size_t line_number,
                                              const data_options& options = {}) {
    const std::string at = "prune::data: " + where + ":" + std::to_string(line_number);
    io::json row;
    try {
        row = io::parse_json(line, "line");
    } catch (const format_error& e) {
        // "prune::io: line is not valid JSON: ..." / "prune::io: line has the key ..." -> "<at>: the line is ..."
        std::string what = e.what();
        const std::string prefix = "prune::io: line ";
        if (what.starts_with(prefix)) {
            what = what.substr(prefix.size());
        }
        throw format_error(at + ": the line " + what);
    }
    if (!row.is_object()) {
        throw format_error(at + ": the line is " + io::describe_json(row) +
                           R"( (expected an object with "input_ids" or "text", and "label"))");
    }
    example ex;
    ex.line = line_number;
    if (row.contains("input_ids")) {
        ex.form = example_form::token_ids;
        const std::int64_t vocab = options.vocab_size
                                       ? static_cast<std::int64_t>(std::min<std::size_t>(
                                             *options.vocab_size, std::numeric_limits<std::int32_t>::max()))
                                       : std::numeric_limits<std::int32_t>::max();
        ex.input_ids = detail::read_ids(row["input_ids"], at, "input_ids", vocab);
        if (ex.input_ids.empty()) {
            throw format_error(at + ": input_ids is empty (expected at least one token)");
        }
        if (row.contains("token_type_ids")) {
            ex.token_type_ids = detail::read_ids(row["token_type_ids"], at, "token_type_ids",
                                                 std::numeric_limits<std::int32_t>::max());
            if (ex.token_type_ids.size() != ex.input_ids.size()) {
                throw format_error(at + ": token_type_ids has " + std::to_string(ex.token_type_ids.size()) +
                                   " entries (expected " + std::to_string(ex.input_ids.size()) + ", as input_ids)");
            }
        }
        if (row.contains("attention_mask")) {
            ex.attention_mask = detail::read_ids(row["attention_mask"], at, "attention_mask", 2);
            if (ex.attention_mask.size() != ex.input_ids.size()) {
                throw format_error(at + ": attention_mask has " + std::to_string(ex.attention_mask.size()) +
                                   " entries (expected " + std::to_string(ex.input_ids.size()) + ", as input_ids)");
            }
        }
    } else if (row.contains("text")) {
        ex.form = example_form::text;
        if (!row["text"].is_string()) {
            throw format_error(at + ": text is " + io::describe_json(row["text"]) + " (expected a string)");
        }
        ex.text = detail::read_text(row["text"].get_ref<const std::string&>(), at, "text");
        if (row.contains("text_pair") && !row["text_pair"].is_null()) {
            if (!row["text_pair"].is_string()) {
                throw format_error(at + ": text_pair is " + io::describe_json(row["text_pair"]) +
                                   " (expected a string)");
            }
            ex.text_pair = detail::read_text(row["text_pair"].get_ref<const std::string&>(), at, "text_pair");
        }
    } else {
        throw format_error(at + R"(: no "input_ids" and no "text" (expected one of them))");
    }
    if (row.contains("label") && !row["label"].is_null()) {
        ex.label = detail::read_label(row["label"], options, at);
    } else if (options.require_label) {
        throw format_error(at + R"(: no "label" (expected )" +
                           (options.num_labels == 1 ? std::string("a number")
                                                    : "a class index in [0, " + std::to_string(options.num_labels) +
                                                          ")") +
                           ")");
    }
    return ex;
}

namespace detail {

/// An empty dataset from `where`; value_error when the options ask for no label at all.
[[nodiscard]] inline dataset start_dataset(const std::string& where, const data_options& options) {
    if (options.num_labels == 0) {
        throw value_error("prune::data: num_labels is 0 (expected 1 for regression or >= 2 classes)");
    }
    dataset data;
    data.source = where;
    return data;
}

/// Adds line `line_number` of a JSON Lines text to `data`: blank lines are skipped, a UTF-8 byte
/// order mark before line 1 and a '\r' before the line end are dropped; format_error when the
/// line's form (text or input_ids) differs from the first example's.
inline void add_jsonl_line(dataset& data, std::string_view line, std::size_t line_number, const data_options& options) {
    if (line_number == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;
    const std::string& where = data.source;
    example ex = parse_jsonl_line(line, where, line_number, options);
    if (data.examples.empty()) {
        data.form = ex.form;
    } else if (ex.form != data.form) {
        throw format_error("prune::data: " + where + ":" + std::to_string(line_number) + ": a " +
                           (ex.form == example_form::text ? "text" : "input_ids") +
                           " example in a file whose first example (line " +
                           std::to_string(data.examples.front().line) + ") is " +
                           (data.form == example_form::text ? "text" : "input_ids") + " (expected one form per file)");
    }
    data.examples.push_back(std::move(ex));
}

/// `data`, or format_error when it has no example.
[[nodiscard]] inline dataset require_examples(dataset&& data) {
    if (data.examples.empty()) {
        throw format_error("prune::data: " + data.source + " has no examples (expected one JSON object per line)");
    }
    return std::move(data);
}

}  // namespace detail

/// Parses a whole JSON Lines text; `where` names it (the file) in messages.
[[nodiscard]] inline dataset parse_jsonl(std::string_view text, const std::string& where,
                                         const data_options& options = {}) {
    dataset data = detail::start_dataset(where, options);
    for (std::size_t line_number = 1; !text.empty(); ++line_number) {
        const std::size_t end = text.find('\n');
        detail::add_jsonl_line(data, text.substr(0, end), line_number, options);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    }
    return detail::require_examples(std::move(data));
}

/// Reads a JSON Lines data file line by line (io::for_each_line: a line longer than
/// io::max_line_bytes is refused as soon as that much is read): io_error when unreadable,
/// format_error naming the line otherwise.
[[nodiscard]] inline dataset read_jsonl(const std::filesystem::path& path, const data_options& options = {}) {
    dataset data = detail::start_dataset("'" + path.string() + "'", options);
    io::for_each_line(path, [&](std::string_view line, std::size_t number) {
        detail::add_jsonl_line(data, line, number, options);
    });
    return detail::require_examples(std::move(data));
}

}  // namespace prune::data
