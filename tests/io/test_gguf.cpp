// Tests for prune/io/gguf.hpp against an independent implementation, Hugging Face's npm
// package @huggingface/gguf (tests/io/gguf_reference.mjs): files it writes (its metadata
// serializer + tensor infos and data written from the specification) read back exactly,
// files prune writes are parsed by it with the same metadata, types, shapes, offsets, data
// start and bytes; round trips of every value type; and a table of malformed files, each
// with its specific error.
#include <prune/io/gguf.hpp>

#include "gguf_support.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

using namespace prune;
using namespace prune::io;

using prune_test::byte_builder;
using prune_test::hex;
using prune_test::temp_dir;

namespace {

/// The files gguf_reference.mjs writes, generated once per process.
const temp_dir& js_files() {
    static const temp_dir dir;
    static const bool written = [] {
        prune_test::run_gguf_reference("write", dir.path().string());
        return true;
    }();
    (void)written;
    return dir;
}

/// Checks one metadata value against the reference's {type, sub_type, value}.
void check_value(const gguf_value& v, const nlohmann::json& e, const std::string& key) {
    INFO("metadata " << key);
    const auto type = static_cast<gguf_value_type>(e["type"].get<std::uint32_t>());
    REQUIRE(v.type() == type);
    const auto element = e["sub_type"].is_null() ? type : static_cast<gguf_value_type>(e["sub_type"].get<std::uint32_t>());
    REQUIRE(v.element_type() == element);
    const nlohmann::json values = v.is_array() ? e["value"] : nlohmann::json::array({e["value"]});
    REQUIRE(v.size() == values.size());
    if (element == gguf_value_type::string) {
        const auto texts = v.raw_strings();
        for (std::size_t i = 0; i < values.size(); ++i) {
            CHECK(texts[i] == values[i].get<std::string>());
        }
        return;
    }
    const std::size_t size = gguf_value_size(element);
    const auto raw = v.raw_bytes();
    for (std::size_t i = 0; i < values.size(); ++i) {
        const std::byte* p = raw.data() + i * size;
        const nlohmann::json& x = values[i];
        switch (element) {
            case gguf_value_type::f32: { float f; std::memcpy(&f, p, 4); CHECK(f == x.get<float>()); break; }
            case gguf_value_type::f64: { double d; std::memcpy(&d, p, 8); CHECK(d == x.get<double>()); break; }
            case gguf_value_type::boolean: CHECK((std::to_integer<int>(*p) != 0) == x.get<bool>()); break;
            case gguf_value_type::u64: { std::uint64_t u; std::memcpy(&u, p, 8); CHECK(std::to_string(u) == x.get<std::string>()); break; }
            case gguf_value_type::i64: { std::int64_t s; std::memcpy(&s, p, 8); CHECK(std::to_string(s) == x.get<std::string>()); break; }
            default: {
                std::int64_t n = 0;
                if (element == gguf_value_type::u8) n = std::to_integer<std::uint8_t>(*p);
                if (element == gguf_value_type::i8) n = static_cast<std::int8_t>(std::to_integer<std::uint8_t>(*p));
                if (element == gguf_value_type::u16) { std::uint16_t w; std::memcpy(&w, p, 2); n = w; }
                if (element == gguf_value_type::i16) { std::int16_t w; std::memcpy(&w, p, 2); n = w; }
                if (element == gguf_value_type::u32) { std::uint32_t w; std::memcpy(&w, p, 4); n = w; }
                if (element == gguf_value_type::i32) { std::int32_t w; std::memcpy(&w, p, 4); n = w; }
                CHECK(n == x.get<std::int64_t>());
            }
        }
    }
}

/// Checks a file against a description {data_offset, metadata: [...], tensors: [...]} (both directions use it).
void check_file(const gguf_file& file, const nlohmann::json& e) {
    REQUIRE(file.metadata().size() == e["metadata"].size());
    for (std::size_t i = 0; i < file.metadata().size(); ++i) {
        CHECK(file.metadata()[i].key == e["metadata"][i]["key"].get<std::string>());
        check_value(file.metadata()[i].value, e["metadata"][i], file.metadata()[i].key);
    }
    REQUIRE(file.tensors().size() == e["tensors"].size());
    for (std::size_t i = 0; i < file.tensors().size(); ++i) {
        const gguf_tensor_info& t = file.tensors()[i];
        const nlohmann::json& x = e["tensors"][i];
        INFO("tensor " << t.name);
        CHECK(t.name == x["name"].get<std::string>());
        CHECK(static_cast<std::uint32_t>(t.type) == x["type"].get<std::uint32_t>());
        CHECK(t.ne == x["ne"].get<std::vector<std::uint64_t>>());
        CHECK(std::to_string(t.offset) == x["offset"].get<std::string>());
        if (x.contains("hex") && !x["hex"].is_null()) {
            CHECK(hex(file.bytes(t.name)) == x["hex"].get<std::string>());
        }
    }
}

/// A writer holding metadata of every value type and tensors of F32, F16, BF16 with odd sizes.
gguf_writer every_kind_writer() {
    gguf_writer w;
    w.set("general.architecture", gguf_value::string("llama"));
    w.set("general.name", gguf_value::string("pr\xc3\xbcne \xe2\x9c\x93"));
    w.set("t.u8", gguf_value::scalar<std::uint8_t>(255));
    w.set("t.i8", gguf_value::scalar<std::int8_t>(-128));
    w.set("t.u16", gguf_value::scalar<std::uint16_t>(65535));
    w.set("t.i16", gguf_value::scalar<std::int16_t>(-32768));
    w.set("t.u32", gguf_value::scalar<std::uint32_t>(4294967295u));
    w.set("t.i32", gguf_value::scalar<std::int32_t>(-2147483647 - 1));
    w.set("t.f32", gguf_value::scalar(1.0f / 3.0f));
    w.set("t.bool", gguf_value::scalar(false));
    w.set("t.u64", gguf_value::scalar<std::uint64_t>(std::numeric_limits<std::uint64_t>::max()));
    w.set("t.i64", gguf_value::scalar<std::int64_t>(std::numeric_limits<std::int64_t>::min()));
    w.set("t.f64", gguf_value::scalar(2.5e-310));  // a subnormal double
    w.set("llama.attention.head_count", gguf_value::array(std::vector<std::int32_t>{8, 0, 5}));
    w.set("t.floats", gguf_value::array(std::vector<float>{0.25f, -7.5f}));
    w.set("t.doubles", gguf_value::array(std::vector<double>{1e300, -0.5}));
    w.set("t.bools", gguf_value::array(std::vector<bool>{true, false}));
    w.set("t.i16s", gguf_value::array(std::vector<std::int16_t>{-1, 2}));
    w.set("t.u64s", gguf_value::array(std::vector<std::uint64_t>{1ull << 63}));
    w.set("tokenizer.ggml.tokens", gguf_value::strings({"<s>", "", "\xce\xb2"}));
    w.set("t.empty", gguf_value::strings({}));
    std::vector<float> f(15);
    for (std::size_t i = 0; i < f.size(); ++i) {
        f[i] = static_cast<float>(i) * 0.5f - 3.0f;
    }
    w.add("token_embd.weight", tensor_view<const float>(std::span<const float>(f), shape{3, 5}));
    std::vector<half> h(7);
    std::vector<bfloat16> b(9);
    for (std::size_t i = 0; i < 7; ++i) {
        h[i] = to_half(static_cast<float>(i) - 2.25f);
    }
    for (std::size_t i = 0; i < 9; ++i) {
        b[i] = to_bfloat16(static_cast<float>(i) * 1.5f);
    }
    w.add("blk.0.attn_q.weight", tensor_view<const half>(std::span<const half>(h), shape{7}));
    w.add("blk.0.ffn_up.weight", tensor_view<const bfloat16>(std::span<const bfloat16>(b), shape{3, 3}));
    w.add("scalar", tensor_view<const float>(std::span<const float>(f).first(1), shape{}));
    w.add("cube", tensor_view<const float>(std::span<const float>(f).first(8), shape{2, 2, 2}));
    return w;
}

}  // namespace

