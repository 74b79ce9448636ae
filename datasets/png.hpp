// 8-bit PNG output with libpng: single images and grids of samples.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <xtensor/xarray.hpp>

namespace flowgrad::data {

// image: (H, W) or (H, W, 1) grey, or (H, W, 3) RGB. Encoded in memory and written
// atomically (autograd/atomic_file.hpp): a reader never sees half a file. DataError naming the path on
// a bad shape, a file that cannot be written, or a libpng error.
void write_png(const std::string& path, const xt::xarray<std::uint8_t>& image);

// Tiles images (N, C, H, W), C = 1 or 3, `columns` tiles per row, `padding` black
// pixels around and between tiles. Values are clipped to [0, 1] and mapped to
// min(255, floor(256 v)), the inverse of dequantization. A tile holding any non-finite
// value is drawn mid-grey; returns how many tiles were.
template <class T>
std::size_t write_image_grid(const std::string& path, const xt::xarray<T>& images, std::size_t columns,
                             std::size_t padding = 2);

}  // namespace flowgrad::data
