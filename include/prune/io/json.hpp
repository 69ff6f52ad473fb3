// prune/io/json.hpp: reading JSON (configs, mask files, indexes, data lines) with
// errors that say where and what was expected.
//
// `parse_json` parses text with nlohmann::ordered_json (keys keep their file order) and
// rejects duplicate keys at any depth and nesting deeper than 64; every failure is a
// `prune::format_error` that names the source. `read_json_file` does the same for a file
// (io_error when it cannot be read). The `as_*` accessors convert one value and, when it has the wrong type or
// range, throw a format_error naming the value's location ("config.json: hidden_size")
// and the type expected.
#pragma once

#include <prune/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace prune::io {

/// The JSON type used throughout prune::io (keys in file order).
using json = nlohmann::ordered_json;

/// JSON with keys in sorted order (std::map) for files with objects of 100,000+ keys
/// (tokenizer.json's vocab): ordered_json finds a key by a linear search, which made
/// reading Llama-3's 128,000-token vocabulary take 25 s instead of about a second.
using sorted_json = nlohmann::json;

/// The deepest nesting of arrays and objects parse_json accepts. prune's files nest at most
/// 3 deep; a value nested tens of thousands deep would overflow the stack when nlohmann::json
/// copies or prints it (found running the fuzz/ targets on a crafted input).
inline constexpr int max_json_depth = 64;

/// Parses JSON text into `Json` (json or sorted_json); format_error naming `where` on a syntax
/// error, a duplicate key or nesting deeper than max_json_depth.
template <class Json>
[[nodiscard]] inline Json parse_json_as(std::string_view text, const std::string& where) {
    std::vector<std::set<std::string>> keys;  // the keys seen in each open object
    std::string duplicate;
    auto callback = [&](int depth, typename Json::parse_event_t event, Json& parsed) {
        using event_t = typename Json::parse_event_t;
        if ((event == event_t::object_start || event == event_t::array_start) &&
            depth >= max_json_depth) {
            throw format_error("prune::io: " + where + " nests arrays/objects deeper than " +
                               std::to_string(max_json_depth) + " levels");
        }
        switch (event) {
            case event_t::object_start: keys.emplace_back(); break;
            case event_t::object_end:
                if (!keys.empty()) {
                    keys.pop_back();
                }
                break;
            case event_t::key:
                if (!keys.empty() && !keys.back().insert(parsed.template get<std::string>()).second && duplicate.empty()) {
                    duplicate = parsed.template get<std::string>();
                }
                break;
            default: break;
        }
        return true;
    };
    Json result;
    try {
        result = Json::parse(text.begin(), text.end(), callback);
    } catch (const typename Json::exception& e) {
        throw format_error("prune::io: " + where + " is not valid JSON: " + e.what());
    }
    if (!duplicate.empty()) {
        throw format_error("prune::io: " + where + " has the key '" + duplicate +
                           "' more than once (expected unique keys)");
    }
    return result;
}

/// Parses JSON text (keys in file order); format_error naming `where` on a syntax error, a
/// duplicate key or nesting deeper than max_json_depth.
[[nodiscard]] inline json parse_json(std::string_view text, const std::string& where) {
    return parse_json_as<json>(text, where);
}

/// The most bytes read_text_file reads by default (2 GiB): text beyond it is refused, so an
/// endless stream (/dev/zero, a pipe that never ends) cannot grow memory without bound.
inline constexpr std::uintmax_t max_text_bytes = std::uintmax_t{1} << 31;

namespace detail {
/// io_error: `path` holds more than `limit` bytes.
[[noreturn]] inline void text_too_long(const std::filesystem::path& path, std::uintmax_t limit) {
    throw io_error("prune::io: '" + path.string() + "' is longer than " + std::to_string(limit) +
                   " bytes (the most prune reads as one text file)");
}
}  // namespace detail

/// What read_text_file does with a NUL byte.
enum class nul_bytes {
    refuse,  ///< io_error at the first one (no format prune parses has one: JSON escapes it)
    keep,    ///< kept (a raw corpus, read as Hugging Face's trainers read it)
};

/// The longest line for_each_line passes on (1 MiB): a data row longer than this is refused as
/// soon as that much of it is read. It is far above any row a model can use (a 128k-token
/// context is about 0.5 MB of English text, 0.8 MB of JSON-escaped CJK).
inline constexpr std::size_t max_line_bytes = std::size_t{1} << 20;

namespace detail {
/// Reads `path` in 1 MiB chunks, passing each to `take(std::string_view chunk, std::uintmax_t
/// offset)`: io_error naming the file when it cannot be read, is longer than `limit` bytes (a
/// regular file's size is checked first) or holds a NUL byte under nul_bytes::refuse.
template <class Take>
void read_chunks(const std::filesystem::path& path, std::uintmax_t limit, nul_bytes nul, Take take) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        throw io_error("prune::io: cannot read '" + path.string() + "': it is a directory");
    }
    if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) > limit && !ec) {
        text_too_long(path, limit);
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int e = errno;
        throw io_error("prune::io: cannot open '" + path.string() + "': " +
                       std::error_code(e, std::generic_category()).message());
    }
    std::vector<char> chunk(std::size_t{1} << 20);
    std::uintmax_t offset = 0;
    while (in) {
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        const auto got = static_cast<std::size_t>(in.gcount());
        if (offset + got > limit) text_too_long(path, limit);
        const auto end = chunk.begin() + static_cast<std::ptrdiff_t>(got);
        if (const auto at = std::find(chunk.begin(), end, '\0'); nul == nul_bytes::refuse && at != end) {
            throw io_error("prune::io: '" + path.string() + "' holds a NUL byte at byte " +
                           std::to_string(offset + static_cast<std::uintmax_t>(at - chunk.begin())) +
                           " (expected a text file)");
        }
        take(std::string_view(chunk.data(), got), offset);
        offset += got;
    }
    if (in.bad()) {
        throw io_error("prune::io: reading '" + path.string() + "' failed");
    }
}
}  // namespace detail

