// prune::mpi alone: MPI initialised as one process (no mpiexec), the deterministic sum of one rank.
#include <prune/mpi/mpi.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
    prune::mpi::mpi_communicator comm(&argc, &argv);
    const std::vector<double> values{0.5, -2.0};
    const bool ok = comm.size() == 1 && comm.rank() == 0 && prune::mpi::sum(comm, values) == values;
    std::printf("mpi consumer: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