TEST_CASE("files written with @huggingface/gguf read back exactly") {
    const temp_dir& dir = js_files();
    const nlohmann::json expected = prune_test::read_json(dir / "expected.json");
    SECTION("default alignment: every value type, F32/F16/BF16/I32/Q8_0 tensors, a 3-d and an empty one") {
        const gguf_file file = gguf_file::open(dir / "default.gguf");
        CHECK(file.version() == 3);
        CHECK(file.alignment() == 32);
        CHECK(file.data_offset() == expected["default"]["data_offset"].get<std::size_t>());
        check_file(file, expected["default"]);
        CHECK(file.get("general.architecture").as_string() == "llama");
        CHECK(file.get("llama.attention.head_count").as_integers() == std::vector<std::int64_t>{4, 2, 3});
        CHECK(file.get("test.u64").as<std::uint64_t>() == std::numeric_limits<std::uint64_t>::max());
        const auto embd = file.view<float>("token_embd.weight");
        CHECK(embd.extents() == shape{3, 5});  // GGUF's ne [5, 3], row-major
        const auto bytes = file.bytes("token_embd.weight");
        CHECK(static_cast<const void*>(embd.data().data()) == static_cast<const void*>(bytes.data()));
        CHECK(file.view<half>("blk.0.attn_q.weight").extents() == shape{5, 5});
        CHECK(file.view<bfloat16>("blk.0.ffn_up.weight").extents() == shape{7, 5});
        CHECK(file.view<float>("cube").extents() == shape{4, 3, 2});
        CHECK(file.view<float>("nothing").size() == 0);
        const std::vector<float> ids = file.to_float("ids");
        std::vector<std::int32_t> raw(3);
        std::memcpy(raw.data(), file.bytes("ids").data(), 12);
        CHECK(ids == std::vector<float>{static_cast<float>(raw[0]), static_cast<float>(raw[1]), static_cast<float>(raw[2])});
        // F16 and BF16 convert exactly to float
        const auto q = file.view<half>("blk.0.attn_q.weight");
        const std::vector<float> qf = file.to_float("blk.0.attn_q.weight");
        for (std::size_t i = 0; i < qf.size(); ++i) {
            CHECK(std::bit_cast<std::uint32_t>(qf[i]) == std::bit_cast<std::uint32_t>(to_float(q.data()[i])));
        }
    }
    SECTION("a quantized tensor is listed but its values are refused, naming it and its type") {
        const gguf_file file = gguf_file::open(dir / "default.gguf");
        const gguf_tensor_info& q8 = file.info("blk.0.q8");
        CHECK(q8.type == ggml_type::Q8_0);
        CHECK(q8.byte_size == 2 * 2 * 34);
        CHECK(file.bytes("blk.0.q8").size() == 136);
        CHECK_THROWS_SAYS(file.to_float("blk.0.q8"), dtype_error, "'blk.0.q8'", "is Q8_0, a quantized type");
        CHECK_THROWS_SAYS(file.view<float>("blk.0.q8"), dtype_error, "'blk.0.q8'", "Q8_0");
        CHECK_THROWS_SAYS(file.view<half>("token_embd.weight"), dtype_error, "is F32, not F16");
    }
    SECTION("general.alignment 64") {
        const gguf_file file = gguf_file::open(dir / "align64.gguf");
        CHECK(file.alignment() == 64);
        CHECK(file.data_offset() % 64 == 0);
        CHECK(file.data_offset() == expected["align64"]["data_offset"].get<std::size_t>());
        check_file(file, expected["align64"]);
    }
    SECTION("missing tensors and keys are named") {
        const gguf_file file = gguf_file::open(dir / "align64.gguf");
        CHECK_THROWS_SAYS(file.info("zzz"), format_error, "no tensor 'zzz'", "align64.gguf");
        CHECK_THROWS_SAYS(file.get("llama.block_count"), format_error, "no metadata key 'llama.block_count'");
        CHECK_THROWS_SAYS(file.get("general.architecture").as<std::uint32_t>(file.describe("general.architecture")),
                          format_error, "metadata 'general.architecture' is a string (expected a u32)");
    }
}

