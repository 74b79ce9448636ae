#include "nn/mpi/communicator.hpp"

// The C API only: skip the deprecated C++ bindings (and their warnings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace flowgrad::nn {

namespace {

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(call) + " failed: " + std::string(text, std::size_t(length)));
}

// MPI counts are ints: a larger message goes in pieces.
template <class Call>
void in_pieces(std::size_t n, Call call) {
  for (std::size_t first = 0; first < n; first += std::size_t(INT_MAX))
    call(first, int(std::min<std::size_t>(n - first, std::size_t(INT_MAX))));
}

}  // namespace

MpiCommunicator::MpiCommunicator(int* argc, char*** argv) {
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as codes (and exceptions here), not as MPI's own abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
}

MpiCommunicator::~MpiCommunicator() { MPI_Finalize(); }

void MpiCommunicator::allreduce_sum(float* data, std::size_t n) {
  in_pieces(n, [&](std::size_t first, int count) {
    check(MPI_Allreduce(MPI_IN_PLACE, data + first, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  });
}

void MpiCommunicator::allreduce_sum(double* data, std::size_t n) {
  in_pieces(n, [&](std::size_t first, int count) {
    check(MPI_Allreduce(MPI_IN_PLACE, data + first, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  });
}

void MpiCommunicator::broadcast(void* data, std::size_t bytes, int root) {
  auto* p = static_cast<std::uint8_t*>(data);
  in_pieces(bytes, [&](std::size_t first, int count) {
    check(MPI_Bcast(p + first, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  });
}

void MpiCommunicator::barrier() { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

void MpiCommunicator::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; if it did, this process still ends
}

}  // namespace flowgrad::nn
