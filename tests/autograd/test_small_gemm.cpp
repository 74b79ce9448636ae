// Our own kernel for Winograd's and Linear's products (autograd/small_gemm.hpp), on every
// instruction set this CPU has, against a float64 loop: short and long products, edge
// blocks of rows and columns, k = 0, A stored either way, accumulating or not, and C's
// padding (ldc > n) left untouched.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "autograd/small_gemm.hpp"

using namespace flowgrad;

TEST_CASE("small_gemm: every instruction set equals the float64 product on edge shapes") {
  const std::string saved = small_gemm::isa();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  int isas_run = 0;
  for (const char* isa : {"avx512", "avx2", "blas"}) {
    if (!small_gemm::set_isa(isa)) continue;
    ++isas_run;
    // Short products (Winograd's, 8 x 32 blocks on AVX-512), then long ones (k or m >= 256,
    // 6 x 64 blocks), with last panels of every width up to 4 vectors.
    struct Shapes {
      std::vector<int> ms, ns, ks;
    };
    const Shapes shapes[] = {{{1, 5, 8, 13, 64}, {1, 7, 16, 17, 33, 48, 112}, {0, 1, 9, 64}},
                             {{5, 260}, {1, 17, 40, 50, 64, 65, 129}, {3, 260}}};
    for (const Shapes& sh : shapes)
      for (int m : sh.ms)
        for (int n : sh.ns)
          for (int k : sh.ks)
            for (bool transposed : {false, true})
              for (bool accumulate : {false, true}) {
                CAPTURE(isa);
                CAPTURE(m);
                CAPTURE(n);
                CAPTURE(k);
                CAPTURE(transposed);
                CAPTURE(accumulate);
                const int ldb = n + 3, ldc = n + 5;
                std::vector<float> a(std::size_t(m) * k + 1), b(std::size_t(k) * ldb + 1),
                    c(std::size_t(m) * ldc);
                for (float& v : a) v = uniform(rng);
                for (float& v : b) v = uniform(rng);
                for (float& v : c) v = uniform(rng);
                const std::vector<float> c0 = c;
                const long a_row = transposed ? 1 : k, a_col = transposed ? m : 1;
                small_gemm::multiply(m, n, k, a.data(), a_row, a_col, b.data(), ldb, c.data(), ldc,
                                     accumulate);
                double worst = 0;
                for (int i = 0; i < m; ++i)
                  for (int j = 0; j < ldc; ++j) {
                    const std::size_t at = std::size_t(i) * ldc + j;
                    if (j >= n) {
                      REQUIRE(c[at] == c0[at]);  // padding: never written
                      continue;
                    }
                    double want = accumulate ? c0[at] : 0;
                    for (int p = 0; p < k; ++p)
                      want += double(a[i * a_row + p * a_col]) * b[std::size_t(p) * ldb + j];
                    worst = std::max(worst, std::fabs(c[at] - want));
                  }
                CHECK(worst <= 1e-5 * (k + 1));
              }
  }
  CHECK(isas_run >= 1);
  REQUIRE(small_gemm::set_isa(saved.c_str()));
}

TEST_CASE("small_gemm: unknown or unsupported instruction sets are refused") {
  const std::string saved = small_gemm::isa();
  CHECK_FALSE(small_gemm::set_isa("sse9"));
  CHECK(small_gemm::isa() == saved);
  CHECK(small_gemm::set_isa("blas"));
  CHECK(std::string(small_gemm::isa()) == "blas");
  REQUIRE(small_gemm::set_isa(saved.c_str()));
}

TEST_CASE("small_gemm: transpose on every instruction set, edge blocks and strides") {
  const std::string saved = small_gemm::isa();
  for (const char* isa : {"avx512", "avx2", "blas"}) {
    if (!small_gemm::set_isa(isa)) continue;
    for (int rows : {1, 7, 8, 9, 64})
      for (int cols : {1, 5, 8, 16, 17, 112}) {
        CAPTURE(isa);
        CAPTURE(rows);
        CAPTURE(cols);
        const long ld_src = cols + 2, ld_dst = rows + 3;
        std::vector<float> src(std::size_t(rows) * ld_src), dst(std::size_t(cols) * ld_dst, -7.f);
        for (std::size_t i = 0; i < src.size(); ++i) src[i] = float(i);
        small_gemm::transpose(rows, cols, src.data(), ld_src, dst.data(), ld_dst);
        int wrong = 0, padding_written = 0;
        for (int j = 0; j < cols; ++j)
          for (long i = 0; i < ld_dst; ++i) {
            const float got = dst[std::size_t(j) * ld_dst + i];
            if (i >= rows) padding_written += got != -7.f;
            else wrong += got != src[std::size_t(i) * ld_src + j];
          }
        CHECK(wrong == 0);
        CHECK(padding_written == 0);
      }
  }
  REQUIRE(small_gemm::set_isa(saved.c_str()));
}
