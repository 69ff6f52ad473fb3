// libFuzzer target: JSON Lines data files. The first byte picks the options (num_labels
// 1, 2 or 3; a vocabulary limit; labels required or not); the rest is the file.
// Property: a parsed dataset is non-empty, of one form, with lines increasing and every
// example consistent with the options.
#include <prune/data/jsonl.hpp>

#include <cmath>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::data;
    if (size == 0) {
        return 0;
    }
    data_options options;
    options.num_labels = 1 + data[0] % 3;
    if (data[0] & 4) {
        options.vocab_size = 1000;
    }
    options.require_label = (data[0] & 8) == 0;
    if (data[0] & 16) {
        options.label_names = {"no", "yes", "maybe"};
    }
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    try {
        const dataset set = parse_jsonl(text, "fuzz", options);
        std::size_t previous = 0;
        if (set.examples.empty()) {
            std::abort();
        }
        for (const example& ex : set.examples) {
            if (ex.form != set.form || ex.line <= previous || (options.require_label && !ex.label)) {
                std::abort();
            }
            previous = ex.line;
            if (ex.label && (!std::isfinite(*ex.label) ||
                             (options.num_labels > 1 && (*ex.label < 0 || *ex.label >= double(options.num_labels))))) {
                std::abort();
            }
            if (ex.form == example_form::token_ids) {
                if (ex.input_ids.empty() || (!ex.token_type_ids.empty() && ex.token_type_ids.size() != ex.input_ids.size()) ||
                    (!ex.attention_mask.empty() && ex.attention_mask.size() != ex.input_ids.size())) {
                    std::abort();
                }
                for (std::int32_t id : ex.input_ids) {
                    if (id < 0 || (options.vocab_size && static_cast<std::size_t>(id) >= *options.vocab_size)) {
                        std::abort();
                    }
                }
            }
        }
    } catch (const prune::error&) {
    }
    return 0;
}
