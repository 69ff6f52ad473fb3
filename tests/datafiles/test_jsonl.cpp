// Tests for prune/data/jsonl.hpp: files written by Python's json module read back
// exactly (escapes, non-ASCII, CRLF, extra keys, float labels), and every malformed
// line gives an error naming the file, the line number and what was expected.
#include <prune/data/jsonl.hpp>

#include "../io/test_support.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include <signal.h>
#include <sys/stat.h>

using namespace prune;
using namespace prune::data;
using prune_test::temp_dir;

namespace {

const temp_dir& python_files() {
    static const temp_dir dir;
    static const bool written = [] {
        prune_test::run_python("datafiles/make_data.py " + dir.path().string());
        return true;
    }();
    (void)written;
    return dir;
}

std::vector<std::int32_t> ints(const nlohmann::json& j) { return j.get<std::vector<std::int32_t>>(); }

}  // namespace

TEST_CASE("JSONL written by Python's json module reads back exactly") {
    const temp_dir& dir = python_files();
    const auto expected = prune_test::read_json(dir / "expected.json");

    data_options classes;
    classes.num_labels = 3;
    classes.vocab_size = 30522;
    const dataset ids = read_jsonl(dir / "ids.jsonl", classes);
    CHECK(ids.form == example_form::token_ids);
    REQUIRE(ids.examples.size() == expected["ids"].size());
    for (std::size_t i = 0; i < ids.examples.size(); ++i) {
        const auto& e = expected["ids"][i];
        const example& ex = ids.examples[i];
        CHECK(ex.line == i + 1);
        CHECK(ex.input_ids == ints(e["input_ids"]));
        CHECK(ex.token_type_ids == (e.contains("token_type_ids") ? ints(e["token_type_ids"]) : std::vector<std::int32_t>{}));
        CHECK(ex.attention_mask == (e.contains("attention_mask") ? ints(e["attention_mask"]) : std::vector<std::int32_t>{}));
        CHECK(ex.label_index() == e["label"].get<int>());
    }

    data_options regression;
    regression.num_labels = 1;
    const dataset text = read_jsonl(dir / "text.jsonl", regression);
    CHECK(text.form == example_form::text);
    REQUIRE(text.examples.size() == expected["text"].size());
    for (std::size_t i = 0; i < text.examples.size(); ++i) {
        const auto& e = expected["text"][i];
        const example& ex = text.examples[i];
        CHECK(ex.text == e["text"].get<std::string>());
        CHECK(ex.text_pair.has_value() == e.contains("text_pair"));
        if (ex.text_pair) {
            CHECK(*ex.text_pair == e["text_pair"].get<std::string>());
        }
        CHECK(*ex.label == e["label"].get<double>());  // exact: both sides round-trip the shortest repr
    }
}

TEST_CASE("JSONL details: blank lines, BOM, label names, unlabeled rows") {
    const auto data = parse_jsonl("\xEF\xBB\xBF{\"text\": \"a\", \"label\": 1}\n\n   \n{\"text\": \"b\", \"label\": 0}", "f");
    REQUIRE(data.examples.size() == 2);
    CHECK(data.examples[1].line == 4);
    data_options names;
    names.num_labels = 3;
    names.label_names = {"entailment", "neutral", "contradiction"};
    CHECK(parse_jsonl(R"({"text": "x", "label": "contradiction"})", "f", names).examples[0].label_index() == 2);
    CHECK(parse_jsonl(R"({"text": "x", "label": 1})", "f", names).examples[0].label_index() == 1);
    // a name whose index is not a class (more names than num_labels, or a regression task) is
    // refused; found by fuzz_jsonl, which checks every label is in [0, num_labels)
    names.num_labels = 2;
    CHECK_THROWS_WITH(parse_jsonl(R"({"text": "x", "label": "contradiction"})", "f", names),
                      Catch::Matchers::Contains("not a class index in [0, 2)"));
    names.num_labels = 1;
    CHECK_THROWS_WITH(parse_jsonl(R"({"text": "x", "label": "entailment"})", "f", names),
                      Catch::Matchers::Contains("regression"));
    data_options unlabeled;
    unlabeled.require_label = false;
    const auto rows = parse_jsonl("{\"input_ids\": [1, 2]}\n{\"input_ids\": [3], \"label\": null}\n", "f", unlabeled);
    CHECK_FALSE(rows.examples[0].label.has_value());
    CHECK_FALSE(rows.examples[1].label.has_value());
    CHECK(parse_jsonl(R"({"input_ids": [5], "label": 1.0})", "f").examples[0].label_index() == 1);
}