TEST_CASE("files prune writes are read by @huggingface/gguf with the same content") {
    temp_dir dir;
    for (const std::uint32_t alignment : {32u, 64u, 1u}) {
        INFO("alignment " << alignment);
        gguf_writer w = every_kind_writer();
        if (alignment != 32) {
            w.set("general.alignment", gguf_value::scalar(alignment));
        }
        const auto path = dir / ("ours-" + std::to_string(alignment) + ".gguf");
        w.write(path);
        const gguf_file ours = gguf_file::open(path);
        CHECK(ours.alignment() == alignment);
        const nlohmann::json seen = prune_test::js_read_gguf(path);
        CHECK(seen["version"] == 3);
        CHECK(seen["little_endian"] == true);
        CHECK(seen["tensor_count"] == std::to_string(w.size()));
        CHECK(seen["tensor_data_offset"] == std::to_string(ours.data_offset()));
        check_file(ours, seen);  // metadata types/values, names, ne, types, offsets, bytes
        // llama.cpp's layout: offsets packed, each tensor padded to the alignment, file ends padded
        std::size_t next = 0;
        for (const gguf_tensor_info& t : ours.tensors()) {
            CHECK(t.offset == next);
            next = prune::io::detail::pad_to(next + t.byte_size, alignment);
        }
        CHECK(ours.file_bytes().size() == ours.data_offset() + next);
        CHECK(ours.file_bytes().size() == w.to_bytes().size());
    }
}

