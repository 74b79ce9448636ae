// The processes that mpirun started, as a Communicator (nn/distributed.hpp). In the
// flowgrad_mpi library, so only programs that ask for MPI link libmpi:
//   std::unique_ptr<nn::MpiCommunicator> mpi;
//   if (nn::launched_by_mpirun()) mpi = std::make_unique<nn::MpiCommunicator>(&argc, &argv);
//   nn::Communicator& comm = mpi ? *mpi : nn::single_process();
#pragma once

#include "nn/distributed.hpp"

namespace flowgrad::nn {

class MpiCommunicator final : public Communicator {
 public:
  // MPI_Init_thread; the library's worker threads never call MPI (MPI_THREAD_FUNNELED).
  MpiCommunicator(int* argc, char*** argv);
  ~MpiCommunicator() override;  // MPI_Finalize
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }
  void allreduce_sum(float* data, std::size_t n) override;
  void allreduce_sum(double* data, std::size_t n) override;
  void broadcast(void* data, std::size_t bytes, int root = 0) override;
  void barrier() override;
  [[noreturn]] void abort(int code) override;  // MPI_Abort on MPI_COMM_WORLD

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
};

}  // namespace flowgrad::nn