TEST_CASE("malformed JSONL lines name the file, the line and what was expected") {
    data_options options;
    options.num_labels = 2;
    options.vocab_size = 100;
    struct bad_case {
        const char* what;
        std::string text;
        std::vector<std::string> fragments;
    };
    const std::string good = R"({"input_ids": [1, 2], "label": 0})";
    const std::vector<bad_case> cases = {
        {"empty file", "", {"'d.jsonl' has no examples"}},
        {"only blank lines", "\n  \n\r\n", {"has no examples"}},
        {"malformed JSON on line 3", good + "\n" + good + "\n{\"input_ids\": [1,", {"'d.jsonl':3: the line is not valid JSON"}},
        {"trailing comma", good + "\n{\"input_ids\": [1], \"label\": 0,}", {"'d.jsonl':2: the line is not valid JSON"}},
        {"not an object", "[1, 2]", {"'d.jsonl':1: the line is [1,2]", "expected an object"}},
        {"neither ids nor text", R"({"label": 1})", {":1: no \"input_ids\" and no \"text\""}},
        {"missing label", good + "\n" + R"({"input_ids": [1]})", {"'d.jsonl':2: no \"label\" (expected a class index in [0, 2))"}},
        {"label out of range", R"({"input_ids": [1], "label": 2})", {":1: label 2 is not a class index in [0, 2)"}},
        {"negative label", R"({"input_ids": [1], "label": -1})", {"label -1 is not a class index"}},
        {"fractional label", R"({"input_ids": [1], "label": 0.5})", {"label 0.5 is not a class index"}},
        {"string label without names", R"({"input_ids": [1], "label": "1"})", {"label is \"1\" (expected a class index"}},
        {"ids not an array", R"({"input_ids": "1 2", "label": 0})", {"input_ids is \"1 2\" (expected an array of integers)"}},
        {"id out of vocabulary", R"({"input_ids": [1, 100], "label": 0})", {":1: input_ids[1] is 100 (expected an integer in [0, 100))"}},
        {"negative id", R"({"input_ids": [-1], "label": 0})", {"input_ids[0] is -1"}},
        {"float id", R"({"input_ids": [1.5], "label": 0})", {"input_ids[0] is 1.5"}},
        {"huge id", R"({"input_ids": [18446744073709551615], "label": 0})", {"input_ids[0] is 18446744073709551615"}},
        {"empty ids", R"({"input_ids": [], "label": 0})", {"input_ids is empty"}},
        {"token types of another length", R"({"input_ids": [1, 2], "token_type_ids": [0], "label": 0})",
         {"token_type_ids has 1 entries (expected 2, as input_ids)"}},
        {"attention mask of another length", R"({"input_ids": [1, 2], "attention_mask": [1, 1, 1], "label": 0})",
         {"attention_mask has 3 entries (expected 2"}},
        {"attention mask not 0/1", R"({"input_ids": [1, 2], "attention_mask": [1, 2], "label": 0})",
         {"attention_mask[1] is 2 (expected an integer in [0, 2))"}},
        {"text not a string", R"({"text": 5, "label": 0})", {"text is 5 (expected a string)"}},
        {"text_pair not a string", R"({"text": "a", "text_pair": [], "label": 0})", {"text_pair is [] (expected a string)"}},
        {"mixed forms", good + "\n" + R"({"text": "a", "label": 0})", {":2: a text example in a file whose first example (line 1) is input_ids"}},
        {"duplicate key", R"({"input_ids": [1], "label": 0, "label": 1})", {":1: the line has the key 'label' more than once"}},
        {"invalid UTF-8", "{\"text\": \"\xff\", \"label\": 0}", {":1: the line is not valid JSON"}},
        // JSON's \u0000 escape is a NUL byte in the decoded text: everything after it used to be dropped
        {"NUL in text", R"({"text": "ab\u0000cd", "label": 0})", {":1: text holds a NUL byte at byte 2 (expected text without NUL bytes)"}},
        {"NUL in text_pair", R"({"text": "a", "text_pair": "\u0000", "label": 0})", {":1: text_pair holds a NUL byte at byte 0"}},
    };
    for (const bad_case& c : cases) {
        INFO(c.what);
        try {
            (void)parse_jsonl(c.text, "'d.jsonl'", options);
            FAIL_CHECK("no error for: " << c.what);
        } catch (const format_error& e) {
            for (const auto& f : c.fragments) {
                CHECK_THAT(e.what(), Catch::Matchers::Contains(f));
            }
        }
    }
    data_options regression;
    regression.num_labels = 1;
    CHECK_THROWS_SAYS(parse_jsonl(R"({"text": "a", "label": "high"})", "'r.jsonl'", regression), format_error,
                      "'r.jsonl':1: label is \"high\" (expected a number: num_labels is 1, regression)");
    data_options names;
    names.num_labels = 2;
    names.label_names = {"no", "yes"};
    CHECK_THROWS_SAYS(parse_jsonl(R"({"text": "a", "label": "maybe"})", "'n.jsonl'", names), format_error,
                      "label 'maybe' is not one of the label names (no, yes)");
    data_options zero;
    zero.num_labels = 0;
    CHECK_THROWS_AS(parse_jsonl(good, "f", zero), value_error);
    temp_dir dir;
    CHECK_THROWS_SAYS(read_jsonl(dir / "absent.jsonl"), io_error, "absent.jsonl");
    prune_test::write_bytes(dir / "bad.jsonl", good + "\n" + good + "\nnot json\n");
    CHECK_THROWS_SAYS(read_jsonl(dir / "bad.jsonl"), format_error, "bad.jsonl':3:");
}

