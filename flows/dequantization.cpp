#include "flows/dequantization.hpp"

#include <stdexcept>
#include <string>

#include "autograd/instantiate.hpp"
#include "autograd/shape.hpp"
#include "flows/coupling.hpp"
#include "flows/distributions.hpp"
#include "flows/squeeze.hpp"
#include "nn/activation.hpp"
#include "nn/conv2d.hpp"

namespace flowgrad::flows {

template <class T>
ConditionedNet<T>::ConditionedNet(std::shared_ptr<nn::Layer<T>> n, std::shared_ptr<Tensor<T>> context)
    : context_(std::move(context)) {
  if (!n || !context_) throw std::invalid_argument("ConditionedNet: net and context must not be null");
  net = this->register_module("net", std::move(n));
}

template <class T>
Tensor<T> ConditionedNet<T>::forward(const Tensor<T>& x) {
  if (!context_->defined() || context_->shape().at(0) != x.shape().at(0))
    throw ShapeError("ConditionedNet: no context for a batch of " + shape_str(x.shape()) +
                     (context_->defined() ? " (the context is " + shape_str(context_->shape()) + ")" : ""));
  return net->forward(concat<T>({x, *context_}, 1));
}

namespace {
template <class T>
std::shared_ptr<nn::Conv2d<T>> conv3x3(std::size_t in, std::size_t out) {
  return std::make_shared<nn::Conv2d<T>>(in, out, 3, 3, 1, 1);
}

// sum over an example of log sigmoid'(h) = log sigmoid(h) + log sigmoid(-h): (B,)
template <class T>
Tensor<T> log_sigmoid_derivative(const Tensor<T>& h) {
  return sum_per_example(log_sigmoid(h) + log_sigmoid(-h));
}
}  // namespace

template <class T>
VariationalDequantizer<T>::VariationalDequantizer(const DequantizerConfig& c) : config_(c) {
  if (!c.channels || !c.height || !c.width || !c.hidden || !c.couplings)
    throw std::invalid_argument("VariationalDequantizer: channels, height, width, hidden and couplings must be positive");
  if (c.squeeze && (c.height % 2 || c.width % 2))
    throw std::invalid_argument("VariationalDequantizer: squeeze needs an even height and width, got " +
                                std::to_string(c.height) + "x" + std::to_string(c.width));
  const std::size_t channels = c.squeeze ? 4 * c.channels : c.channels, height = c.squeeze ? c.height / 2 : c.height,
                    width = c.squeeze ? c.width / 2 : c.width;
  features = this->register_module(
      "features", std::make_shared<nn::Sequential<T>>(std::vector<std::shared_ptr<nn::Layer<T>>>{
                      conv3x3<T>(channels, c.hidden), std::make_shared<nn::ReLU<T>>(),
                      conv3x3<T>(c.hidden, c.hidden), std::make_shared<nn::ReLU<T>>()}));
  couplings = this->register_module("couplings", std::make_shared<FlowSequence<T>>());
  for (std::size_t i = 0; i < c.couplings; ++i) {
    auto last = conv3x3<T>(c.hidden, 2 * channels);
    last->weight.value().fill(T(0));  // the coupling starts as the identity
    last->bias.value().fill(T(0));
    auto net = std::make_shared<nn::Sequential<T>>(std::vector<std::shared_ptr<nn::Layer<T>>>{
        conv3x3<T>(channels + c.hidden, c.hidden), std::make_shared<nn::ReLU<T>>(),
        std::make_shared<nn::Conv2d<T>>(c.hidden, c.hidden, 1), std::make_shared<nn::ReLU<T>>(), last});
    couplings->push_back(std::make_shared<AffineCoupling<T>>(
        c.squeeze ? channel_mask<T>(channels, height, width, i % 2 == 0) : checkerboard_mask<T>(channels, height, width, int(i % 2)),
        std::make_shared<ConditionedNet<T>>(net, context_)));
  }
}

template <class T>
void VariationalDequantizer<T>::condition_on(const xt::xarray<T>& pixels) {
  const Shape s = to_shape(pixels.shape()), want{config_.channels, config_.height, config_.width};
  if (s.size() != 4 || !std::equal(want.begin(), want.end(), s.begin() + 1))
    throw ShapeError("VariationalDequantizer: expected pixels (B, " + std::to_string(want[0]) + ", " +
                     std::to_string(want[1]) + ", " + std::to_string(want[2]) + "), got " + shape_str(s));
  const xt::xarray<T> centred = pixels / T(255) - T(0.5);
  *context_ = features->forward(to_flow(Tensor<T>(centred)));
}

template <class T>
Tensor<T> VariationalDequantizer<T>::to_flow(const Tensor<T>& image) const {
  return config_.squeeze ? squeeze2x2(image) : image;
}

template <class T>
Tensor<T> VariationalDequantizer<T>::to_image(const Tensor<T>& values) const {
  return config_.squeeze ? unsqueeze2x2(values) : values;
}

template <class T>
Dequantized<T> VariationalDequantizer<T>::forward(const xt::xarray<T>& pixels, const xt::xarray<T>& noise) {
  if (pixels.shape() != noise.shape())
    throw ShapeError("VariationalDequantizer: noise " + shape_str(to_shape(noise.shape())) + " does not match pixels " +
                     shape_str(to_shape(pixels.shape())));
  condition_on(pixels);
  const Tensor<T> eps(noise);
  auto [flowed, logdet] = couplings->forward(to_flow(eps));
  *context_ = Tensor<T>();  // the features belong to this pass's tape, not to the module
  const Tensor<T> h = to_image(flowed), u = sigmoid(h);
  const Tensor<T> log_q = StandardGaussian<T>().log_prob(eps) - logdet - log_sigmoid_derivative(h);
  return {(u + Tensor<T>(pixels)) * T(1.0 / 256), log_q};
}

template <class T>
Tensor<T> VariationalDequantizer<T>::log_q(const xt::xarray<T>& pixels, const Tensor<T>& u) {
  if (to_shape(pixels.shape()) != u.shape())
    throw ShapeError("VariationalDequantizer::log_q: u " + shape_str(u.shape()) + " does not match pixels " +
                     shape_str(to_shape(pixels.shape())));
  condition_on(pixels);
  const Tensor<T> h = log(u) - log(T(1) - u);
  auto [eps, logdet] = couplings->inverse(to_flow(h));
  *context_ = Tensor<T>();
  return StandardGaussian<T>().log_prob(eps) + logdet - log_sigmoid_derivative(h);
}

#define FLOWGRAD_DEQUANTIZATION(T) \
  template class ConditionedNet<T>; \
  template class VariationalDequantizer<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_DEQUANTIZATION)

}  // namespace flowgrad::flows
