// Threads: one knob for OpenBLAS and for the project's own loops over the batch.
//
// parallel_for runs on a small persistent pool of std::threads (no OpenMP: one less
// runtime to fight with OpenBLAS's pthreads, and the pool is ~100 lines). While a
// parallel_for runs on more than one thread, OpenBLAS is held at one thread, so a gemm
// called per image inside the loop never multiplies the width (2 x 2 threads on 2 cores).
#pragma once

#include <cstddef>
#include <functional>

namespace flowgrad {

// Threads for OpenBLAS and for parallel_for (n >= 1; 0 means all hardware threads).
// Until it is called, both use OpenBLAS's own default (OPENBLAS_NUM_THREADS, else all
// cores). Not from inside a parallel_for (throws std::logic_error).
void set_num_threads(int n);
int num_threads();

// fn(i) for every i in [begin, end), spread over num_threads() threads (the caller
// included). Runs serially when nested, when another thread is using the pool, or for
// a single index. The first exception thrown by fn is rethrown here once all stop.
void parallel_for(std::size_t begin, std::size_t end, const std::function<void(std::size_t)>& fn);

// True on a thread that is currently running a parallel_for body.
bool in_parallel_region();

}  // namespace flowgrad
