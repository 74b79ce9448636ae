// Files made to hurt the readers: sizes that wrap or that no file of this length can
// hold, gzip trailers cut or forged, labels out of range, special files, memory running
// out, and every cut and corrupted byte of a small gzip file. Each must end in a
// DataError naming the file and where, never a crash, a hang or wrong data.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data_files.hpp"

namespace {

Bytes idx_header(std::uint32_t magic, std::vector<std::uint32_t> dims) {
  Bytes b;
  put32(b, magic);
  for (auto d : dims) put32(b, d);
  return b;
}

// Corrupts the deflate data of a gzip file from `from` (a fraction of its length) on,
// leaving the 10-byte header and the 8-byte trailer alone.
Bytes corrupt_tail(Bytes gz, double from) {
  for (std::size_t i = std::size_t(double(gz.size()) * from); i < gz.size() - 8; ++i) gz[i] ^= 0x5a;
  return gz;
}

}  // namespace

TEST_CASE("IDX: dimensions whose product is 2^64-1, or huge beside a count of 0, are refused before allocating") {
  TempDir dir("flowgrad-hostile");
  // 1722007169 * 42009217 * 255 = 2^64 - 1: it used to wrap `offset + n` and end in a
  // bare vector::reserve.
  const Bytes header = idx_header(kIdxImagesMagic, {1722007169u, 42009217u, 255u});
  write_raw(dir / "wrap", header);
  std::string msg = data_error_of([&] { read_idx_images(dir / "wrap"); });
  CHECK(contains(msg, "wrap: dimensions 1722007169 x 42009217 x 255 (header offset 4) overflow"));
  write_gz(dir / "wrap.gz", header);
  msg = data_error_of([&] { read_idx_images(dir / "wrap.gz"); });
  CHECK(contains(msg, "wrap.gz: dimensions 1722007169 x 42009217 x 255 (header offset 4) overflow"));
  // Found by fuzzing: no images of 4294955987x3553874899 overflowed xtensor's signed
  // strides (undefined behaviour) although the data are empty.
  write_raw(dir / "empty-huge", idx_header(kIdxImagesMagic, {0u, 4294955987u, 3553874899u}));
  msg = data_error_of([&] { read_idx_images(dir / "empty-huge"); });
  CHECK(contains(msg, "empty-huge: dimensions 0 x 4294955987 x 3553874899 (header offset 4) overflow"));
  // Below 2^63 and empty: a valid file of no images.
  write_raw(dir / "empty", idx_header(kIdxImagesMagic, {0u, 65536u, 65536u}));
  CHECK(read_idx_images(dir / "empty").shape() == std::vector<std::size_t>{0, 1, 65536, 65536});
}

TEST_CASE("IDX gzip: a size no gzip of this length can hold is refused before inflating") {
  TempDir dir("flowgrad-hostile");
  // As in issue 11: ~100 KB of gzip declaring 280,000 images of 28x28 (220 MB).
  Bytes data = idx_header(kIdxImagesMagic, {280000u, 28u, 28u});
  std::uint32_t x = 1;
  for (int i = 0; i < 100000; ++i) data.push_back(std::uint8_t((x = x * 1664525u + 1013904223u) >> 24));
  write_gz(dir / "lying.gz", data);
  const auto size = fs::file_size(dir / "lying.gz");
  REQUIRE(size * 1032 < 16 + 280000ull * 784);
  // The deflate data after the header are corrupt: an error about them would mean they
  // were inflated.
  write_raw(dir / "lying.gz", corrupt_tail(read_raw(dir / "lying.gz"), 0.5));
  std::string msg = data_error_of([&] { read_idx_images(dir / "lying.gz"); });
  CHECK(contains(msg, "lying.gz"));
  CHECK(contains(msg, "expected 219520016 bytes of decompressed data (16-byte header + 280000 images of 28x28)"));
  CHECK(contains(msg, "more than a gzip file of " + std::to_string(size) + " bytes can hold"));
  CHECK(contains(msg, "1032x"));
  CHECK_FALSE(contains(msg, "corrupt"));

  // The bound is real: zeros compress about as well as deflate allows, and load.
  Bytes dense = idx_header(kIdxImagesMagic, {4u, 1000u, 2500u});
  dense.resize(dense.size() + 4 * 1000 * 2500, 0);
  write_gz_level(dir / "zeros.gz", dense, 9);
  const double ratio = double(dense.size()) / double(fs::file_size(dir / "zeros.gz"));
  MESSAGE("10 MB of zeros compress " << ratio << "x");
  CHECK(ratio > 1000);
  CHECK(read_idx_images(dir / "zeros.gz").shape() == std::vector<std::size_t>{4, 1, 1000, 2500});
}