TEST_CASE("every value type round trips through the writer and the reader") {
    const gguf_writer w = every_kind_writer();
    const gguf_file file = gguf_file::from_bytes(w.to_bytes(), "round-trip");
    REQUIRE(file.metadata().size() == w.metadata().size());
    for (std::size_t i = 0; i < w.metadata().size(); ++i) {
        CHECK(file.metadata()[i].key == w.metadata()[i].key);
        CHECK(file.metadata()[i].value == w.metadata()[i].value);
    }
    CHECK(file.get("t.i8").as<std::int8_t>() == -128);
    CHECK(file.get("t.f64").as<double>() == 2.5e-310);
    CHECK(file.get("t.f32").as_real() == static_cast<double>(1.0f / 3.0f));
    CHECK(file.get("t.bools").as_array<bool>() == std::vector<bool>{true, false});
    CHECK(file.get("tokenizer.ggml.tokens").as_strings() == std::vector<std::string>{"<s>", "", "\xce\xb2"});
    CHECK(file.get("t.u32").as_count() == 4294967295u);
    CHECK_THROWS_SAYS(file.get("t.i8").as_count("t.i8"), format_error, "t.i8 is -128 (expected a non-negative integer)");
    CHECK_THROWS_SAYS(file.get("t.u64s").as_integers("t.u64s"), format_error, "t.u64s[0] is above 2^63");
    CHECK(file.view<float>("scalar").extents() == shape{});
    CHECK(file.info("scalar").ne.empty());
}

