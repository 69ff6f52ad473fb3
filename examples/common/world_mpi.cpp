// examples/common/world_mpi.cpp: world() of the binaries built with MPI (examples/CMakeLists.txt):
// MPI_COMM_WORLD when mpirun started the process, otherwise one process without MPI.
#include "world.hpp"

#include <prune/mpi/mpi.hpp>

namespace prune_examples {

std::unique_ptr<prune::mpi::communicator> world(int* argc, char*** argv) {
    if (!prune::mpi::launched_by_mpirun()) return std::make_unique<prune::mpi::local_communicator>();
    return std::make_unique<prune::mpi::mpi_communicator>(argc, argv);
}

}  // namespace prune_examples
