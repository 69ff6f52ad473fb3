// examples/common/outputs.hpp: outputs never destroy inputs. Every binary calls
// refuse_overlaps before any work with its path flags: an output (--out, --json, prune-lottery's
// --cache) that is, contains or lies inside an input (--model, --data, ...) or the cache,
// contains the working directory, is the root directory, or overlaps another output is a
// prune::value_error (exit 2), since writing it would replace or delete what it overlaps.
// Paths are compared after resolving symbolic links and `..` (std::filesystem::weakly_canonical
// of the absolute path), and existing paths also by identity (same device and inode).
#pragma once

#include <prune/error.hpp>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace prune_cli {

/// A path given on the command line and the flag that gave it ("--model", "--out").
struct path_flag {
    std::string flag;
    std::string path;
};

namespace detail {

/// "a/b/" -> "a/b" ("/" stays).
inline std::filesystem::path without_trailing_separator(std::filesystem::path p) {
    while (p.has_relative_path() && p.filename().empty()) p = p.parent_path();
    return p;
}

/// The absolute path with `.`/`..` removed by text alone (no symbolic link followed).
inline std::filesystem::path lexical(const std::string& path) {
    std::error_code ec;
    return without_trailing_separator(std::filesystem::absolute(path, ec).lexically_normal());
}

/// The absolute path with symbolic links and `.`/`..` resolved as far as it exists.
inline std::filesystem::path resolved(const std::string& path) {
    std::error_code ec;
    const std::filesystem::path out = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec);
    return ec ? lexical(path) : without_trailing_separator(out);  // ec: e.g. a directory that cannot be searched
}

/// True when `inner` is `outer` or lies below it (component by component).
inline bool within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
    auto i = inner.begin();
    for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
        if (o->empty()) continue;  // a trailing separator
        if (i == inner.end() || *i != *o) return false;
    }
    return true;
}

/// True when both paths exist and are the same file or directory (hard links, bind mounts).
inline bool same_file(const std::string& a, const std::string& b) {
    std::error_code ec;
    return std::filesystem::equivalent(a, b, ec) && !ec;
}

/// `flag 'path'`, with where it resolves to when a symbolic link is involved.
inline std::string named(const path_flag& p, const std::filesystem::path& resolved_path) {
    std::string out = p.flag + " '" + p.path + "'";
    if (resolved_path != lexical(p.path)) out += " (resolves to '" + resolved_path.string() + "')";
    return out;
}

/// Throws when output `out` and the other path `other` overlap; `expected` ends the message.
inline void refuse_pair(const path_flag& out, const path_flag& other, const std::string& expected) {
    const std::filesystem::path o = resolved(out.path), p = resolved(other.path);
    std::string relation;
    if (o == p || same_file(out.path, other.path)) {
        relation = "is the same path as";
    } else if (within(p, o)) {
        relation = "contains";
    } else if (within(o, p)) {
        relation = "is inside";
    } else {
        return;
    }
    throw prune::value_error(named(out, o) + " " + relation + " " + named(other, p) + " (expected " + expected + ")");
}

}  // namespace detail

/// Refuses (prune::value_error, naming both flags) an output that overlaps an input, the
/// working directory, the root directory or another output. `inputs` are read (and also
/// prune-lottery's --cache, which is written too, so it is an input of --out); `outputs` are
/// written or replaced. Empty paths (flags not given) are skipped.
inline void refuse_overlaps(const std::vector<path_flag>& inputs, const std::vector<path_flag>& outputs) {
    std::error_code ec;
    const std::filesystem::path cwd = std::filesystem::current_path(ec);
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const path_flag& out = outputs[i];
        if (out.path.empty()) continue;
        const std::filesystem::path o = detail::resolved(out.path);
        if (o == o.root_path()) {
            throw prune::value_error(detail::named(out, o) +
                                     " is the root directory (expected a new or replaceable file or directory)");
        }
        if (!ec && detail::within(cwd, o)) {
            throw prune::value_error(detail::named(out, o) + " is or contains the working directory '" + cwd.string() +
                                     "' (expected an output outside it or below it)");
        }
        for (const path_flag& in : inputs) {
            if (!in.path.empty()) {
                detail::refuse_pair(out, in, "an output apart from every input: writing it would destroy the input");
            }
        }
        for (std::size_t j = i + 1; j < outputs.size(); ++j) {
            if (!outputs[j].path.empty()) {
                detail::refuse_pair(out, outputs[j], "separate outputs: one would replace the other");
            }
        }
    }
}

}  // namespace prune_cli
