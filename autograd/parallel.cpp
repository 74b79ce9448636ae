#include "autograd/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "autograd/blas.hpp"

namespace flowgrad {

namespace {

thread_local bool t_in_parallel = false;

// Before it sleeps, a thread watches for what it waits on a short while: in a training
// step the next job usually comes within microseconds, and waking a sleeping thread costs
// tens of them (more in a VM, where an idle vCPU is halted). libgomp spins likewise.
constexpr auto kSpin = std::chrono::microseconds(1000);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

template <class Ready>
void spin_until(Ready ready) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  do {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return;
      cpu_relax();
    }
  } while (std::chrono::steady_clock::now() < until);
}

// Workers sleep on a condition variable between jobs; the caller works too, so n threads
// means n - 1 workers. Indices are handed out one at a time from an atomic counter:
// the loops here are over images, each worth milliseconds, so balance beats overhead.
// The caller returns once every index is done, without waiting for workers the OS has
// not scheduled yet (on a busy machine that can be a whole time slice). Each job has its
// own state, kept alive by the workers that hold it: a worker that wakes after its job
// ended finds no index left there, so it never calls a finished job's fn.
class Pool {
  struct Job {
    const std::function<void(std::size_t)>* fn;
    std::size_t end, count;
    std::atomic<std::size_t> next, finished{0};
    std::exception_ptr error;  // guarded by Pool::m_
    Job(const std::function<void(std::size_t)>* f, std::size_t b, std::size_t e)
        : fn(f), end(e), count(e - b), next(b) {}
  };

 public:
  ~Pool() { stop_workers(); }  // no BLAS call here: OpenBLAS may be gone at exit

  int threads() {
    std::call_once(init_, [this] { resize_locked(std::max(1, blas::num_threads())); });
    return threads_.load();
  }

  void resize(int n) {
    threads();  // finish the lazy default first
    std::lock_guard<std::mutex> busy(run_mutex_);
    resize_locked(n);
  }

  void run(std::size_t begin, std::size_t end, const std::function<void(std::size_t)>& fn) {
    threads();  // finish the lazy default first
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    const int n = threads_.load();  // stable while we hold run_mutex_
    if (n == 1 || end - begin < 2 || t_in_parallel || !busy.owns_lock()) {
      serial(begin, end, fn);
      return;
    }
    blas::set_num_threads(1);  // one gemm per image per thread, not n x n
    auto job = std::make_shared<Job>(&fn, begin, end);
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = job;
      ++generation_;
    }
    wake_.notify_all();
    work(*job);
    spin_until([&] { return job->finished.load() == job->count; });
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lock(m_);
      done_.wait(lock, [&] { return job->finished.load() == job->count; });
      job_.reset();  // workers that wake from now on skip it
      error = job->error;
    }
    blas::set_num_threads(n);
    if (error) std::rethrow_exception(error);
  }

 private:
  static void serial(std::size_t begin, std::size_t end, const std::function<void(std::size_t)>& fn) {
    struct Flag {  // restored even if fn throws
      bool saved = t_in_parallel;
      Flag() { t_in_parallel = true; }
      ~Flag() { t_in_parallel = saved; }
    } flag;
    for (std::size_t i = begin; i < end; ++i) fn(i);
  }

  // Takes indices until none are left; the first exception stops everyone early (the
  // indices nobody took then count as finished). Whoever finishes the last one wakes the caller.
  void work(Job& job) {
    t_in_parallel = true;
    for (std::size_t i; (i = job.next.fetch_add(1)) < job.end;) {
      std::size_t finished = 1;
      try {
        (*job.fn)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m_);
        if (!job.error) job.error = std::current_exception();
        const std::size_t untaken = job.next.exchange(job.end);
        if (untaken < job.end) finished += job.end - untaken;
      }
      if (job.finished.fetch_add(finished) + finished == job.count) {
        std::lock_guard<std::mutex> lock(m_);  // the caller is waiting or about to check
        done_.notify_one();
      }
    }
    t_in_parallel = false;
  }

  void worker_loop() {
    std::size_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      const auto woken = [&] { return stop_.load() || generation_.load() != seen; };
      spin_until(woken);
      {
        std::unique_lock<std::mutex> lock(m_);
        wake_.wait(lock, woken);
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      if (job) work(*job);
    }
  }

  // Caller holds run_mutex_ (or is the one-time initialiser), so no job is running.
  void resize_locked(int n) {
    n = std::max(1, n);
    if (std::size_t(n - 1) != workers_.size()) {
      stop_workers();
      for (int i = 1; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
    }
    threads_ = n;
    blas::set_num_threads(n);
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_ = false;
    generation_ = 0;  // a fresh worker starts with seen = 0: it must not see an old job
  }

  std::once_flag init_;
  std::atomic<int> threads_{1};
  std::mutex run_mutex_;  // one job at a time; held also while resizing
  std::mutex m_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  std::atomic<std::size_t> generation_{0};  // written under m_, read by spinning workers
  std::atomic<bool> stop_{false};
  std::shared_ptr<Job> job_;  // the running job, null between jobs
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void set_num_threads(int n) {
  if (t_in_parallel)  // the pool is busy running the caller: resizing it would deadlock
    throw std::logic_error("set_num_threads: called from inside a parallel_for");
  if (n <= 0) n = int(std::max(1u, std::thread::hardware_concurrency()));
  pool().resize(n);
}

int num_threads() { return pool().threads(); }

void parallel_for(std::size_t begin, std::size_t end, const std::function<void(std::size_t)>& fn) {
  if (end <= begin) return;
  pool().run(begin, end, fn);
}

bool in_parallel_region() { return t_in_parallel; }

}  // namespace flowgrad
