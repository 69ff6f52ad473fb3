// Tests for prune/mpi/communicator.hpp and prune/mpi/batches.hpp on one process (no MPI needed):
// local_communicator is the identity, the byte helpers round-trip, agree / collectively keep a
// single process's exception as it is, gather_batches returns every batch in order, and a
// michel_accumulator merged through state() / merge_state() has the bits of merge().
// tests/mpi/test_mpi.cpp checks the same operations on 3 processes under mpiexec.
#include <prune/importance/michel.hpp>
#include <prune/mpi/batches.hpp>
#include <prune/mpi/communicator.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <limits>
#include <vector>

using namespace prune::mpi;

TEST_CASE("local_communicator: one rank, every operation the identity", "[mpi]") {
    local_communicator comm;
    CHECK(comm.rank() == 0);
    CHECK(comm.size() == 1);
    comm.barrier();
    using namespace std::string_literals;
    std::string text = "bytes\0with a zero"s;
    comm.broadcast(text);
    CHECK(text == "bytes\0with a zero"s);
    CHECK(comm.gather("abc") == std::vector<std::string>{"abc"});
    std::vector<double> v{1.5, -0.0, 3.0};
    comm.reduce_to(v, 0);
    CHECK(v == std::vector<double>{1.5, -0.0, 3.0});
    CHECK(std::signbit(v[1]));  // not 0.0 + (-0.0): the values themselves
    CHECK(sum(comm, v) == v);
    broadcast_values(comm, v, 0, 2);  // two chunks, each left as it is
    CHECK(v == std::vector<double>{1.5, -0.0, 3.0});
    CHECK(std::signbit(v[1]));
    CHECK_THROWS_WITH(comm.reduce_to(v, 1), "prune::mpi::reduce_to: rank 1 (expected one of the 1 ranks)");
    CHECK_THROWS_AS(comm.broadcast(text, -1), prune::value_error);
}

TEST_CASE("to_bytes and doubles_of round-trip every bit", "[mpi]") {
    const std::vector<double> v{0.1, -0.0, std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::infinity()};
    const std::vector<double> back = doubles_of(to_bytes(v));
    REQUIRE(back.size() == v.size());
    CHECK(std::memcmp(back.data(), v.data(), v.size() * sizeof(double)) == 0);
    CHECK(doubles_of("").empty());
    CHECK_THROWS_WITH(doubles_of("abc"), "prune::mpi::doubles_of: 3 bytes (expected a multiple of 8)");
}

TEST_CASE("agree and collectively on one process", "[mpi]") {
    local_communicator comm;
    CHECK_NOTHROW(agree(comm, ""));
    try {
        agree(comm, "disk full");
        FAIL("agree did not throw");
    } catch (const rank_error& e) {
        CHECK(std::string(e.what()) == "rank 0: disk full");
        CHECK(e.failed_rank() == 0);
    }
    // One process: the exception itself, its type and message unchanged (the binaries' messages).
    CHECK_THROWS_AS(collectively(comm, [] { throw prune::format_error("bad line 3"); }), prune::format_error);
    CHECK_THROWS_WITH(collectively(comm, [] { throw prune::format_error("bad line 3"); }), "bad line 3");
    int calls = 0;
    collectively(comm, [&] { ++calls; });
    CHECK(calls == 1);
}

TEST_CASE("gather_batches: every batch's state in batch order", "[mpi]") {
    local_communicator comm;
    CHECK(batch_count(10, 4) == 3);
    CHECK(batch_count(0, 4) == 0);
    CHECK(batch_count(8, 4) == 2);
    CHECK_THROWS_AS(batch_count(8, 0), prune::value_error);
    std::vector<std::size_t> order;
    const auto states = gather_batches(comm, 4, [&](std::size_t b) {
        order.push_back(b);
        return std::vector<double>(b, static_cast<double>(b) + 0.25);  // batch 0 sends an empty state
    });
    CHECK(order == std::vector<std::size_t>{0, 1, 2, 3});
    REQUIRE(states.size() == 4);
    for (std::size_t b = 0; b < 4; ++b) CHECK(states[b] == std::vector<double>(b, static_cast<double>(b) + 0.25));
    CHECK_THROWS_WITH(gather_batches(comm, 2, [](std::size_t) -> std::vector<double> { throw prune::io_error("no disk"); }),
                      "no disk");
}

TEST_CASE("michel_accumulator: merge_state(state()) is merge()", "[mpi][michel]") {
    using prune::importance::absolute_value;
    using prune::importance::michel_accumulator;
    auto a = michel_accumulator::uniform(2, 3), b = michel_accumulator::uniform(2, 3), c = michel_accumulator::uniform(2, 3);
    a.add_unit(std::vector<double>{0.1, -0.2, 0.3, 1e16, 5, 6}, std::vector<double>{0.7, -0.8}, 4);
    b.add_unit(std::vector<double>{0.3, 0.2, -0.1, 1, 2, 3}, std::vector<double>{0.1, 0.2}, 3);
    b.add_unit(std::vector<double>{1, 2, 3, 4, 5, 6}, std::vector<double>{1, 2}, 2);
    const std::vector<double> s = b.state();
    REQUIRE(s.size() == 6 + 2 + 2);
    CHECK(s[8] == 2.0);  // units
    CHECK(s[9] == 5.0);  // tokens
    c.merge(a).merge(b);
    michel_accumulator d = michel_accumulator::uniform(2, 3);
    d.merge_state(a.state()).merge_state(s);
    CHECK(d.state() == c.state());
    CHECK(d.units() == 3);
    CHECK_THROWS_AS(d.merge_state(std::vector<double>(9, 0.0)), prune::shape_error);
    auto cumulative = michel_accumulator::uniform(2, 3, absolute_value::cumulative);
    CHECK_THROWS_AS(cumulative.merge_state(s), prune::value_error);
}
