// The learning curve (train and test bits/dim against step) as a small SVG.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace flowgrad::app {

struct Series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (step, bits/dim)
};

// Writes atomically (path.tmp, then rename).
void write_curve_svg(const std::string& path, const std::vector<Series>& series,
                     const std::string& title);

}  // namespace flowgrad::app
