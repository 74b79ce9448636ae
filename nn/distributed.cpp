#include "nn/distributed.hpp"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "autograd/instantiate.hpp"

namespace flowgrad::nn {

void SingleProcess::abort(int code) { std::exit(code); }

Communicator& single_process() {
  static SingleProcess alone;
  return alone;
}

bool launched_by_mpirun() {
  const char* asked = std::getenv("FLOWGRAD_MPI");
  if (asked && std::strcmp(asked, "1") == 0) return true;
  // Open MPI, PMIx (Open MPI 4+, Slurm), PMI-1/2 (MPICH's hydra, Slurm).
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(var)) return true;
  return false;
}

template <class T>
void allreduce_gradients(const Named<T>& params, Communicator& comm, std::size_t bucket_floats) {
  if (comm.size() == 1) return;
  std::vector<T> bucket;
  std::vector<Tensor<T>> waiting;  // the tensors packed into the bucket, in order
  auto flush = [&] {
    if (bucket.empty()) return;
    comm.allreduce_sum(bucket.data(), bucket.size());
    const T* from = bucket.data();
    for (Tensor<T> t : waiting) {  // a handle: its grad is the parameter's
      std::memcpy(t.grad().data(), from, t.grad().size() * sizeof(T));
      from += t.grad().size();
    }
    bucket.clear(), waiting.clear();
  };
  for (const auto& [name, t] : params) {
    if (!t.has_grad()) continue;
    Tensor<T> handle = t;
    const std::size_t n = t.grad().size();
    if (n >= kAllreduceInPlace) {  // large: summed where it is, copying it would cost more than a call
      comm.allreduce_sum(handle.grad().data(), n);
      continue;
    }
    if (!bucket.empty() && bucket.size() + n > bucket_floats) flush();
    bucket.insert(bucket.end(), t.grad().data(), t.grad().data() + n);
    waiting.push_back(t);
  }
  flush();
}

template <class T>
void broadcast_state(const Module<T>& module, Communicator& comm) {
  if (comm.size() == 1) return;
  for (auto& [name, t] : module.state()) {
    Tensor<T> handle = t;
    comm.broadcast(handle.value().data(), handle.value().size() * sizeof(T));
  }
}

#define FLOWGRAD_DISTRIBUTED(T)                                                                 \
  template void allreduce_gradients<T>(const Named<T>&, Communicator&, std::size_t);            \
  template void broadcast_state<T>(const Module<T>&, Communicator&);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_DISTRIBUTED)

}  // namespace flowgrad::nn
