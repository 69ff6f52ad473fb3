// examples/common/world.hpp: the processes a binary runs on (docs/distributed.md).
// world() is defined twice: world_local.cpp (in the jobs' library: one process) and, when MPI was
// found, world_mpi.cpp (compiled into the binaries that run under mpirun: prune-importance,
// prune-sparsify).
// The linker takes a binary's own definition before the library's, so only those binaries link MPI.
#pragma once

#include <prune/mpi/communicator.hpp>

#include <memory>

namespace prune_examples {

/// The communicator of this run: every process of mpirun's job when the binary was built with MPI
/// and started by mpirun, otherwise the single process (MPI is then never initialised).
std::unique_ptr<prune::mpi::communicator> world(int* argc, char*** argv);

}  // namespace prune_examples
