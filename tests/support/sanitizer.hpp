// tests/support/sanitizer.hpp: PRUNE_TEST_ASAN is 1 when this test is built with AddressSanitizer
// (the `asan` preset). GCC defines __SANITIZE_ADDRESS__; clang 14 does not, it answers
// __has_feature(address_sanitizer) instead.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define PRUNE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PRUNE_TEST_ASAN 1
#endif
#endif
#ifndef PRUNE_TEST_ASAN
#define PRUNE_TEST_ASAN 0
#endif
