#include "datasets/dataset.hpp"

#include "datasets/cifar.hpp"
#include "datasets/idx.hpp"

namespace flowgrad::data {

ImageDataset load_dataset(const std::string& name, const std::string& dir, const std::string& split) {
  ImageDataset ds;
  if (name == "fashion-mnist") {
    ds = load_idx_dataset(dir.empty() ? kFashionMnistDir : dir, split);
  } else if (name == "mnist" || name == "cifar10") {
    if (dir.empty())
      throw DataError("dataset " + name + ": no directory given: expected the folder holding its " +
                      (name == "mnist" ? "IDX files" : "cifar-10-batches-bin binary files"));
    ds = name == "mnist" ? load_idx_dataset(dir, split) : load_cifar10(dir, split);
  } else {
    throw DataError("unknown dataset '" + name + "': expected fashion-mnist, mnist or cifar10");
  }
  // An empty set would make a training loop spin without ever taking a step.
  if (ds.size() == 0) throw DataError(ds.source + ": no images: expected at least one");
  ds.source = name + " " + split + ": " + ds.source;
  return ds;
}

}  // namespace flowgrad::data
