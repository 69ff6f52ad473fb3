// prune/models/bert/labeled_sequence.hpp: one labelled example as the BERT loops take it (token
// ids, optional token types and attention mask, a class or a regression target). Standard
// library only: reading a data file (models/bert/dataset.hpp) does not compile the training pass.
#pragma once

#include <cstdint>
#include <vector>

namespace prune::bert {

/// One labelled sequence (attention_mask and token_type_ids may be empty: all 1 / all 0).
struct labeled_sequence {
    std::vector<std::int32_t> input_ids;       ///< token ids
    std::vector<std::int32_t> token_type_ids;  ///< segment ids (optional)
    std::vector<std::int32_t> attention_mask;  ///< 1 = real token (optional)
    double label = 0.0;                        ///< class index, or the target when num_labels == 1
};

}  // namespace prune::bert
