#include "datasets/idx.hpp"

#include <filesystem>
#include <limits>

#include "datasets/byte_reader.hpp"

namespace flowgrad::data {

namespace {

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::uint32_t big_endian32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}

// Reads the magic and `ndims` dimensions; checks the magic and that no dimension is zero
// except possibly the count.
std::vector<std::size_t> read_header(ByteReader& in, std::uint32_t magic, std::size_t ndims,
                                     const char* kind) {
  const std::size_t header_bytes = 4 + 4 * ndims;
  unsigned char header[16];
  std::size_t got = in.read(header, header_bytes);
  if (got == 0)
    throw DataError(in.path() + ": empty file: expected a " + std::to_string(header_bytes) +
                    "-byte IDX " + kind + " header, found 0 bytes");
  if (got >= 4 && big_endian32(header) != magic) {
    std::uint32_t found = big_endian32(header);
    std::string hint = found == kIdxImagesMagic   ? " (an IDX images file)"
                       : found == kIdxLabelsMagic ? " (an IDX labels file)"
                                                  : "";
    throw DataError(in.path() + ": wrong magic at offset 0: expected " + hex32(magic) + " (IDX uint8 " +
                    kind + ", " + std::to_string(ndims) + " dimension" + (ndims > 1 ? "s" : "") +
                    "), found " + hex32(found) + hint);
  }
  if (got < header_bytes)
    throw DataError(in.path() + ": truncated header: expected " + std::to_string(header_bytes) +
                    " bytes, file ends at offset " + std::to_string(got));
  std::vector<std::size_t> dims(ndims);
  for (std::size_t i = 0; i < ndims; ++i) dims[i] = big_endian32(header + 4 + 4 * i);
  for (std::size_t i = 1; i < ndims; ++i)
    if (dims[i] == 0)
      throw DataError(in.path() + ": dimension " + std::to_string(i) + " at offset " +
                      std::to_string(4 + 4 * i) + " is 0: expected a positive size");
  return dims;
}

// The data's size: the product of the dimensions. The nonzero ones must multiply to
// less than 2^63 even when a count of 0 makes the data empty: xtensor's strides are
// signed partial products of them (fuzzing found 0 images of 4294955987x3553874899).
std::size_t checked_product(const std::vector<std::size_t>& dims, const std::string& path) {
  const std::size_t limit = std::numeric_limits<std::ptrdiff_t>::max();
  std::size_t nonzero = 1;
  bool empty = false;
  for (std::size_t d : dims) {
    if (d == 0) {
      empty = true;
      continue;
    }
    if (nonzero > limit / d) {
      std::string shown;
      for (std::size_t e : dims) shown += (shown.empty() ? "" : " x ") + std::to_string(e);
      throw DataError(path + ": dimensions " + shown + " (header offset 4) overflow: expected the product "
                      "of the nonzero ones to be below 2^63");
    }
    nonzero *= d;
  }
  return empty ? 0 : nonzero;
}

// Reads the images that follow a header already read, into one array: the size is
// checked against the file before anything is allocated or inflated.
xt::xarray<std::uint8_t> read_image_data(ByteReader& in, const std::vector<std::size_t>& dims) {
  const std::size_t n = dims[0], h = dims[1], w = dims[2];
  const std::size_t bytes = checked_product(dims, in.path());
  const std::string what = "16-byte header + " + std::to_string(n) + " images of " + std::to_string(h) + "x" +
                           std::to_string(w);
  in.require_available(bytes, what);
  auto images = allocate_for(in.path(), bytes, what, [&] {
    return xt::xarray<std::uint8_t>::from_shape({n, 1, h, w});
  });
  if (bytes) in.read_exactly(images.data(), bytes, what);
  in.expect_end(what);
  return images;
}

}  // namespace

xt::xarray<std::uint8_t> read_idx_images(const std::string& path) {
  ByteReader in(path);
  return read_image_data(in, read_header(in, kIdxImagesMagic, 3, "images"));
}

std::vector<std::uint8_t> read_idx_labels(const std::string& path) {
  ByteReader in(path);
  const std::size_t n = read_header(in, kIdxLabelsMagic, 1, "labels")[0];
  const std::string what = "8-byte header + " + std::to_string(n) + " labels";
  in.require_available(n, what);
  auto labels = allocate_for(path, n, what, [&] { return std::vector<std::uint8_t>(n); });
  if (n) in.read_exactly(labels.data(), n, what);
  in.expect_end(what);
  for (std::size_t i = 0; i < n; ++i) check_label(labels[i], path, 8 + i, i);
  return labels;
}

ImageDataset load_idx_dataset(const std::string& dir, const std::string& split) {
  std::string prefix;
  if (split == "train") prefix = "train";
  else if (split == "test") prefix = "t10k";
  else throw DataError(dir + ": unknown split '" + split + "': expected train or test");
  const std::string images_name = prefix + "-images-idx3-ubyte", labels_name = prefix + "-labels-idx1-ubyte";
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw DataError(dir + ": directory not found (expected it to hold the " + split + " IDX files " +
                    images_name + "[.gz] and " + labels_name + "[.gz]; tried " + images_name + ".gz, " +
                    images_name + ", " + labels_name + ".gz, " + labels_name + ")");
  std::string images_path =
      find_data_file(dir, {images_name + ".gz", images_name}, split + " images (IDX)");
  std::string labels_path =
      find_data_file(dir, {labels_name + ".gz", labels_name}, split + " labels (IDX)");
  // The small labels file first: counted and range-checked before any image is inflated.
  ImageDataset ds;
  ds.labels = read_idx_labels(labels_path);
  ByteReader images(images_path);
  const auto dims = read_header(images, kIdxImagesMagic, 3, "images");
  if (ds.labels.size() != dims[0])
    throw DataError(labels_path + ": " + std::to_string(ds.labels.size()) + " labels, expected " +
                    std::to_string(dims[0]) + " to match the image count at offset 4 of " + images_path);
  ds.images = read_image_data(images, dims);
  ds.source = images_path + " + " + file_name(labels_path);
  return ds;
}

}  // namespace flowgrad::data
