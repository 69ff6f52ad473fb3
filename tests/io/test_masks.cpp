// Tests for prune/io/masks.hpp: structure mask JSON (round trips, absent keys, ragged
// layers, wrong shapes naming the expected one, bad values) and element mask
// safetensors (round trips, files written by the torch-based reference, bad bytes,
// shape checks against a model), and packed-bit element masks against numpy's packbits.
#include <prune/io/masks.hpp>

#include "test_support.hpp"

#include <catch2/catch.hpp>

using namespace prune;
using namespace prune::io;
using prune_test::temp_dir;

TEST_CASE("structure masks round trip through JSON") {
    temp_dir dir;
    structure_mask mask{group_mask::uniform(3, 4), group_mask::uniform(3, 1)};
    mask.heads.set(0, 1, false);
    mask.heads.set(2, 3, false);
    mask.mlps.set(1, 0, false);
    write_structure_mask(dir / "mask.json", mask);
    CHECK(read_structure_mask(dir / "mask.json") == mask);
    CHECK(read_structure_mask(dir / "mask.json", std::vector<std::size_t>{4, 4, 4}) == mask);
    // the text is the documented format, one row per layer
    const auto text = prune_test::read_bytes(dir / "mask.json");
    const auto parsed = nlohmann::json::parse(text);
    CHECK(parsed["heads"] == nlohmann::json::parse("[[1,0,1,1],[1,1,1,1],[1,1,1,0]]"));
    CHECK(parsed["mlps"] == nlohmann::json::parse("[1,0,1]"));
    CHECK(dir.listing() == std::vector<std::string>{"mask.json"});

    SECTION("ragged layers (a physically pruned model)") {
        const auto ragged = parse_structure_mask(R"({"heads": [[1, 0], [1], []], "mlps": [0, 1, 1]})", "m",
                                                 std::vector<std::size_t>{2, 1, 0});
        CHECK(ragged.heads.groups(0) == 2);
        CHECK(ragged.heads.groups(2) == 0);
        CHECK_FALSE(ragged.heads.kept(0, 1));
        CHECK_FALSE(ragged.mlps.kept(0, 0));
        CHECK(parse_structure_mask(structure_mask_json(ragged), "again") == ragged);
    }
    SECTION("a decoder's K/V groups and MLP channels (ragged widths), one row per layer") {
        structure_mask m{group_mask::uniform(2, 4), group_mask::uniform(2, 1)};
        m.kv_groups = group_mask::uniform(2, 2);
        m.kv_groups.set(1, 0, false);
        m.mlp_channels = group_mask(std::vector<std::size_t>{5, 3});
        m.mlp_channels.set(0, 4, false);
        m.mlp_channels.set(1, 0, false);
        const std::string text = structure_mask_json(m);
        const auto parsed = nlohmann::json::parse(text);
        CHECK(parsed["kv_groups"] == nlohmann::json::parse("[[1,1],[0,1]]"));
        CHECK(parsed["mlp_channels"] == nlohmann::json::parse("[[1,1,1,1,0],[0,1,1]]"));
        CHECK(parse_structure_mask(text, "again") == m);
        CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1, 1], "mlp_channels": [[1]]})", "'m.json'"), shape_error,
                          "mlp_channels has 1 rows (expected 2, one per layer)");
    }
}

TEST_CASE("absent keys mean all kept") {
    const std::vector<std::size_t> heads{3, 3};
    const auto only_mlps = parse_structure_mask(R"({"mlps": [1, 0]})", "m", heads);
    CHECK(only_mlps.heads == group_mask::uniform(2, 3));
    CHECK_FALSE(only_mlps.mlps.kept(1, 0));
    const auto only_heads = parse_structure_mask(R"({"heads": [[true, false, true], [1, 1, 1]]})", "m", heads);
    CHECK(only_heads.mlps == group_mask::uniform(2, 1));
    CHECK_FALSE(only_heads.heads.kept(0, 1));
    const auto empty = parse_structure_mask("{}", "m", heads);
    CHECK(empty.heads == group_mask::uniform(2, 3));
    CHECK(empty.mlps == group_mask::uniform(2, 1));
    // without an expected shape: heads alone still give all-kept MLPs; nothing gives empty masks
    CHECK(parse_structure_mask(R"({"heads": [[1], [0]]})", "m").mlps == group_mask::uniform(2, 1));
    CHECK(parse_structure_mask("{}", "m").heads.layers() == 0);
}

