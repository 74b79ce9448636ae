#include "apps/curve_svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "autograd/atomic_file.hpp"

namespace flowgrad::app {

void write_curve_svg(const std::string& path, const std::vector<Series>& series,
                     const std::string& title) {
  const double W = 640, H = 400, left = 60, right = 20, top = 40, bottom = 45;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series)
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  if (!(x1 >= x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return top + (y1 - y) / (y1 - y0) * (H - top - bottom); };

  std::ostringstream out;
  char buf[256];
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  out << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='14'>" << title << "</text>\n";
  out << "<line x1='" << left << "' y1='" << H - bottom << "' x2='" << W - right << "' y2='" << H - bottom
      << "' stroke='black'/><line x1='" << left << "' y1='" << top << "' x2='" << left << "' y2='"
      << H - bottom << "' stroke='black'/>\n";
  for (int i = 0; i <= 4; ++i) {  // axis ticks
    const double yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
    std::snprintf(buf, sizeof buf,
                  "<text x='%.1f' y='%.1f' text-anchor='end'>%.3f</text>\n"
                  "<text x='%.1f' y='%.1f' text-anchor='middle'>%.0f</text>\n",
                  left - 5, py(yv) + 4, yv, px(xv), H - bottom + 16, xv);
    out << buf;
  }
  out << "<text x='" << W / 2 << "' y='" << H - 8 << "' text-anchor='middle'>step</text>\n";
  out << "<text x='14' y='" << H / 2 << "' transform='rotate(-90 14 " << H / 2
      << ")' text-anchor='middle'>bits/dim</text>\n";
  double legend_y = top + 10;
  for (const auto& s : series) {
    out << "<polyline fill='none' stroke='" << s.color << "' stroke-width='1.5' points='";
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) {
        std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(x), py(y));
        out << buf;
      }
    out << "'/>\n";
    if (s.points.size() == 1) {
      std::snprintf(buf, sizeof buf, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                    px(s.points[0].first), py(s.points[0].second), s.color.c_str());
      out << buf;
    }
    out << "<text x='" << W - right - 120 << "' y='" << legend_y << "' fill='" << s.color << "'>" << s.name
        << "</text>\n";
    legend_y += 16;
  }
  out << "</svg>\n";
  write_atomically(path, out.str());
}

}  // namespace flowgrad::app
