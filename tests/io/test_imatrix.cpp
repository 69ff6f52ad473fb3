// Tests for prune/io/imatrix.hpp against files written independently by
// tests/io/gguf_reference.mjs (llama-imatrix's GGUF layout through @huggingface/gguf's
// metadata serializer, and its legacy binary layout as save_imatrix_legacy writes it, from
// the same statistics): values bit for bit, Wanda's column norms from both, prune's own
// files parsed by @huggingface/gguf and byte-identical to the reference's, and malformed
// files with their errors.
#include <prune/io/imatrix.hpp>

#include "gguf_support.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

using namespace prune;
using namespace prune::io;

using prune_test::byte_builder;
using prune_test::temp_dir;

namespace {

/// The reference's imatrix files, generated once per process.
const temp_dir& reference_imatrix() {
    static const temp_dir dir;
    static const bool written = [] {
        prune_test::run_gguf_reference("write-imatrix", dir.path().string());
        return true;
    }();
    (void)written;
    return dir;
}

}  // namespace

TEST_CASE("llama-imatrix's GGUF layout reads back exactly, and prune writes the same bytes") {
    const temp_dir& dir = reference_imatrix();
    const nlohmann::json expected = prune_test::read_json(dir / "imatrix.json");
    const imatrix m = read_imatrix(dir / "imatrix.gguf");
    CHECK_FALSE(m.legacy);
    CHECK(m.datasets == expected["datasets"].get<std::vector<std::string>>());
    CHECK(m.chunk_count == expected["chunk_count"].get<std::uint32_t>());
    CHECK(m.chunk_size == expected["chunk_size"].get<std::uint32_t>());
    REQUIRE(m.entries.size() == expected["entries"].size());
    for (const auto& e : expected["entries"]) {
        const std::string name = e["name"].get<std::string>();
        INFO("entry " << name);
        const imatrix_entry* ours = m.find(name);
        REQUIRE(ours != nullptr);
        CHECK(ours->columns == e["columns"].get<std::size_t>());
        CHECK(ours->matrices == e["counts"].size());
        CHECK(ours->sum2 == e["sum2"].get<std::vector<float>>());
        CHECK(ours->counts == e["counts"].get<std::vector<double>>());
        if (e.contains("with_sum")) {
            CHECK(ours->sum == e["sum"].get<std::vector<float>>());
        } else {
            CHECK(ours->sum.empty());
        }
        // Wanda's ||X_j||_2 = sqrt(sum over tokens of x_j^2), per expert
        for (std::size_t k = 0; k < ours->matrices; ++k) {
            const std::vector<float> norms = m.column_norms(name, k);
            for (std::size_t j = 0; j < ours->columns; ++j) {
                CHECK(norms[j] == static_cast<float>(std::sqrt(static_cast<double>(ours->sum2[k * ours->columns + j]))));
            }
        }
    }
    CHECK_THROWS_SAYS(m.column_norms("blk.9.attn_q.weight"), format_error, "no entry for 'blk.9.attn_q.weight'");
    CHECK_THROWS_SAYS(m.column_norms("output.weight", 1), format_error, "has 1 matrices (asked for matrix 1)");
    // the same statistics written by prune give the reference's file byte for byte
    const std::string reference = prune_test::read_bytes(dir / "imatrix.gguf");
    const std::vector<std::byte> ours = imatrix_writer(m).to_bytes();
    CHECK(std::string(reinterpret_cast<const char*>(ours.data()), ours.size()) == reference);
}

TEST_CASE("the legacy binary layout reads back exactly; its norms are the GGUF ones over sqrt(tokens)") {
    const temp_dir& dir = reference_imatrix();
    const nlohmann::json expected = prune_test::read_json(dir / "imatrix.json");
    const imatrix legacy = read_imatrix(dir / "imatrix.dat");
    const imatrix gguf = read_imatrix(dir / "imatrix.gguf");
    CHECK(legacy.legacy);
    CHECK(legacy.chunk_count == expected["chunk_count"].get<std::uint32_t>());
    CHECK(legacy.datasets == std::vector<std::string>{expected["datasets"][0].get<std::string>()});
    REQUIRE(legacy.entries.size() == gguf.entries.size());
    for (const auto& [name, e] : expected["legacy"].items()) {
        INFO("entry " << name);
        const imatrix_entry* ours = legacy.find(name);
        REQUIRE(ours != nullptr);
        CHECK(ours->sum2 == e["values"].get<std::vector<float>>());
        CHECK(ours->counts == std::vector<double>{e["ncall"].get<double>()});
        const imatrix_entry& dense = *gguf.find(name);
        if (dense.matrices != 1) {
            continue;  // the legacy layout flattens experts into one row of values
        }
        const std::vector<float> exact = gguf.column_norms(name);
        const std::vector<float> scaled = legacy.column_norms(name);
        for (std::size_t j = 0; j < exact.size(); ++j) {
            CHECK(static_cast<double>(scaled[j]) * std::sqrt(dense.counts[0]) ==
                  Approx(static_cast<double>(exact[j])).epsilon(1e-6));
        }
    }
    CHECK_THROWS_SAYS(write_imatrix(dir / "x.gguf", legacy), value_error, "no token counts");
}

