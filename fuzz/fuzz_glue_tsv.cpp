// libFuzzer target: GLUE TSV files. The first byte picks the options (header or column
// indices, a text pair or not, label names or numbers, regression or classes).
// Property: every example has a text, the pair when asked, and a label in range.
#include <prune/data/glue_tsv.hpp>

#include <cmath>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::data;
    if (size == 0) {
        return 0;
    }
    tsv_options options;
    options.header = (data[0] & 1) == 0;
    options.text_column = options.header ? "sentence1" : "0";
    if (data[0] & 2) {
        options.text_pair_column = options.header ? "sentence2" : "1";
    }
    options.label_column = options.header ? "label" : "2";
    options.labels.num_labels = (data[0] & 4) ? 1 : 3;
    if (data[0] & 8) {
        options.labels.label_names = {"entailment", "neutral", "contradiction"};
    }
    options.labels.require_label = (data[0] & 16) == 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    try {
        const dataset set = parse_glue_tsv(text, "fuzz", options);
        for (const example& ex : set.examples) {
            if (ex.text_pair.has_value() != options.text_pair_column.has_value() ||
                (options.labels.require_label && !ex.label) || (ex.label && !std::isfinite(*ex.label))) {
                std::abort();
            }
        }
    } catch (const prune::error&) {
    }
    return 0;
}