TEST_CASE("malformed or wrong-shaped structure masks") {
    const std::vector<std::size_t> heads{12, 12};
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [[1,1],[1,1],[1,1]]})", "'m.json'", heads), shape_error,
                      "'m.json'", "heads has 3 layers x 2 heads (expected 2 layers x 12 heads)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [[1,1],[1]]})", "'m.json'", std::vector<std::size_t>{2, 2}),
                      shape_error, "heads has 2 layers with [2, 1] heads (expected 2 layers x 2 heads)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1, 1, 1]})", "'m.json'", heads), shape_error,
                      "mlps has 3 entries (expected 2, one per layer)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [[1],[1]], "mlps": [1]})", "'m.json'"), shape_error,
                      "mlps has 1 entries (expected 2");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [[1, 2]]})", "'m.json'"), format_error,
                      "heads[0][1] is 2 (expected 0 or 1)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1, "1"]})", "'m.json'"), format_error,
                      "mlps[1] is \"1\" (expected 0 or 1)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"heads": [1, 0]})", "'m.json'"), format_error,
                      "heads[0] is 1 (expected an array)");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"head": [[1]]})", "'m.json'"), format_error,
                      "unknown key 'head'");
    CHECK_THROWS_SAYS(parse_structure_mask(R"([1])", "'m.json'"), format_error, "expected {\"heads\"");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1,)", "'m.json'"), format_error, "not valid JSON");
    CHECK_THROWS_SAYS(parse_structure_mask(R"({"mlps": [1], "mlps": [0]})", "'m.json'"), format_error,
                      "key 'mlps' more than once");
    temp_dir dir;
    CHECK_THROWS_SAYS(read_structure_mask(dir / "absent.json"), io_error, "absent.json");
}

TEST_CASE("element masks round trip through safetensors") {
    temp_dir dir;
    element_masks masks;
    element_mask a(prune::shape{3, 5});
    a.set(0, false);
    a.set(14, false);
    element_mask b(prune::shape{130}, false);
    b.set(129, true);
    masks.emplace("layer.0.weight", a);
    masks.emplace("layer.0.bias", b);
    masks.emplace("empty", element_mask(prune::shape{0, 4}));
    write_element_masks(dir / "masks.safetensors", masks);
    const element_masks back = read_element_masks(dir / "masks.safetensors");
    REQUIRE(back.size() == 3);
    CHECK(back.at("layer.0.weight") == a);
    CHECK(back.at("layer.0.bias") == b);
    CHECK(back.at("empty").size() == 0);
    // stored as U8, 1 = kept, row-major
    const auto file = safetensors_file::open(dir / "masks.safetensors");
    CHECK(file.info("layer.0.weight").type == dtype::U8);
    CHECK(file.info("layer.0.weight").shape == std::vector<std::size_t>{3, 5});
    CHECK(file.to_float("layer.0.weight")[0] == 0.0f);
    CHECK(file.to_float("layer.0.weight")[1] == 1.0f);

    SECTION("ordered writing keeps the given order") {
        const std::vector<std::pair<std::string, element_mask>> ordered = {{"z", a}, {"a", b}};
        write_element_masks(dir / "ordered.safetensors", ordered);
        const auto f = safetensors_file::open(dir / "ordered.safetensors");
        CHECK(f.tensors()[0].name == "z");
        CHECK(f.tensors()[1].name == "a");
    }
}

TEST_CASE("element masks written by the torch-based reference") {
    temp_dir dir;
    prune_test::run_python("io/safetensors_reference.py masks " + dir.path().string());
    const auto expected = prune_test::read_json(dir / "masks.json");
    const element_masks masks = read_element_masks(dir / "masks.safetensors");
    REQUIRE(masks.size() == expected.size());
    for (const auto& [name, e] : expected.items()) {
        INFO(name);
        const element_mask& mask = masks.at(name);
        CHECK(mask.extents() == prune::shape(e["shape"].get<std::vector<std::size_t>>()));
        CHECK(mask.to_bytes() == e["values"].get<std::vector<std::uint8_t>>());
    }
}

TEST_CASE("bad element mask files") {
    temp_dir dir;
    safetensors_writer writer;
    const std::vector<std::uint8_t> bad = {1, 0, 2, 1};
    writer.add_u8("w", {2, 2}, bad);
    writer.write(dir / "bad.safetensors");
    CHECK_THROWS_SAYS(read_element_masks(dir / "bad.safetensors"), format_error, "element mask 'w'", "bad.safetensors",
                      "has 2 at index 2 (expected 0 or 1");
    safetensors_writer floats;
    const std::vector<float> values = {1, 0};
    floats.add("w", make_view(values.data(), {2}));
    floats.write(dir / "float.safetensors");
    CHECK_THROWS_SAYS(read_element_masks(dir / "float.safetensors"), format_error, "is F32 (expected U8");
    CHECK_THROWS_AS(read_element_masks(dir / "absent.safetensors"), io_error);
}

