// tests/mpi/mpi_operations.cpp: a helper that test_mpi runs under mpiexec (not a test itself).
// Each rank runs every operation of mpi_communicator (prune/mpi/mpi.hpp) on values whose results
// have closed forms and writes what it got to <dir>/rank<r>.json; test_mpi checks them:
//   sum          element i: rank r gives (r + 1) * i + 0.25, plus an element whose value depends on
//                the order of the additions (1e16 on rank 0, 1 on rank 1, -1e16 on rank 2)
//   reduce_to    owner 1, 10 values cut into chunks of 3: rank r gives 2^r * (i + 1)
//   broadcast    root 2's text (with a zero byte) on every rank
//   broadcast_values  root 2's 10 values (rank r gives 2^r * (i + 1)) in chunks of 3, in place
//   gather       every rank's "r<rank>" on root 1 in rank order
//   agree        rank 1 fails: every rank's rank_error message
//   batches      gather_batches over 7 batches: what rank 0 received, in order (batch b's state
//                is {b, value_b}), and the batch-order sum of value_b = 1e16, 1, 1, -1e16, 1, 1, 1
#include <prune/mpi/batches.hpp>
#include <prune/mpi/mpi.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace {

nlohmann::json operations(prune::mpi::mpi_communicator& comm) {
    const int r = comm.rank();
    nlohmann::json out;
    std::vector<double> values;
    for (int i = 0; i < 5; ++i) values.push_back((r + 1) * i + 0.25);
    const double order[] = {1e16, 1.0, -1e16};
    values.push_back(r < 3 ? order[r] : 0.0);
    out["sum"] = prune::mpi::sum(comm, values);
    comm.set_chunk(3);
    std::vector<double> big;
    for (int i = 0; i < 10; ++i) big.push_back(static_cast<double>(1 << r) * (i + 1));
    comm.reduce_to(big, 1);
    out["reduce_to"] = big;
    std::string text = r == 2 ? std::string("from\0two", 8) : std::string("other");
    comm.broadcast(text, 2);
    out["broadcast"] = std::vector<int>(text.begin(), text.end());
    out["broadcast_size"] = text.size();
    std::vector<double> shared;
    for (int i = 0; i < 10; ++i) shared.push_back(static_cast<double>(1 << r) * (i + 1));
    prune::mpi::broadcast_values(comm, shared, 2, 3);
    out["broadcast_values"] = shared;
    out["gather"] = comm.gather("r" + std::to_string(r), 1);
    try {
        prune::mpi::collectively(comm, [&] {
            if (r == 1) throw prune::format_error("bad shard");
        });
        out["agree"] = "no error";
    } catch (const prune::mpi::rank_error& e) {
        out["agree"] = e.what();
    }
    const double value[] = {1e16, 1.0, 1.0, -1e16, 1.0, 1.0, 1.0};
    const auto states = prune::mpi::gather_batches(comm, 7, [&](std::size_t b) {
        return std::vector<double>{static_cast<double>(b), value[b], static_cast<double>(r)};
    });
    out["batches"] = states;
    double total = 0.0;
    for (const auto& state : states) total += state[1];
    out["batch_sum"] = total;
    comm.barrier();
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    prune::mpi::mpi_communicator comm(&argc, &argv);
    if (argc != 2) return 2;
    const nlohmann::json out = operations(comm);
    std::ofstream(std::string(argv[1]) + "/rank" + std::to_string(comm.rank()) + ".json") << out.dump();
    return 0;
}
