#include "flows/class_shift.hpp"

#include "autograd/instantiate.hpp"
#include "autograd/shape.hpp"

namespace flowgrad::flows {

template <class T>
std::shared_ptr<nn::Linear<T>> make_class_map(std::size_t classes, std::size_t channels, std::size_t height,
                                              std::size_t width, bool per_position) {
  auto map = std::make_shared<nn::Linear<T>>(classes, per_position ? channels * height * width : channels);
  map->weight.value().fill(T(0));  // starts as the unconditional prior
  map->bias.value().fill(T(0));
  return map;
}

template <class T>
Tensor<T> class_shift(nn::Linear<T>& map, const Tensor<T>& context, const Shape& like) {
  const std::size_t out = map.weight.shape()[0];
  if (like.size() != 4 || context.shape().size() != 2 || context.shape()[0] != like[0] ||
      (out != like[1] && out != like[1] * like[2] * like[3]))
    throw ShapeError("class_shift: a map to " + std::to_string(out) + " values from a context of " +
                     shape_str(context.shape()) + " does not fit prior parameters of " + shape_str(like));
  const bool per_position = out != like[1] || like[2] * like[3] == 1;
  return reshape(map.forward(context),
                 per_position ? like : Shape{like[0], like[1], std::size_t(1), std::size_t(1)});
}

#define FLOWGRAD_CLASS_SHIFT(T)                                                                                   \
  template std::shared_ptr<nn::Linear<T>> make_class_map<T>(std::size_t, std::size_t, std::size_t, std::size_t, \
                                                             bool);                                              \
  template Tensor<T> class_shift<T>(nn::Linear<T>&, const Tensor<T>&, const Shape&);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_CLASS_SHIFT)

}  // namespace flowgrad::flows