TEST_CASE("IDX gzip: a cut trailer, a wrong CRC-32 and a wrong length are refused") {
  TempDir dir("flowgrad-hostile");
  write_gz(dir / "whole.gz", idx_images(3, 4, 4));
  const Bytes gz = read_raw(dir / "whole.gz");
  for (std::size_t cut = 1; cut <= 8; ++cut) {
    CAPTURE(cut);
    write_raw(dir / "cut.gz", Bytes(gz.begin(), gz.end() - long(cut)));
    const std::string msg = data_error_of([&] { read_idx_images(dir / "cut.gz"); });
    CHECK(contains(msg, "cut.gz: the gzip stream is cut short at compressed offset"));
    CHECK(contains(msg, "CRC-32 and length trailer"));
  }
  Bytes bad_crc = gz;
  bad_crc[gz.size() - 8] ^= 1;
  write_raw(dir / "crc.gz", bad_crc);
  std::string msg = data_error_of([&] { read_idx_images(dir / "crc.gz"); });
  CHECK(contains(msg, "crc.gz: the CRC-32 in the gzip trailer does not match"));
  CHECK(contains(msg, "decompressed offset 64"));
  Bytes bad_length = gz;
  bad_length[gz.size() - 4] ^= 1;
  write_raw(dir / "length.gz", bad_length);
  msg = data_error_of([&] { read_idx_images(dir / "length.gz"); });
  CHECK(contains(msg, "length.gz: the length (ISIZE) in the gzip trailer does not match"));

  // Labels end the same way.
  write_gz(dir / "labels.gz", idx_labels(5));
  const Bytes labels = read_raw(dir / "labels.gz");
  write_raw(dir / "labels-cut.gz", Bytes(labels.begin(), labels.end() - 3));
  msg = data_error_of([&] { read_idx_labels(dir / "labels-cut.gz"); });
  CHECK(contains(msg, "labels-cut.gz: the gzip stream is cut short"));
  CHECK(contains(msg, "8-byte header + 5 labels"));
}

TEST_CASE("IDX labels outside 0..9 are refused, naming the offset and the record") {
  TempDir dir("flowgrad-hostile");
  Bytes labels = idx_labels(12);
  labels[8 + 10] = 10;
  write_raw(dir / "labels", labels);
  std::string msg = data_error_of([&] { read_idx_labels(dir / "labels"); });
  CHECK(contains(msg, "labels: label 10 at offset 18 (record 10): expected a class in 0..9"));
  labels[8 + 10] = 0;
  labels[8 + 11] = 255;
  write_gz(dir / "labels.gz", labels);
  msg = data_error_of([&] { read_idx_labels(dir / "labels.gz"); });
  CHECK(contains(msg, "labels.gz: label 255 at offset 19 (record 11)"));
}

TEST_CASE("IDX: labels are counted and range-checked before the images are inflated") {
  TempDir dir("flowgrad-hostile");
  write_gz(dir / "whole.gz", idx_images(5, 28, 28));
  // Images whose deflate data are corrupt past the header.
  write_raw(dir / "train-images-idx3-ubyte.gz", corrupt_tail(read_raw(dir / "whole.gz"), 0.6));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels(5));
  std::string msg = data_error_of([&] { load_idx_dataset(dir.path.string(), "train"); });
  CHECK(contains(msg, "train-images-idx3-ubyte.gz: "));  // they are corrupt
  CHECK_FALSE(contains(msg, "labels"));

  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels(4));
  msg = data_error_of([&] { load_idx_dataset(dir.path.string(), "train"); });
  CHECK(contains(msg, "train-labels-idx1-ubyte.gz: 4 labels, expected 5"));
  CHECK(contains(msg, "image count at offset 4 of"));

  Bytes bad = idx_labels(5);
  bad[8 + 2] = 77;
  write_gz(dir / "train-labels-idx1-ubyte.gz", bad);
  msg = data_error_of([&] { load_idx_dataset(dir.path.string(), "train"); });
  CHECK(contains(msg, "train-labels-idx1-ubyte.gz: label 77 at offset 10 (record 2)"));
}

