// safetensors: load; whatever loads must save and load again unchanged.
#include <cstdint>
#include <cstring>

#include "fuzz_common.hpp"
#include "nn/safetensors.hpp"

using namespace flowgrad;

namespace {

std::size_t byte_size(const nn::TensorValue& v) {
  return std::visit([](const auto& a) { return a.size() * sizeof(*a.data()); }, v);
}

const void* bytes_of(const nn::TensorValue& v) {
  return std::visit([](const auto& a) { return static_cast<const void*>(a.data()); }, v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_file("input.safetensors", data, size);
  nn::SafeTensors first;
  try {
    first = nn::load_safetensors(path);
  } catch (const nn::SafetensorsError& e) {
    if (!std::strstr(e.what(), path.c_str())) fuzz::finding(std::string("error without the file name: ") + e.what());
    return 0;
  } catch (const std::exception& e) {
    fuzz::finding(std::string("unexpected exception: ") + e.what());
  }
  std::size_t total = 0;
  for (auto& [name, v] : first.tensors) total += byte_size(v);
  if (total > size) fuzz::finding("tensors hold more bytes than the file");

  const std::string again = (fuzz::work_dir() / "again.safetensors").string();
  nn::SafeTensors second;
  try {
    nn::save_safetensors(again, first.tensors, first.metadata);
    second = nn::load_safetensors(again);
  } catch (const std::exception& e) {
    fuzz::finding(std::string("a loaded file does not save and load again: ") + e.what());
  }
  if (second.metadata != first.metadata || second.tensors.size() != first.tensors.size())
    fuzz::finding("round trip changed the metadata or the tensor count");
  for (std::size_t i = 0; i < first.tensors.size(); ++i) {
    const auto &a = first.tensors[i], &b = second.tensors[i];
    if (a.first != b.first || nn::dtype_of(a.second) != nn::dtype_of(b.second) ||
        nn::shape_of(a.second) != nn::shape_of(b.second) || byte_size(a.second) != byte_size(b.second) ||
        (byte_size(a.second) > 0 && std::memcmp(bytes_of(a.second), bytes_of(b.second), byte_size(a.second)) != 0))
      fuzz::finding("round trip changed tensor '" + a.first + "'");
  }
  return 0;
}
