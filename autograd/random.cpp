#include "autograd/random.hpp"

#include <sstream>
#include <stdexcept>

namespace flowgrad {

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(std::uint64_t seed) { default_generator().seed(seed); }

std::string generator_state() {
  std::ostringstream os;
  os << default_generator();
  return os.str();
}

void set_generator_state(const std::string& state) {
  std::istringstream is(state);
  Generator g;
  is >> g;
  if (is.fail()) throw std::runtime_error("random generator state is not valid");
  default_generator() = g;
}

}  // namespace flowgrad