TEST_CASE("prune's statistics written as an imatrix: sqrt of the sums is ||X_j||_2, and @huggingface/gguf reads it") {
    // calibration activations x (tokens x columns); Wanda's norm from them in double precision
    std::mt19937 rng(3);
    std::normal_distribution<double> normal(0.0, 1.5);
    const std::size_t tokens = 300;
    const std::size_t columns = 12;
    std::vector<double> sum2(columns, 0.0);
    std::vector<double> direct(columns, 0.0);
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t j = 0; j < columns; ++j) {
            const double x = normal(rng);
            sum2[j] += x * x;
            direct[j] += x * x;
        }
    }
    imatrix m;
    m.datasets = {"calib.jsonl"};
    m.chunk_count = 3;
    m.chunk_size = 100;
    m.entries.push_back(imatrix_entry_from("blk.1.ffn_down.weight", sum2, tokens));
    m.entries.push_back(imatrix_entry_from("blk.0.attn_q.weight", std::vector<double>(4, 2.0), tokens));
    imatrix_entry experts;
    experts.name = "blk.0.ffn_up_exps.weight";
    experts.columns = 2;
    experts.matrices = 3;
    experts.sum2 = {1, 2, 3, 4, 5, 6};
    experts.counts = {10, 0, 7};
    m.entries.push_back(experts);
    temp_dir dir;
    write_imatrix(dir / "ours.gguf", m);
    const imatrix back = read_imatrix(dir / "ours.gguf");
    REQUIRE(back.entries.size() == 3);
    CHECK(back.entries[0].name == "blk.0.attn_q.weight");  // sorted, as llama-imatrix writes
    const std::vector<float> norms = back.column_norms("blk.1.ffn_down.weight");
    for (std::size_t j = 0; j < columns; ++j) {
        CHECK(static_cast<double>(norms[j]) == Approx(std::sqrt(direct[j])).epsilon(1e-6));
    }
    CHECK(back.find("blk.0.ffn_up_exps.weight")->counts == std::vector<double>{10, 0, 7});
    CHECK(back.column_norms("blk.0.ffn_up_exps.weight", 2) == std::vector<float>{std::sqrt(5.0f), std::sqrt(6.0f)});

    const nlohmann::json seen = prune_test::js_read_gguf(dir / "ours.gguf");
    std::map<std::string, nlohmann::json> meta;
    for (const auto& e : seen["metadata"]) {
        meta[e["key"].get<std::string>()] = e;
    }
    CHECK(meta["general.type"]["value"] == "imatrix");
    CHECK(meta["imatrix.datasets"]["type"] == 9);
    CHECK(meta["imatrix.datasets"]["sub_type"] == 8);
    CHECK(meta["imatrix.datasets"]["value"] == nlohmann::json::array({"calib.jsonl"}));
    CHECK(meta["imatrix.chunk_count"]["type"] == 4);  // u32, as llama-quantize reads it
    CHECK(meta["imatrix.chunk_size"]["value"] == 100);
    std::vector<std::string> names;
    for (const auto& t : seen["tensors"]) {
        names.push_back(t["name"].get<std::string>());
        CHECK(t["type"] == 0);
    }
    CHECK(names == std::vector<std::string>{"blk.0.attn_q.weight.in_sum2", "blk.0.attn_q.weight.counts",
                                            "blk.0.ffn_up_exps.weight.in_sum2", "blk.0.ffn_up_exps.weight.counts",
                                            "blk.1.ffn_down.weight.in_sum2", "blk.1.ffn_down.weight.counts"});
    CHECK(seen["tensors"][2]["ne"] == nlohmann::json::array({2, 3}));  // [columns, experts]
    CHECK(seen["tensors"][3]["ne"] == nlohmann::json::array({1, 3}));  // [1, experts]
    CHECK_THROWS_SAYS(imatrix_entry_from("w", std::vector<double>{1.0, -2.0}, 5), value_error,
                      "column 1 has sum -2 (expected a finite sum of squares >= 0)");
}

