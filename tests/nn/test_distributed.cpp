// The data-parallel pieces that need no MPI: one process alone, the gradient allreduce's
// packing into buckets and the state broadcast, against a stand-in group. (The MPI group
// itself runs under mpirun in tests/apps/test_mpi.cpp.)
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "autograd/autograd.hpp"
#include "nn/distributed.hpp"
#include "nn/linear.hpp"

using namespace flowgrad;

namespace {

// A group of `peers` identical ranks: a sum is `peers` times the value; a broadcast hands
// out what the root holds, here a byte pattern. Counts the calls.
class IdenticalPeers final : public nn::Communicator {
 public:
  explicit IdenticalPeers(int peers) : peers_(peers) {}
  int rank() const override { return 1; }
  int size() const override { return peers_; }
  int local_size() const override { return peers_; }
  void allreduce_sum(float* data, std::size_t n) override { sum(data, n); }
  void allreduce_sum(double* data, std::size_t n) override { sum(data, n); }
  void broadcast(void* data, std::size_t bytes, int) override {
    ++broadcasts;
    std::memset(data, 0, bytes);  // the root's values: zeros
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
  std::vector<std::size_t> sums;  // sizes of the allreduce calls
  int broadcasts = 0;

 private:
  template <class T>
  void sum(T* data, std::size_t n) {
    sums.push_back(n);
    for (std::size_t i = 0; i < n; ++i) data[i] *= T(peers_);
  }
  int peers_;
};

}  // namespace

TEST_CASE("allreduce_gradients: every gradient summed, packed into buckets in order; none without a gradient") {
  nn::Linear<double> a(3, 4), b(4, 2);  // weights 12 and 8, biases 4 and 2
  const Tensor<double> x(xt::xarray<double>{{1.0, -2.0, 0.5}});
  sum(b(a(x))).backward();
  nn::Named<double> params = a.named_parameters();
  for (auto& p : b.named_parameters()) params.push_back(p);
  Tensor<double> unused(xt::xarray<double>{1.0}, true);  // requires grad, never used: no gradient
  params.emplace_back("unused", unused);
  std::vector<xt::xarray<double>> before;
  for (auto& [name, p] : params)
    if (p.has_grad()) before.push_back(p.grad());

  IdenticalPeers three(3);
  nn::allreduce_gradients(params, three, 13);  // 12 | 4 + 8 | 2: a tensor never split
  CHECK(three.sums == std::vector<std::size_t>{12, 12, 2});
  std::size_t i = 0;
  for (auto& named : params) {  // a plain variable: clang refuses structured bindings in CAPTURE
    const std::string& name = named.first;
    const Tensor<double>& p = named.second;
    CAPTURE(name);
    if (!p.has_grad()) continue;
    CHECK(p.grad() == 3.0 * before[i++]);
  }
  CHECK_FALSE(unused.has_grad());

  IdenticalPeers big(2);
  nn::allreduce_gradients(params, big);  // the default bucket: one call
  CHECK(big.sums == std::vector<std::size_t>{26});

  nn::Linear<float> wide(300, 300);  // 90,000 weights: summed in place; the bias packed
  sum(wide(Tensor<float>(xt::ones<float>({std::size_t(1), std::size_t(300)})))).backward();
  const xt::xarray<float> weight_grad = wide.weight.grad(), bias_grad = wide.bias.grad();
  IdenticalPeers pair(2);
  nn::allreduce_gradients(wide.named_parameters(), pair);
  CHECK(pair.sums == std::vector<std::size_t>{90000, 300});
  CHECK(wide.weight.grad() == 2.0f * weight_grad);
  CHECK(wide.bias.grad() == 2.0f * bias_grad);

  nn::allreduce_gradients(params, nn::single_process());  // alone: nothing changes
  CHECK(params[0].second.grad() == 6.0 * before[0]);
}

TEST_CASE("broadcast_state: every parameter and buffer takes the root's values; alone, a no-op") {
  nn::Linear<float> layer(3, 2);
  const auto weights = layer.weight.value();
  nn::broadcast_state(layer, nn::single_process());
  CHECK(layer.weight.value() == weights);
  IdenticalPeers two(2);
  nn::broadcast_state(layer, two);
  CHECK(two.broadcasts == 2);
  CHECK(xt::all(xt::equal(layer.weight.value(), 0.0f)));
  CHECK(xt::all(xt::equal(layer.bias.value(), 0.0f)));
}

TEST_CASE("single process: rank 0 of 1; launched_by_mpirun reads the launchers' variables") {
  nn::Communicator& alone = nn::single_process();
  CHECK(alone.rank() == 0);
  CHECK(alone.size() == 1);
  CHECK(alone.is_root());
  double v = 2.5;
  alone.allreduce_sum(&v, 1);
  CHECK(v == 2.5);

  const char* vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "FLOWGRAD_MPI"};
  std::vector<std::pair<std::string, std::string>> saved;
  for (const char* var : vars)
    if (const char* value = std::getenv(var)) saved.emplace_back(var, value), unsetenv(var);
  CHECK_FALSE(nn::launched_by_mpirun());
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  CHECK(nn::launched_by_mpirun());
  unsetenv("OMPI_COMM_WORLD_SIZE");
  setenv("FLOWGRAD_MPI", "1", 1);
  CHECK(nn::launched_by_mpirun());
  unsetenv("FLOWGRAD_MPI");
  for (auto& [var, value] : saved) setenv(var.c_str(), value.c_str(), 1);
}
