// prune/models/bert/dataset.hpp: a data file (JSON Lines or GLUE TSV, <prune/data/>) as the
// labelled token sequences the reference BERT trains and evaluates on. Text rows go
// through the model directory's vocab.txt (BERT's tokenizer, truncated to
// max_position_embeddings); token-id rows are checked against the model. Every error
// names the file and line.
#pragma once

#include <prune/models/bert/batch.hpp>
#include <prune/models/bert/config.hpp>
#include <prune/models/bert/labeled_sequence.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/data/jsonl.hpp>
#include <prune/error.hpp>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace prune::bert {

/// Converts read examples into labelled sequences for `cfg`; text examples need `vocab_txt`.
/// Throws format_error when text rows come without a vocabulary, value_error (with file:line)
/// when a sequence does not fit the model (id >= vocab_size, too long, ...).
[[nodiscard]] inline std::vector<labeled_sequence> to_sequences(const data::dataset& data, const config& cfg,
                                                                const std::optional<std::filesystem::path>& vocab_txt) {
    std::optional<text::tokenizer> tok;
    if (data.form == data::example_form::text) {
        if (!vocab_txt || !std::filesystem::is_regular_file(*vocab_txt)) {
            throw format_error(data.source + ": text rows need the model's vocab.txt" +
                               (vocab_txt ? " (" + vocab_txt->string() + " not found)" : std::string()));
        }
        tok.emplace(text::tokenizer::from_file(*vocab_txt));
    }
    const auto max_length = static_cast<std::size_t>(cfg.max_position_embeddings);
    std::vector<labeled_sequence> out;
    out.reserve(data.examples.size());
    packed_batch check;
    for (const data::example& e : data.examples) {
        labeled_sequence s;
        if (tok) {
            text::encoding enc = e.text_pair ? tok->encode(e.text, *e.text_pair, max_length) : tok->encode(e.text, max_length);
            s.input_ids = std::move(enc.input_ids);
            s.token_type_ids = std::move(enc.token_type_ids);
            s.attention_mask = std::move(enc.attention_mask);
        } else {
            s.input_ids = e.input_ids;
            s.token_type_ids = e.token_type_ids;
            s.attention_mask = e.attention_mask;
        }
        s.label = e.label.value_or(0.0);
        const std::string where = data.source + ":" + std::to_string(e.line);
        check.clear();
        check.add(s.input_ids, s.token_type_ids, s.attention_mask, where);
        try {
            check.validate(cfg);
        } catch (const value_error& err) {
            std::string what = err.what();
            const auto colon = what.find(": ");
            throw value_error(where + ": " + (colon == std::string::npos ? what : what.substr(colon + 2)));
        }
        out.push_back(std::move(s));
    }
    return out;
}

/// Reads a JSON Lines data file for a model of `cfg` whose directory is `model_dir` (its
/// vocab.txt tokenizes text rows). Labels must lie in [0, num_labels).
[[nodiscard]] inline std::vector<labeled_sequence> load_sequences(const std::filesystem::path& path, const config& cfg,
                                                                  const std::filesystem::path& model_dir) {
    data::data_options options;
    options.num_labels = static_cast<std::size_t>(cfg.num_labels);
    options.vocab_size = static_cast<std::size_t>(cfg.vocab_size);
    const data::dataset data = data::read_jsonl(path, options);
    const auto dir = std::filesystem::is_directory(model_dir) ? model_dir : model_dir.parent_path();
    return to_sequences(data, cfg, dir / "vocab.txt");
}

}  // namespace prune::bert