TEST_CASE("the writer refuses bad tensors and leaves nothing behind") {
    temp_dir dir;
    gguf_writer w;
    const std::vector<float> data = {1, 2, 3, 4};
    const auto bytes = std::as_bytes(std::span(data));
    w.add("a", ggml_type::F32, {4}, bytes);
    CHECK_THROWS_SAYS(w.add("a", ggml_type::F32, {4}, bytes), value_error, "'a' added twice");
    CHECK_THROWS_SAYS(w.add(std::string(64, 'n'), ggml_type::F32, {4}, bytes), value_error, "64 bytes", "1 to 63");
    CHECK_THROWS_SAYS(w.add("b", ggml_type::F32, {1, 1, 1, 1, 4}, bytes), value_error, "rank 5");
    CHECK_THROWS_SAYS(w.add("c", ggml_type::F32, {3}, bytes), shape_error, "16 bytes (expected 12 for shape [3] of F32)");
    CHECK_THROWS_SAYS(w.add("d", ggml_type::Q8_0, {2, 8}, bytes), shape_error, "not a multiple of the block size 32");
    CHECK_THROWS_SAYS(w.set("general.alignment", gguf_value::scalar<std::uint32_t>(48)), value_error, "power of two");
    CHECK_THROWS_SAYS(w.set("general.alignment", gguf_value::scalar<std::uint64_t>(64)), format_error, "expected a u32");
    CHECK_THROWS_AS(w.set("", gguf_value::scalar(true)), value_error);
    std::vector<std::byte> q8(34 * 2);
    w.add("q", ggml_type::Q8_0, {2, 32}, q8);  // quantized bytes pass through unchanged
    CHECK_THROWS_AS(w.write(dir / "missing" / "x.gguf"), io_error);
    std::filesystem::create_directory(dir / "taken");
    CHECK_THROWS_AS(w.write(dir / "taken"), io_error);
    CHECK(dir.listing() == std::vector<std::string>{"taken"});
    w.write(dir / "ok.gguf");
    const gguf_file file = gguf_file::open(dir / "ok.gguf");
    CHECK(file.info("q").ne == std::vector<std::uint64_t>{32, 2});
    CHECK(file.to_float("a") == data);
}

namespace {

/// A valid file: one u32 key, tensor "w" F32 [2] at offset 0; `tweak` edits the pieces.
struct file_parts {
    std::uint32_t version = 3;
    std::uint64_t n_tensors = 1;
    std::uint64_t n_kv = 1;
    std::string kv = byte_builder().str("k").u32(4).u32(7).bytes;
    std::string infos = byte_builder().str("w").u32(1).u64(2).u32(0).u64(0).bytes;
    std::size_t data_bytes = 8;
    [[nodiscard]] std::string build() const {
        byte_builder b;
        b.raw("GGUF").u32(version).u64(n_tensors).u64(n_kv).raw(kv).raw(infos).pad(32);
        b.bytes.append(data_bytes, '\0');
        return b.bytes;
    }
};

}  // namespace

