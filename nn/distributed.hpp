// Data-parallel training: what a group of processes shares (sums, broadcasts, a common
// exit), with one process alone as the default. The MPI group is nn/mpi/communicator.hpp,
// in its own library (flowgrad_mpi), so this library never links libmpi: a training loop
// written against Communicator runs unchanged in one process or under mpirun.
#pragma once

#include <cstddef>

#include "nn/module.hpp"

namespace flowgrad::nn {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks on this machine, for dividing its cores between them.
  virtual int local_size() const = 0;
  bool is_root() const { return rank() == 0; }

  // In place, element-wise: every rank ends with the sum over all ranks.
  virtual void allreduce_sum(float* data, std::size_t n) = 0;
  virtual void allreduce_sum(double* data, std::size_t n) = 0;
  // root's bytes to every rank.
  virtual void broadcast(void* data, std::size_t bytes, int root = 0) = 0;
  virtual void barrier() = 0;
  // Ends every process of the group with this exit status: a rank that fails must not
  // leave the others waiting for it forever.
  [[noreturn]] virtual void abort(int code) = 0;
};

// One process, no group: sums and broadcasts change nothing.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  void allreduce_sum(float*, std::size_t) override {}
  void allreduce_sum(double*, std::size_t) override {}
  void broadcast(void*, std::size_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int code) override;
};
Communicator& single_process();

// True when this process was started by mpirun (or srun, mpiexec): their launchers set
// the environment variables this reads, so a plain run never initialises MPI.
// FLOWGRAD_MPI=1 asks for MPI in any case.
bool launched_by_mpirun();

// Sums every parameter's gradient over the ranks: a gradient of kAllreduceInPlace values or
// more in place, the smaller ones packed into buckets of at most bucket_floats values (one
// allreduce per bucket instead of one per tensor). Parameters without a gradient are
// skipped: every rank runs the same model, so they are the same.
inline constexpr std::size_t kAllreduceInPlace = std::size_t(1) << 16;
template <class T>
void allreduce_gradients(const Named<T>& params, Communicator& comm, std::size_t bucket_floats = std::size_t(1) << 22);

// Parameters and buffers from the root to every rank.
template <class T>
void broadcast_state(const Module<T>& module, Communicator& comm);

}  // namespace flowgrad::nn
