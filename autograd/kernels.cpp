#include "autograd/kernels.hpp"

#include <stdexcept>

namespace flowgrad::kernels {

Walk plan_walk(const Shape& out, const std::vector<Shape>& operands) {
  const std::size_t rank = out.size(), n = operands.size();
  // Row-major strides of each operand, padded on the left to the output's rank; 0 where
  // the operand has size 1 (broadcast).
  std::vector<std::vector<std::ptrdiff_t>> full(n, std::vector<std::ptrdiff_t>(rank, 0));
  for (std::size_t k = 0; k < n; ++k) {
    const Shape& s = operands[k];
    if (s.size() > rank)
      throw std::logic_error("plan_walk: operand " + shape_str(s) + " has more axes than " + shape_str(out));
    std::ptrdiff_t stride = 1;
    for (std::size_t i = rank; i-- > 0;) {
      const std::size_t d = i + s.size() >= rank ? s[i + s.size() - rank] : 1;
      if (d != 1 && d != out[i])
        throw std::logic_error("plan_walk: " + shape_str(s) + " does not broadcast to " + shape_str(out));
      full[k][i] = d == 1 ? 0 : stride;
      stride *= std::ptrdiff_t(d);
    }
  }
  // Innermost first: drop size-1 axes, merge an axis into the one inside it when every
  // operand steps across both as across one.
  Walk w;
  w.strides.assign(n, {});
  for (std::size_t i = rank; i-- > 0;) {
    if (out[i] == 1) continue;
    bool merge = !w.dims.empty();
    for (std::size_t k = 0; k < n && merge; ++k)
      merge = full[k][i] == w.strides[k].back() * std::ptrdiff_t(w.dims.back());
    if (merge) {
      w.dims.back() *= out[i];
    } else {
      w.dims.push_back(out[i]);
      for (std::size_t k = 0; k < n; ++k) w.strides[k].push_back(full[k][i]);
    }
  }
  std::reverse(w.dims.begin(), w.dims.end());
  for (auto& s : w.strides) std::reverse(s.begin(), s.end());
  return w;
}

}  // namespace flowgrad::kernels