TEST_CASE("malformed GGUF files each give their specific error") {
    const auto info = [](std::string_view name, std::vector<std::uint64_t> ne, std::uint32_t type, std::uint64_t offset) {
        byte_builder b;
        b.str(name).u32(static_cast<std::uint32_t>(ne.size()));
        for (std::uint64_t e : ne) {
            b.u64(e);
        }
        return b.u32(type).u64(offset).bytes;
    };
    struct bad_case {
        const char* what;
        std::string bytes;
        std::vector<std::string> says;
    };
    std::vector<bad_case> cases;
    const auto add = [&](const char* what, const file_parts& p, std::vector<std::string> says) {
        cases.push_back({what, p.build(), std::move(says)});
    };
    file_parts p;
    const std::string valid = p.build();
    REQUIRE_NOTHROW(gguf_file::from_bytes(std::as_bytes(std::span(valid)), "ok"));
    cases.push_back({"empty file", "", {"starts with '' (0 bytes; expected the magic 'GGUF')"}});
    cases.push_back({"not GGUF", "PK\x03\x04 zip", {"starts with 'PK\\x3\\x4'", "expected the magic 'GGUF'"}});
    cases.push_back({"truncated header", p.build().substr(0, 13), {"the tensor count at byte 8 needs 8 bytes, but only 5 remain"}});
    const std::string whole = p.build();
    cases.push_back({"truncated in the tensor info", whole.substr(0, 70), {"tensor 'w': offset at byte 66 needs 8 bytes, but only 4 remain"}});
    cases.push_back({"truncated data", whole.substr(0, whole.size() - 4),
                     {"tensor 'w' of 8 bytes at offset 0 runs past the end of the data section (4 bytes from byte 96: the file is truncated?)"}});
    { file_parts q = p; q.version = 1; add("version 1", q, {"version 1 (no longer supported"}); }
    { file_parts q = p; q.version = 4; add("unknown version", q, {"is GGUF version 4 (expected 2 or 3)"}); }
    { file_parts q = p; q.version = 3u << 24; add("big-endian", q, {"version 50331648 (a big-endian file?"}); }
    { file_parts q = p; q.n_kv = 1ull << 63;
      add("2^63 metadata entries", q, {"metadata count 9223372036854775808 at byte 24 cannot fit in the 80 bytes left (each needs at least 13)"}); }
    { file_parts q = p; q.n_tensors = 1ull << 63;
      add("2^63 tensors", q, {"tensor count 9223372036854775808", "cannot fit", "each needs at least 24"}); }
    { file_parts q = p; q.kv = byte_builder().u64(1ull << 62).raw("k").bytes;
      add("a key longer than the file", q, {"metadata key 0 at byte 24 has length 4611686018427387904, longer than the"}); }
    { file_parts q = p; q.kv = byte_builder().str("k").u32(8).u64(1000).raw("abc").bytes;
      add("a string value longer than the file", q, {"metadata 'k' at byte 37 has length 1000, longer than the 59 bytes left in the file"}); }
    { file_parts q = p; q.kv = byte_builder().str("k").u32(9).u32(4).u64(1ull << 63).bytes;
      add("an array of 2^63 u32", q, {"metadata 'k': array length 9223372036854775808", "each needs at least 4"}); }
    { file_parts q = p; q.kv = byte_builder().str("k").u32(9).u32(8).u64(1ull << 61).bytes;
      add("an array of 2^61 strings", q, {"array length 2305843009213693952", "each needs at least 8"}); }
    { file_parts q = p; q.kv = byte_builder().str("k").u32(9).u32(9).u64(0).bytes;
      add("an array of arrays", q, {"metadata 'k'", "arrays of arrays are not supported"}); }
    { file_parts q = p; q.kv = byte_builder().str("k").u32(13).u32(0).bytes;
      add("unknown value type", q, {"metadata 'k' has value type 13 (expected 0..12"}); }
    { file_parts q = p; q.n_kv = 2; q.kv += q.kv; add("duplicate key", q, {"metadata key 'k' at byte 41 appears twice"}); }
    { file_parts q = p; q.kv = byte_builder().str("").u32(4).u32(7).bytes; add("empty key", q, {"metadata key 0 at byte 24 is empty"}); }
    { file_parts q = p; q.kv = byte_builder().str("general.alignment").u32(4).u32(24).bytes;
      add("alignment not a power of two", q, {"general.alignment is 24 (expected a power of two)"}); }
    { file_parts q = p; q.kv = byte_builder().str("general.alignment").u32(4).u32(0).bytes;
      add("alignment 0", q, {"general.alignment is 0"}); }
    { file_parts q = p; q.kv = byte_builder().str("general.alignment").u32(10).u64(32).bytes;
      add("alignment as u64", q, {"general.alignment is a u64 (expected a u32)"}); }
    { file_parts q = p; q.infos = info("w", {2}, 0, 4); add("misaligned offset", q, {"tensor 'w' has offset 4, not a multiple of the alignment 32"}); }
    { file_parts q = p; q.infos = info("w", {2}, 41, 0); add("unknown tensor type", q, {"tensor 'w' has ggml type 41 (unknown here"}); }
    { file_parts q = p; q.infos = info("w", {2}, 4, 0); add("retired type 4 (Q4_2)", q, {"ggml type 4"}); }
    { file_parts q = p; q.infos = info("w", {16, 2}, 12, 0);
      add("quantized row not a whole block", q, {"tensor 'w' of type Q4_K has ne [16, 2]: rows of 16 elements are not a whole number of 256-element blocks"}); }
    { file_parts q = p; q.infos = info("w", {1, 1, 1, 1, 2}, 0, 0); add("five dimensions", q, {"tensor 'w' at byte 41 has 5 dimensions (expected at most 4"}); }
    { file_parts q = p; q.infos = info("w", {1ull << 63}, 0, 0); add("an extent of 2^63", q, {"ne[0] is 9223372036854775808 (expected below 2^63)"}); }
    { file_parts q = p; q.infos = info("w", {1ull << 40, 1ull << 40}, 0, 0); add("an overflowing size", q, {"whose size overflows"}); }
    { file_parts q = p; q.infos = info("w", {1ull << 40}, 0, 0); add("a tensor far past EOF", q, {"tensor 'w' of 4398046511104 bytes at offset 0 runs past the end"}); }
    { file_parts q = p; q.infos = info("w", {2}, 0, 1ull << 62); add("an offset past EOF", q, {"at offset 4611686018427387904 runs past the end"}); }
    { file_parts q = p; q.n_tensors = 2; q.infos = info("w", {2}, 0, 0) + info("w", {2}, 0, 32); q.data_bytes = 40;
      add("duplicate tensor names", q, {"tensor 'w' at byte 74 appears twice (expected unique tensor names)"}); }
    { file_parts q = p; q.n_tensors = 2; q.infos = info("a", {16}, 0, 0) + info("b", {2}, 0, 32); q.data_bytes = 64;
      add("overlapping tensors", q, {"tensors 'a' [0, 64) and 'b' [32, 40) overlap"}); }
    { file_parts q = p; q.infos = byte_builder().u64(1000).raw("w").bytes;
      add("a tensor name longer than the file", q, {"tensor info 0: the name at byte 41 has length 1000"}); }
    for (const bad_case& c : cases) {
        INFO(c.what);
        try {
            (void)gguf_file::from_bytes(std::as_bytes(std::span(c.bytes)), "bad.gguf");
            FAIL("no error for: " << c.what);
        } catch (const format_error& e) {
            const std::string what = e.what();
            INFO("message: " << what);
            CHECK(what.find("gguf 'bad.gguf'") != std::string::npos);
            for (const std::string& s : c.says) {
                CHECK(what.find(s) != std::string::npos);
            }
        }
    }
    SECTION("a missing file, a directory") {
        temp_dir dir;
        CHECK_THROWS_SAYS(gguf_file::open(dir / "absent.gguf"), io_error, "cannot open");
        CHECK_THROWS_SAYS(gguf_file::open(dir.path()), io_error, "not a regular file");
    }
    SECTION("zero tensors and no data section is fine; version 2 reads as 3") {
        file_parts q = p;
        q.n_tensors = 0;
        q.infos.clear();
        q.data_bytes = 0;
        std::string bytes = q.build();
        CHECK(gguf_file::from_bytes(std::as_bytes(std::span(bytes)), "meta-only").tensors().empty());
        bytes.resize(41);  // no padding after the metadata either
        CHECK(gguf_file::from_bytes(std::as_bytes(std::span(bytes)), "unpadded").metadata().size() == 1);
        file_parts v2 = p;
        v2.version = 2;
        const std::string two = v2.build();
        const gguf_file f = gguf_file::from_bytes(std::as_bytes(std::span(two)), "v2");
        CHECK(f.version() == 2);
        CHECK(f.to_float("w") == std::vector<float>{0, 0});
    }
}

TEST_CASE("ggml type table") {
    CHECK(find_ggml_type(30)->type == ggml_type::BF16);
    CHECK(find_ggml_type(4) == nullptr);
    CHECK(find_ggml_type(40) == nullptr);
    CHECK(std::string(ggml_type_name(ggml_type::Q4_K)) == "Q4_K");
    // block layouts from ggml-common.h's static_asserts
    CHECK(traits_of(ggml_type::Q4_0).block_bytes == 18);
    CHECK(traits_of(ggml_type::Q6_K).block_bytes == 210);
    CHECK(traits_of(ggml_type::IQ4_XS).block_bytes == 136);
    CHECK(traits_of(ggml_type::MXFP4).block_bytes == 17);
    CHECK(safetensors_dtype(ggml_type::BF16) == dtype::BF16);
    CHECK(!safetensors_dtype(ggml_type::Q8_0).has_value());
}