namespace {

/// A mask of the given shape with seeded random 0/1 elements.
element_mask random_mask(const prune::shape& extents, unsigned seed) {
    element_mask mask(extents, false);
    std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (std::size_t i = 0; i < mask.size(); ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        mask.set(i, (state >> 33) % 3 != 0);
    }
    return mask;
}

/// A file holding one U8 tensor `w` of `shape` and `bytes`, with the given __metadata__.
std::filesystem::path bits_file(const temp_dir& dir, const std::string& file, const std::vector<std::size_t>& shape,
                                const std::vector<std::uint8_t>& bytes, const std::map<std::string, std::string>& metadata) {
    safetensors_writer writer;
    writer.add_u8("w", shape, bytes);
    for (const auto& [key, value] : metadata) writer.set_metadata(key, value);
    writer.write(dir / file);
    return dir / file;
}

}  // namespace

TEST_CASE("packed-bit element masks are numpy's packbits(axis=-1, bitorder='little')") {
    temp_dir dir;
    // 1-d and 2-d, last axes a multiple of 8 or not, rows crossing 64-bit words, zero-length axes
    const std::vector<std::pair<std::string, prune::shape>> shapes = {
        {"one_d_13", prune::shape{13}},      {"one_d_64", prune::shape{64}},   {"rows_3x8", prune::shape{3, 8}},
        {"rows_3x13", prune::shape{3, 13}},  {"rows_7x70", prune::shape{7, 70}}, {"cube_2x3x9", prune::shape{2, 3, 9}},
        {"single", prune::shape{1}},         {"no_columns", prune::shape{4, 0}}, {"no_rows", prune::shape{0, 5}},
        {"empty", prune::shape{0}},
    };
    element_masks masks;
    for (std::size_t i = 0; i < shapes.size(); ++i) masks.emplace(shapes[i].first, random_mask(shapes[i].second, static_cast<unsigned>(i)));
    write_element_masks(dir / "bytes.safetensors", masks);
    write_element_masks(dir / "bits.safetensors", masks, mask_layout::bits);
    // both layouts read back to the same masks
    CHECK(read_element_masks(dir / "bits.safetensors") == masks);
    CHECK(read_element_masks(dir / "bytes.safetensors") == masks);

    prune_test::run_python("io/mask_bits_reference.py " + (dir / "bytes.safetensors").string() + " " +
                           (dir / "bits.safetensors").string() + " " + (dir / "numpy.json").string());
    const auto numpy = prune_test::read_json(dir / "numpy.json");
    CHECK(numpy["layout"] == "bits-lsb");
    REQUIRE(numpy["tensors"].size() == masks.size());
    for (const auto& [name, mask] : masks) {
        INFO(name);
        const auto& t = numpy.at("tensors").at(name);
        CHECK(t["file_shape"] == t["numpy_shape"]);
        CHECK(t["file_bytes"] == t["numpy_bytes"]);  // byte for byte
        CHECK(t["last"] == mask.extents()[mask.extents().rank() - 1]);
        CHECK(t["unpacked"] == t["bytes"]);
        CHECK(t["bytes"].get<std::vector<std::uint8_t>>() == mask.to_bytes());
    }
    // 8 elements a byte: the 3 x 13 mask is 3 x 2 bytes
    CHECK(safetensors_file::open(dir / "bits.safetensors").info("rows_3x13").shape == std::vector<std::size_t>{3, 2});

    SECTION("ordered writing keeps the given order in both layouts") {
        const std::vector<std::pair<std::string, element_mask>> ordered = {{"z", masks.at("rows_3x13")}, {"a", masks.at("one_d_13")}};
        write_element_masks(dir / "ordered.safetensors", ordered, mask_layout::bits);
        const auto f = safetensors_file::open(dir / "ordered.safetensors");
        CHECK(f.tensors()[0].name == "z");
        CHECK(element_mask_from(f, "a") == masks.at("one_d_13"));
    }
    SECTION("a scalar mask has no axis to pack") {
        element_masks scalar;
        scalar.emplace("s", element_mask(prune::shape{}));
        CHECK_THROWS_SAYS(write_element_masks(dir / "s.safetensors", scalar, mask_layout::bits), value_error,
                          "element mask 's' is a scalar");
        CHECK_FALSE(std::filesystem::exists(dir / "s.safetensors"));
        CHECK_NOTHROW(write_element_masks(dir / "s.safetensors", scalar));
    }
}

