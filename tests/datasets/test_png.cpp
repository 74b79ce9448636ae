// PNG output, read back with libpng's own decoder.
#include <doctest/doctest.h>

#include "support.hpp"
#include <png.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xview.hpp>

#include "datasets/dataset.hpp"
#include "datasets/png.hpp"

using namespace flowgrad::data;
namespace fs = std::filesystem;
using flowgrad::testing::contains;
using flowgrad::testing::TempDir;

namespace {

struct Decoded {
  std::size_t width = 0, height = 0, channels = 0;
  std::vector<std::uint8_t> pixels;
  std::uint8_t at(std::size_t y, std::size_t x, std::size_t c = 0) const {
    return pixels[(y * width + x) * channels + c];
  }
};

Decoded read_png(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_file(&image, path.c_str()) != 0);
  Decoded d;
  d.width = image.width;
  d.height = image.height;
  d.channels = PNG_IMAGE_SAMPLE_CHANNELS(image.format);  // as stored in the file
  image.format = d.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  d.pixels.resize(PNG_IMAGE_SIZE(image));
  REQUIRE(png_image_finish_read(&image, nullptr, d.pixels.data(), 0, nullptr) != 0);
  return d;
}

template <class F>
std::string data_error_of(F&& f) { return flowgrad::testing::error_of<DataError>(f); }

}  // namespace

TEST_CASE("write_png: grey and RGB round trip, no temporary left behind") {
  TempDir dir("flowgrad-png");
  xt::xarray<std::uint8_t> grey = {{0, 10, 20}, {30, 40, 250}};
  write_png(dir / "grey.png", grey);
  Decoded g = read_png(dir / "grey.png");
  CHECK(g.width == 3);
  CHECK(g.height == 2);
  CHECK(g.channels == 1);
  CHECK(g.at(1, 2) == 250);
  CHECK(g.at(0, 1) == 10);

  xt::xarray<std::uint8_t> rgb = xt::zeros<std::uint8_t>({2, 4, 3});
  rgb(1, 3, 0) = 200;
  rgb(1, 3, 2) = 7;
  write_png(dir / "rgb.png", rgb);
  Decoded c = read_png(dir / "rgb.png");
  CHECK(c.channels == 3);
  CHECK(c.at(1, 3, 0) == 200);
  CHECK(c.at(1, 3, 1) == 0);
  CHECK(c.at(1, 3, 2) == 7);
  CHECK(flowgrad::testing::temp_files_in(dir.path).empty());
  // Overwriting replaces the file.
  rgb(1, 3, 0) = 9;
  write_png(dir / "rgb.png", rgb);
  CHECK(read_png(dir / "rgb.png").at(1, 3, 0) == 9);
}

TEST_CASE("write_image_grid: a 2x3 grid of grey tiles, clipped, NaN tile counted") {
  TempDir dir("flowgrad-png");
  // 6 tiles of 4x5; tile k has value (k + 1) / 8 except a few probes.
  xt::xarray<float> images = xt::zeros<float>({6, 1, 4, 5});
  for (std::size_t k = 0; k < 6; ++k) xt::view(images, k) = float(k + 1) / 8.f;
  images(0, 0, 1, 2) = -0.5f;  // clipped to 0
  images(0, 0, 2, 3) = 2.0f;   // clipped to 1 -> 255
  images(1, 0, 0, 0) = 1.0f;
  images(4, 0, 3, 4) = std::numeric_limits<float>::quiet_NaN();
  std::size_t bad = write_image_grid(dir / "grid.png", images, 3, 2);
  CHECK(bad == 1);
  Decoded d = read_png(dir / "grid.png");
  CHECK(d.channels == 1);
  CHECK(d.width == 3 * (5 + 2) + 2);
  CHECK(d.height == 2 * (4 + 2) + 2);
  auto tile_px = [&](std::size_t k, std::size_t y, std::size_t x) {
    return d.at(2 + (k / 3) * 6 + y, 2 + (k % 3) * 7 + x);
  };
  CHECK(d.at(0, 0) == 0);  // padding
  CHECK(d.at(2 + 4, 2) == 0);
  CHECK(tile_px(0, 0, 0) == 32);  // floor(256 / 8)
  CHECK(tile_px(0, 1, 2) == 0);
  CHECK(tile_px(0, 2, 3) == 255);
  CHECK(tile_px(1, 0, 0) == 255);
  CHECK(tile_px(5, 3, 4) == 192);  // floor(256 * 6 / 8)
  CHECK(tile_px(4, 0, 0) == 128);  // the NaN tile is mid-grey throughout
  CHECK(tile_px(4, 3, 4) == 128);
  CHECK(tile_px(3, 0, 0) == 128);  // 4/8 * 256 is also 128: a real value
}

TEST_CASE("write_image_grid: RGB tiles, fewer images than columns, double input") {
  TempDir dir("flowgrad-png");
  xt::xarray<double> images = xt::zeros<double>({2, 3, 2, 2});
  images(1, 0, 1, 1) = 0.5;
  images(1, 2, 1, 1) = std::numeric_limits<double>::infinity();
  images(0, 1, 0, 1) = 0.999;
  CHECK(write_image_grid(dir / "rgb.png", images, 8, 1) == 1);
  Decoded d = read_png(dir / "rgb.png");
  CHECK(d.channels == 3);
  CHECK(d.width == 2 * 3 + 1);
  CHECK(d.height == 4);
  CHECK(d.at(1, 2, 1) == 255);  // tile 0, (0, 1), green
  CHECK(d.at(1, 2, 0) == 0);
  CHECK(d.at(2, 5, 0) == 128);  // tile 1 had inf: grey
}

TEST_CASE("PNG errors name the path") {
  TempDir dir("flowgrad-png");
  std::string path = dir / "missing-dir/out.png";
  std::string msg = data_error_of([&] { write_png(path, xt::xarray<std::uint8_t>({{1, 2}})); });
  CHECK(contains(msg, path));
  msg = data_error_of([&] { write_png(dir / "bad.png", xt::zeros<std::uint8_t>({2, 2, 2})); });
  CHECK(contains(msg, "bad.png"));
  CHECK(contains(msg, "(2, 2, 2)"));
  msg = data_error_of([&] { write_image_grid(dir / "grid.png", xt::xarray<float>(xt::zeros<float>({2, 2, 3, 3})), 2); });
  CHECK(contains(msg, "grid.png"));
  CHECK(contains(msg, "(2, 2, 3, 3)"));
  msg = data_error_of([&] { write_image_grid(dir / "grid.png", xt::xarray<float>(xt::zeros<float>({2, 1, 3, 3})), 0); });
  CHECK(contains(msg, "grid.png"));
  CHECK(!fs::exists(dir / "grid.png"));
  CHECK(flowgrad::testing::temp_files_in(dir.path).empty());
}