TEST_CASE("Readers refuse a FIFO, a device and a directory at once, without blocking") {
  TempDir dir("flowgrad-hostile");
  REQUIRE(::mkfifo((dir / "train-images-idx3-ubyte").c_str(), 0600) == 0);
  std::string msg = data_error_of([&] { read_idx_images(dir / "train-images-idx3-ubyte"); });
  CHECK(contains(msg, "train-images-idx3-ubyte: expected a regular file, found a FIFO"));

  fs::create_symlink("/dev/zero", dir / "test_batch.bin");
  msg = data_error_of([&] { load_cifar10(dir.path.string(), "test"); });
  CHECK(contains(msg, "test_batch.bin: expected a regular file, found a character device"));

  fs::create_directory(dir / "labels");
  msg = data_error_of([&] { read_idx_labels(dir / "labels"); });
  CHECK(contains(msg, "labels: expected a file, found a directory"));
}

TEST_CASE("Running out of memory is a DataError naming the size, not std::bad_alloc") {
#ifdef FLOWGRAD_UNDER_ASAN
  MESSAGE("skipped under AddressSanitizer: it reserves terabytes of address space, so RLIMIT_AS cannot be used");
#else
  TempDir dir("flowgrad-hostile");
  // A valid raw file of 1.6 GB, sparse on disk, read by a child whose address space
  // allows 512 MB more than it already has.
  const std::string path = dir / "big";
  write_raw(path, idx_header(kIdxImagesMagic, {1u, 40000u, 40000u}));
  fs::resize_file(path, 16 + 1600000000ull);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    long pages = 0;
    std::ifstream("/proc/self/statm") >> pages;
    const rlim_t limit = rlim_t(pages) * rlim_t(::sysconf(_SC_PAGESIZE)) + (rlim_t(512) << 20);
    const rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_AS, &rl) != 0) ::_exit(3);
    try {
      read_idx_images(path);
      ::_exit(4);
    } catch (const DataError& e) {
      ::_exit(contains(e.what(), "big: cannot allocate 1600000000 bytes for 16-byte header + 1 images of "
                                 "40000x40000: out of memory") ? 0 : 5);
    } catch (...) {
      ::_exit(6);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // 4: loaded, 5: another message, 6: another exception
#endif
}

TEST_CASE("Every cut and every corrupted byte of a gzip IDX file is refused or loads the same data") {
  TempDir dir("flowgrad-hostile");
  for (bool images : {true, false}) {
    CAPTURE(images);
    const std::string path = dir / "file.gz";
    write_gz(path, images ? idx_images(2, 3, 3) : idx_labels(20));
    const Bytes gz = read_raw(path);
    auto load = [&]() -> Bytes {
      if (!images) return read_idx_labels(path);
      const auto a = read_idx_images(path);
      return Bytes(a.begin(), a.end());
    };
    const Bytes original = load();
    for (std::size_t len = 0; len < gz.size(); ++len) {
      CAPTURE(len);
      write_raw(path, Bytes(gz.begin(), gz.begin() + long(len)));
      CHECK(contains(data_error_of(load), "file.gz"));
    }
    std::size_t refused = 0, loaded = 0;
    for (std::size_t i = 0; i < gz.size(); ++i) {
      for (std::uint8_t change : {0x01, 0x80, 0xff}) {
        CAPTURE(i);
        CAPTURE(int(change));
        Bytes corrupt = gz;
        corrupt[i] ^= change;
        write_raw(path, corrupt);
        try {
          const Bytes got = load();
          CHECK(got == original);  // only bytes nothing reads: MTIME, XFL, OS, padding bits
          ++loaded;
        } catch (const DataError& e) {
          CHECK(contains(e.what(), "file.gz"));
          ++refused;
        }
      }
    }
    MESSAGE(refused << " corruptions refused, " << loaded << " loaded the same data");
    CHECK(refused > 3 * (gz.size() - 10));  // everything but the header's free fields
  }
}

TEST_CASE("CIFAR-10: the last record's label, a directory, a file of one byte") {
  TempDir dir("flowgrad-hostile");
  Bytes records = cifar_records(4, 0);
  records[3 * kCifarRecordBytes] = 255;
  write_raw(dir / "test_batch.bin", records);
  std::string msg = data_error_of([&] { load_cifar10(dir.path.string(), "test"); });
  CHECK(contains(msg, "test_batch.bin: label 255 at offset 9219 (record 3)"));

  fs::remove(dir / "test_batch.bin");
  fs::create_directory(dir / "test_batch.bin");
  msg = data_error_of([&] { load_cifar10(dir.path.string(), "test"); });
  CHECK(contains(msg, "test_batch.bin: expected a file, found a directory"));

  write_raw(dir / "one", Bytes{3});
  msg = data_error_of([&] { read_cifar10_file(dir / "one"); });
  CHECK(contains(msg, "one: size 1 is not a multiple of the 3073-byte record"));
  CHECK(contains(msg, "from offset 0"));
}