/// Reads a whole file as text, in 1 MiB chunks: io_error naming it when it cannot be read,
/// holds a NUL byte (unless `nul` is keep; /dev/zero then stops at once) or is longer than
/// `limit` bytes (a regular file's size is checked before reading).
[[nodiscard]] inline std::string read_text_file(const std::filesystem::path& path, std::uintmax_t limit = max_text_bytes,
                                                nul_bytes nul = nul_bytes::refuse) {
    std::string text;
    detail::read_chunks(path, limit, nul, [&](std::string_view chunk, std::uintmax_t) { text.append(chunk); });
    return text;
}

/// Reads a text file line by line, calling `line(std::string_view text, std::size_t number)`
/// for each (numbered from 1; without its '\n'; a last line without one included), holding
/// at most one line and one 1 MiB chunk: io_error as read_text_file, and as soon as a line
/// grows past `max_line` bytes (naming the line), so a huge row is never read whole.
template <class Line>
void for_each_line(const std::filesystem::path& path, Line line, std::size_t max_line = max_line_bytes,
                   std::uintmax_t limit = max_text_bytes) {
    std::string pending;
    std::size_t number = 1;
    const auto too_long = [&] {
        throw io_error("prune::io: '" + path.string() + "': line " + std::to_string(number) + " is longer than " +
                       std::to_string(max_line) + " bytes (the most prune reads as one line: no model has the " +
                       "positions for a row that long)");
    };
    detail::read_chunks(path, limit, nul_bytes::refuse, [&](std::string_view chunk, std::uintmax_t) {
        while (!chunk.empty()) {
            const std::size_t end = chunk.find('\n');
            const std::string_view piece = chunk.substr(0, end);
            if (pending.size() + piece.size() > max_line) too_long();
            if (end == std::string_view::npos) {
                pending.append(piece);
                return;
            }
            if (pending.empty()) {
                line(piece, number);
            } else {
                pending.append(piece);
                line(std::string_view(pending), number);
                pending.clear();
            }
            ++number;
            chunk.remove_prefix(end + 1);
        }
    });
    if (!pending.empty()) line(std::string_view(pending), number);
}

/// Reads and parses a JSON file: io_error when unreadable, format_error when malformed.
[[nodiscard]] inline json read_json_file(const std::filesystem::path& path) {
    return parse_json(read_text_file(path), "'" + path.string() + "'");
}

/// A short description of a value for messages: its JSON text, cut to 40 characters.
template <class Json>
[[nodiscard]] inline std::string describe_json(const Json& value) {
    std::string text = value.dump();
    if (text.size() > 40) {
        text = text.substr(0, 37) + "...";
    }
    return text;
}

/// The member `key` of an object; format_error "<where>: missing '<key>'" when absent or not an object.
[[nodiscard]] inline const json& require_member(const json& object, const std::string& key, const std::string& where) {
    if (!object.is_object()) {
        throw format_error("prune::io: " + where + " is " + describe_json(object) + " (expected a JSON object)");
    }
    const auto it = object.find(key);
    if (it == object.end()) {
        throw format_error("prune::io: " + where + " has no '" + key + "'");
    }
    return *it;
}

/// A non-negative integer that fits in size_t; format_error naming `where` otherwise.
[[nodiscard]] inline std::size_t as_size(const json& value, const std::string& where) {
    if (!value.is_number_unsigned() ||
        value.get<std::uint64_t>() > std::numeric_limits<std::size_t>::max()) {
        throw format_error("prune::io: " + where + " is " + describe_json(value) +
                           " (expected a non-negative integer)");
    }
    return static_cast<std::size_t>(value.get<std::uint64_t>());
}

/// An integer within int64; format_error naming `where` otherwise (2.0 is not an integer).
[[nodiscard]] inline std::int64_t as_int(const json& value, const std::string& where) {
    if (value.is_number_integer() && !value.is_number_unsigned()) {
        return value.get<std::int64_t>();
    }
    if (value.is_number_unsigned() && value.get<std::uint64_t>() <= static_cast<std::uint64_t>(
                                                                         std::numeric_limits<std::int64_t>::max())) {
        return static_cast<std::int64_t>(value.get<std::uint64_t>());
    }
    throw format_error("prune::io: " + where + " is " + describe_json(value) + " (expected an integer)");
}

/// Any JSON number as double; format_error naming `where` otherwise.
[[nodiscard]] inline double as_double(const json& value, const std::string& where) {
    if (!value.is_number()) {
        throw format_error("prune::io: " + where + " is " + describe_json(value) + " (expected a number)");
    }
    return value.get<double>();
}

/// A string; format_error naming `where` otherwise.
[[nodiscard]] inline std::string as_string(const json& value, const std::string& where) {
    if (!value.is_string()) {
        throw format_error("prune::io: " + where + " is " + describe_json(value) + " (expected a string)");
    }
    return value.get<std::string>();
}

/// A boolean; format_error naming `where` otherwise.
[[nodiscard]] inline bool as_bool(const json& value, const std::string& where) {
    if (!value.is_boolean()) {
        throw format_error("prune::io: " + where + " is " + describe_json(value) + " (expected true or false)");
    }
    return value.get<bool>();
}

/// An array; format_error naming `where` otherwise.
[[nodiscard]] inline const json& as_array(const json& value, const std::string& where) {
    if (!value.is_array()) {
        throw format_error("prune::io: " + where + " is " + describe_json(value) + " (expected an array)");
    }
    return value;
}

}  // namespace prune::io
