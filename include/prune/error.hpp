// prune/error.hpp: the exceptions thrown at the library's edges and the inner
// precondition check.
//
// Errors caused by what a user handed in (files, shapes, configs, arguments) throw a
// subclass of `prune::error` whose message says what was wrong, where, and what was
// expected. Broken internal invariants use `PRUNE_ASSERT`, which aborts with the
// failed expression: they are bugs, not input errors.
#pragma once

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace prune {

/// Base of every exception the library throws for bad input.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A tensor, mask or view whose shape or size disagrees with what it is combined with.
class shape_error : public error {
public:
    using error::error;
};

/// An argument outside its documented domain (amount outside [0, 1], lr <= 0, ...).
class value_error : public error {
public:
    using error::error;
};

/// A malformed or inconsistent file (safetensors, config.json, JSONL, masks, ...).
class format_error : public error {
public:
    using error::error;
};

/// A file that cannot be opened, read, mapped or written.
class io_error : public error {
public:
    using error::error;
};

/// A tensor of an element type (dtype) the operation does not support.
class dtype_error : public error {
public:
    using error::error;
};

/// Resources the system refused: a thread that cannot be started (too many threads, an
/// address-space limit).
class resource_error : public error {
public:
    using error::error;
};

/// A number as the shortest text that reads back as the same double ("0.001", "1e-12", "-1",
/// "nan"), for messages: std::to_string prints 1e-12 as "0.000000" and -1 as "-1.000000".
[[nodiscard]] inline std::string number_text(double value) {
    if (value != value) return "nan";  // to_chars writes "-nan" for a NaN with its sign bit set
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, value).ptr;
    return std::string(text, end);
}

namespace detail {
/// Reports a failed PRUNE_ASSERT and aborts.
[[noreturn]] inline void assertion_failed(const char* expression, const char* file, int line) {
    std::fprintf(stderr, "prune: internal assertion failed: %s (%s:%d)\n", expression, file, line);
    std::abort();
}
}  // namespace detail

}  // namespace prune

/// Checks an internal invariant (never user input); aborts with the expression on failure.
#define PRUNE_ASSERT(expression)                                                         \
    ((expression) ? static_cast<void>(0)                                                 \
                  : ::prune::detail::assertion_failed(#expression, __FILE__, __LINE__))