// io::read_text_file reads in chunks and stops early: at the first NUL byte (/dev/zero is
// refused at byte 0 instead of filling memory), past its byte limit on a stream whose size is
// unknown (a FIFO fed by a writer that never stops), and before reading a regular file larger
// than the limit.
TEST_CASE("text files: NUL bytes and endless streams are refused without reading them whole") {
    using Catch::Matchers::Contains;
    CHECK_THROWS_WITH(io::read_text_file("/dev/zero"),
                      Contains("'/dev/zero' holds a NUL byte at byte 0 (expected a text file)"));
    temp_dir dir;
    const std::filesystem::path nul = dir.path() / "nul.jsonl";
    std::ofstream(nul, std::ios::binary) << std::string("{\"a\": 1}\n{\"b\"\0: 2}\n", 19);
    CHECK_THROWS_WITH(read_jsonl(nul), Contains("nul.jsonl' holds a NUL byte at byte 13"));
    const std::filesystem::path big = dir.path() / "big.txt";
    std::ofstream(big) << std::string(3000, 'x');
    CHECK(io::read_text_file(big, 3000).size() == 3000);
    CHECK_THROWS_WITH(io::read_text_file(big, 2999), Contains("big.txt' is longer than 2999 bytes (the most prune reads as one text file)"));
    const std::filesystem::path fifo = dir.path() / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const auto old_pipe = ::signal(SIGPIPE, SIG_IGN);  // the writer outlives the reader: EPIPE, not death
    std::thread writer([&] {
        std::ofstream out(fifo, std::ios::binary);
        const std::string line(4096, 'y');
        for (int i = 0; i < 4096 && out; ++i) out << line;  // 16 MiB offered; the reader stops after 1 MiB + a chunk
    });
    CHECK_THROWS_WITH(io::read_text_file(fifo, std::uintmax_t{1} << 20), Contains("fifo' is longer than 1048576 bytes"));
    writer.join();
    ::signal(SIGPIPE, old_pipe);
}

TEST_CASE("for_each_line gives the lines of a whole-file split, across chunk boundaries") {
    temp_dir dir;
    const std::filesystem::path file = dir.path() / "lines.txt";
    std::string text;
    for (std::size_t i = 0; text.size() < (std::size_t{5} << 20); ++i) {  // 5 MiB: lines cross 1 MiB chunks
        text += std::string((i * 7919) % 70001, static_cast<char>('a' + i % 26));
        text += (i % 5 == 0) ? "\r\n" : "\n";
        if (i % 11 == 0) text += "\n";  // blank lines keep their numbers
    }
    text += "last line without a newline";
    std::ofstream(file, std::ios::binary) << text;
    std::vector<std::string> expected;  // the independent split: every '\n' of the whole text
    for (std::size_t pos = 0;;) {
        const std::size_t end = text.find('\n', pos);
        expected.push_back(text.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    std::vector<std::string> got;
    io::for_each_line(file, [&](std::string_view line, std::size_t number) {
        CHECK(number == got.size() + 1);
        got.emplace_back(line);
    });
    CHECK(got == expected);
    // a line of exactly the limit passes, one byte more is refused naming the line
    std::ofstream(file, std::ios::binary) << "ok\n" << std::string(1000, 'z') << "\n";
    std::size_t lines = 0;
    io::for_each_line(file, [&](std::string_view, std::size_t) { ++lines; }, 1000);
    CHECK(lines == 2);
    CHECK_THROWS_WITH(io::for_each_line(file, [](std::string_view, std::size_t) {}, 999),
                      Catch::Matchers::Contains("lines.txt': line 2 is longer than 999 bytes"));
}

TEST_CASE("a data row longer than io::max_line_bytes is refused after reading about that much, not the whole row") {
    using Catch::Matchers::Contains;
    temp_dir dir;
    const std::filesystem::path fifo = dir.path() / "row.jsonl";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const auto old_pipe = ::signal(SIGPIPE, SIG_IGN);
    std::size_t offered = 0;
    std::thread writer([&] {  // one 100 MB row, {"input_ids": [1, 1, 1, ...
        std::ofstream out(fifo, std::ios::binary);
        out << "{\"input_ids\": [";
        const std::string block = [] {
            std::string b;
            for (int i = 0; i < 16384; ++i) b += "1, ";
            return b;
        }();
        while (offered < (std::size_t{100} << 20) && out.write(block.data(), static_cast<std::streamsize>(block.size()))) {
            out.flush();
            if (out) offered += block.size();
        }
    });
    CHECK_THROWS_WITH(read_jsonl(fifo), Contains("row.jsonl': line 1 is longer than 1048576 bytes"));
    writer.join();
    ::signal(SIGPIPE, old_pipe);
    CHECK(offered < (std::size_t{4} << 20));  // the reader stopped at 1 MiB + one chunk (+ the pipe's buffer)
}
