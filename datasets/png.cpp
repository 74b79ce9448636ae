#include "datasets/png.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <new>
#include <vector>

#include "autograd/atomic_file.hpp"
#include "autograd/instantiate.hpp"
#include "datasets/dataset.hpp"

namespace flowgrad::data {

namespace {

constexpr std::size_t kMessageSize = 256;

void on_png_error(png_structp png, png_const_charp message) {
  std::snprintf(static_cast<char*>(png_get_error_ptr(png)), kMessageSize, "%s", message);
  png_longjmp(png, 1);
}
void on_png_warning(png_structp, png_const_charp) {}

// libpng's write callback: appends to the std::vector<unsigned char> behind the io pointer.
void append_to_buffer(png_structp png, png_bytep data, png_size_t size) {
  auto* buffer = static_cast<std::vector<unsigned char>*>(png_get_io_ptr(png));
  bool ok = true;
  try {
    buffer->insert(buffer->end(), data, data + size);
  } catch (const std::bad_alloc&) {
    ok = false;
  }
  if (!ok) png_error(png, "out of memory while encoding");  // longjmps: no exception may be live
}
void flush_nothing(png_structp) {}

// No object with a destructor lives in this frame, so libpng may longjmp out of it.
bool encode_png(std::vector<unsigned char>* buffer, png_bytep* rows, png_uint_32 width, png_uint_32 height,
                int color_type, char* message) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, message, on_png_error, on_png_warning);
  if (!png) {
    std::snprintf(message, kMessageSize, "libpng could not allocate its write struct");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(message, kMessageSize, "libpng could not allocate its info struct");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, buffer, append_to_buffer, flush_nothing);
  png_set_IHDR(png, info, width, height, 8, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

// pixels: height rows of width * channels bytes.
void write_pixels(const std::string& path, const std::uint8_t* pixels, std::size_t height, std::size_t width,
                  std::size_t channels) {
  const std::size_t png_max = 0x7fffffff;  // the PNG format's limit per dimension
  if (height == 0 || width == 0 || height > png_max || width > png_max)
    throw DataError(path + ": cannot write a PNG of " + std::to_string(height) + "x" + std::to_string(width) +
                    " pixels: expected each side in 1.." + std::to_string(png_max));
  std::vector<png_bytep> rows(height);
  for (std::size_t r = 0; r < height; ++r) rows[r] = const_cast<png_bytep>(pixels + r * width * channels);
  std::vector<unsigned char> encoded;
  char message[kMessageSize] = "";
  if (!encode_png(&encoded, rows.data(), png_uint_32(width), png_uint_32(height),
                  channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, message))
    throw DataError(path + ": encoding the PNG failed: " + message);
  try {
    write_atomically(path, ByteChunks{{encoded.data(), encoded.size()}});
  } catch (const FileWriteError& e) {
    throw DataError(e.what());
  }
}

std::string shape_text(const std::vector<std::size_t>& s) {
  std::string t = "(";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + ")";
}

}  // namespace

void write_png(const std::string& path, const xt::xarray<std::uint8_t>& image) {
  const auto& s = image.shape();
  const bool grey = s.size() == 2 || (s.size() == 3 && s[2] == 1), rgb = s.size() == 3 && s[2] == 3;
  if (!grey && !rgb)
    throw DataError(path + ": cannot write an image of shape " + shape_text({s.begin(), s.end()}) +
                    " as PNG: expected (H, W), (H, W, 1) or (H, W, 3)");
  write_pixels(path, image.data(), s[0], s[1], rgb ? 3 : 1);
}

template <class T>
std::size_t write_image_grid(const std::string& path, const xt::xarray<T>& images, std::size_t columns,
                             std::size_t padding) {
  const auto& s = images.shape();
  if (s.size() != 4 || (s[1] != 1 && s[1] != 3) || s[0] == 0 || s[2] == 0 || s[3] == 0)
    throw DataError(path + ": cannot tile images of shape " + shape_text({s.begin(), s.end()}) +
                    ": expected (N, C, H, W) with N, H, W > 0 and C = 1 or 3");
  if (columns == 0) throw DataError(path + ": 0 grid columns: expected at least 1");
  const std::size_t n = s[0], c = s[1], h = s[2], w = s[3];
  const std::size_t cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  const std::size_t limit = 0x7fffffff;
  if (cols > limit / (w + padding + 1) || rows > limit / (h + padding + 1))
    throw DataError(path + ": a grid of " + std::to_string(rows) + "x" + std::to_string(cols) + " tiles of " +
                    std::to_string(h) + "x" + std::to_string(w) + " is too large for a PNG");
  const std::size_t width = cols * (w + padding) + padding, height = rows * (h + padding) + padding;
  std::vector<std::uint8_t> pixels(height * width * c, 0);  // black padding
  std::size_t bad_tiles = 0;
  const T* src = images.data();
  for (std::size_t k = 0; k < n; ++k) {
    const T* tile = src + k * c * h * w;
    const std::size_t top = padding + (k / cols) * (h + padding), left = padding + (k % cols) * (w + padding);
    const bool finite = std::all_of(tile, tile + c * h * w, [](T v) { return std::isfinite(v); });
    bad_tiles += !finite;
    for (std::size_t y = 0; y < h; ++y) {
      std::uint8_t* row = pixels.data() + ((top + y) * width + left) * c;
      for (std::size_t x = 0; x < w; ++x)
        for (std::size_t ch = 0; ch < c; ++ch) {
          std::uint8_t value = 128;  // mid-grey marks a tile that had NaN or inf
          if (finite) {
            T v = std::clamp(tile[(ch * h + y) * w + x], T(0), T(1));
            value = std::uint8_t(std::min(T(255), std::floor(v * T(256))));
          }
          row[x * c + ch] = value;
        }
    }
  }
  write_pixels(path, pixels.data(), height, width, c);
  return bad_tiles;
}

#define FLOWGRAD_INSTANTIATE_GRID(T) \
  template std::size_t write_image_grid<T>(const std::string&, const xt::xarray<T>&, std::size_t, std::size_t);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_INSTANTIATE_GRID)

}  // namespace flowgrad::data