TEST_CASE("bad packed-bit element mask files") {
    temp_dir dir;
    const std::map<std::string, std::string> good = {{"prune.mask_layout", "bits-lsb"}, {"prune.mask_last_dims", R"({"w": 13})"}};
    // the reference: 2 rows of 13 bits, 2 bytes a row; the last byte of a row has 5 bits
    const std::vector<std::uint8_t> bytes = {0xff, 0x1f, 0x01, 0x10};
    const auto mask = read_element_masks(bits_file(dir, "good.safetensors", {2, 2}, bytes, good)).at("w");
    CHECK(mask.extents() == prune::shape{2, 13});
    CHECK(mask.count_kept() == 13 + 2);
    CHECK(mask.kept(13));
    CHECK(mask.kept(13 + 12));
    CHECK_FALSE(mask.kept(13 + 11));

    auto with = [&](const std::string& key, const std::string& value) {
        auto m = good;
        m[key] = value;
        return m;
    };
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "pad.safetensors", {2, 2}, {0xff, 0x3f, 0x01, 0x10}, good)),
                      format_error, "element mask 'w'", "pad.safetensors", "padding bits set in byte 1 (the last byte of row 0 holds 5 of its 13 bits; the other bits must be 0)");
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "len.safetensors", {2, 2}, bytes, with("prune.mask_last_dims", R"({"w": 17})"))),
                      format_error, "element mask 'w'", "is U8 [2, 2] (expected U8 [..., 3]: 17 bits packed per row");
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "neg.safetensors", {2, 2}, bytes, with("prune.mask_last_dims", R"({"w": -13})"))),
                      format_error, "prune.mask_last_dims['w'] is -13 (expected a non-negative integer)");
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "none.safetensors", {2, 2}, bytes, with("prune.mask_last_dims", R"({"v": 13})"))),
                      format_error, "prune.mask_last_dims names 'v', which is no tensor of the file");
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "list.safetensors", {2, 2}, bytes, with("prune.mask_last_dims", "[13]"))),
                      format_error, "prune.mask_last_dims is [13] (expected {\"name\"");
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "text.safetensors", {2, 2}, bytes, with("prune.mask_last_dims", "{"))),
                      format_error, "prune.mask_last_dims", "not valid JSON");
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "layout.safetensors", {2, 2}, bytes, with("prune.mask_layout", "bits-msb"))),
                      format_error, "prune.mask_layout = 'bits-msb' (expected 'bits-lsb')");
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "scalar.safetensors", {}, {1}, good)), format_error,
                      "is U8 [] (expected U8 [..., 2]");
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "nodims.safetensors", {2, 2}, bytes, {{"prune.mask_layout", "bits-lsb"}})),
                      format_error, "prune.mask_last_dims is missing");
    // a huge length with no rows is an empty mask, never an allocation of that size
    const auto huge = with("prune.mask_last_dims", R"({"w": 18446744073709551615})");
    CHECK(read_element_masks(bits_file(dir, "huge.safetensors", {0, 2305843009213693952}, {}, huge)).at("w").size() == 0);
    // a huge length with rows disagrees with the stored bytes
    CHECK_THROWS_SAYS(read_element_masks(bits_file(dir, "huge1.safetensors", {1, 2}, {1, 0}, huge)), format_error,
                      "expected U8 [..., 2305843009213693952]");
}

TEST_CASE("element masks checked against a model") {
    temp_dir dir;
    safetensors_writer model;
    const std::vector<float> w(6, 1.0f);
    model.add("w", make_view(w.data(), {2, 3}));
    model.write(dir / "model.safetensors");
    const checkpoint ckpt = checkpoint::open(dir.path());
    element_masks good;
    good.emplace("w", element_mask(prune::shape{2, 3}));
    CHECK_NOTHROW(check_element_masks(good, ckpt));
    element_masks wrong_shape;
    wrong_shape.emplace("w", element_mask(prune::shape{3, 2}));
    CHECK_THROWS_SAYS(check_element_masks(wrong_shape, ckpt), shape_error,
                      "element mask 'w' has shape [3, 2] (expected [2, 3]");
    element_masks unknown;
    unknown.emplace("v", element_mask(prune::shape{1}));
    CHECK_THROWS_SAYS(check_element_masks(unknown, ckpt), format_error, "'v' names no tensor");
}