TEST_CASE("malformed importance matrices each give their error") {
    const auto parse = [](const byte_builder& b) { return parse_imatrix_dat(b.span(), "bad.dat"); };
    const auto entry = [](byte_builder& b, std::string_view name, std::int32_t ncall, std::vector<float> values) {
        b.put(static_cast<std::int32_t>(name.size())).raw(name).put(ncall).put(static_cast<std::int32_t>(values.size()));
        for (float v : values) {
            b.put(v);
        }
    };
    byte_builder ok;
    ok.put(std::int32_t{1});
    entry(ok, "w", 2, {1.0f, 2.0f});
    REQUIRE(parse(ok).entries.size() == 1);  // no trailer at all is accepted, as llama.cpp does
    SECTION("legacy layout") {
        byte_builder zero;
        zero.put(std::int32_t{0});
        CHECK_THROWS_SAYS(parse(zero), format_error, "imatrix 'bad.dat': the entry count at byte 0 is 0 (expected at least 1)");
        byte_builder many;
        many.put(std::int32_t{2147483647});
        CHECK_THROWS_SAYS(parse(many), format_error, "entry count 2147483647 at byte 4 cannot fit in the 0 bytes left");
        byte_builder long_name;
        long_name.put(std::int32_t{1}).put(std::int32_t{1000000}).raw("abcdefghijkl");
        CHECK_THROWS_SAYS(parse(long_name), format_error, "entry 0: a name of 1000000 bytes, longer than the 12 bytes left");
        byte_builder negative;
        negative.put(std::int32_t{1});
        entry(negative, "w", -1, {1.0f});
        CHECK_THROWS_SAYS(parse(negative), format_error, "entry 'w': ncall at byte 9 is -1 (expected at least 0)");
        byte_builder huge;
        huge.put(std::int32_t{1}).put(std::int32_t{1}).raw("w").put(std::int32_t{1}).put(std::int32_t{1 << 30});
        CHECK_THROWS_SAYS(parse(huge), format_error, "entry 'w': nval 1073741824", "cannot fit", "each needs at least 4");
        byte_builder cut = ok;
        cut.bytes.resize(cut.bytes.size() - 2);
        CHECK_THROWS_SAYS(parse(cut), format_error, "entry 'w': nval 2 at byte 17 cannot fit in the 6 bytes left");
        byte_builder trailing = ok;
        trailing.put(std::int32_t{3}).put(std::int32_t{2}).raw("dsXYZ");
        CHECK_THROWS_SAYS(parse(trailing), format_error, "3 bytes after the dataset name");
        byte_builder twice;
        twice.put(std::int32_t{2});
        entry(twice, "w", 1, {1.0f});
        entry(twice, "w", 1, {1.0f});
        CHECK_THROWS_SAYS(parse(twice), format_error, "entry 'w' appears twice");
        byte_builder nan;
        nan.put(std::int32_t{1});
        entry(nan, "w", 1, {std::nanf("")});
        CHECK_THROWS_SAYS(parse(nan), format_error, "entry 'w' has nan at value 0");
    }
    SECTION("GGUF layout") {
        const auto with = [](const std::function<void(gguf_writer&)>& f) {
            gguf_writer w;
            w.set("general.type", gguf_value::string("imatrix"));
            f(w);
            const std::vector<std::byte> bytes = w.to_bytes();
            return read_imatrix(gguf_file::from_bytes(bytes, "bad.gguf"));
        };
        const std::vector<float> four = {1, 2, 3, 4};
        const std::vector<float> two = {5, 6};
        const auto f32 = [](const std::vector<float>& v) { return std::as_bytes(std::span(v)); };
        CHECK_THROWS_SAYS(with([&](gguf_writer& w) { w.add("a.weight.in_sum2", ggml_type::F32, {1, 4}, f32(four)); }),
                          format_error, "imatrix gguf 'bad.gguf': 'a.weight' has in_sum2 but no counts");
        CHECK_THROWS_SAYS(with([&](gguf_writer& w) { w.add("a.weight.counts", ggml_type::F32, {1, 1}, f32(two).first(4)); }),
                          format_error, "'a.weight' has no in_sum2");
        CHECK_THROWS_SAYS(with([&](gguf_writer& w) {
                              w.add("a.weight.in_sum2", ggml_type::F32, {1, 4}, f32(four));
                              w.add("a.weight.counts", ggml_type::F32, {2, 1}, f32(two));
                          }),
                          format_error, "'a.weight' has 2 counts for in_sum2 of ne [4, 1] (expected one per matrix, 1)");
        const std::vector<std::byte> halves(8);
        CHECK_THROWS_SAYS(with([&](gguf_writer& w) {
                              w.add("a.weight.in_sum2", ggml_type::F16, {1, 4}, halves);
                              w.add("a.weight.counts", ggml_type::F32, {1, 1}, f32(two).first(4));
                          }),
                          format_error, "tensor 'a.weight.in_sum2' is F16 (expected F32");
        const std::vector<float> negative = {1, -2, 3, 4};
        CHECK_THROWS_SAYS(with([&](gguf_writer& w) {
                              w.add("a.weight.in_sum2", ggml_type::F32, {1, 4}, f32(negative));
                              w.add("a.weight.counts", ggml_type::F32, {1, 1}, f32(two).first(4));
                          }),
                          format_error, "entry 'a.weight' has -2 at value 1");
        CHECK_THROWS_SAYS(with([&](gguf_writer& w) { w.set("imatrix.chunk_count", gguf_value::scalar(-1)); }),
                          format_error, "imatrix.chunk_count is a i32 (expected a u32)");
    }
}
