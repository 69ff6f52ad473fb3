// examples/common/world_local.cpp: world() of the binaries built without MPI: one process.
#include "world.hpp"

namespace prune_examples {

std::unique_ptr<prune::mpi::communicator> world(int*, char***) {
    return std::make_unique<prune::mpi::local_communicator>();
}

}  // namespace prune_examples
