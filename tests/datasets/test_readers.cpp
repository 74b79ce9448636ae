// IDX and CIFAR-10 readers on small files written here: round trips, then every fault
// a bad file can have, each checked for the exception type and a message naming the
// file and the number that matters.
#include <doctest/doctest.h>

#include "data_files.hpp"

TEST_CASE("IDX round trip, raw and gzip") {
  TempDir dir("flowgrad-data");
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    Bytes images = idx_images(7, 5, 3), labels = idx_labels(7);
    std::string ext = gz ? ".gz" : "";
    (gz ? write_gz : write_raw)(dir / ("train-images-idx3-ubyte" + ext), images);
    (gz ? write_gz : write_raw)(dir / ("train-labels-idx1-ubyte" + ext), labels);
    ImageDataset ds = load_idx_dataset(dir.path.string(), "train");
    REQUIRE(ds.images.shape() == std::vector<std::size_t>{7, 1, 5, 3});
    REQUIRE(ds.size() == 7);
    for (std::size_t i = 0; i < 7; ++i) {
      CHECK(ds.labels[i] == i % 10);
      for (std::size_t k = 0; k < 15; ++k) CHECK(ds.images(i, 0, k / 3, k % 3) == pixel_of(i, k));
    }
    CHECK(contains(ds.source, "train-images-idx3-ubyte" + ext));
    fs::remove(dir / ("train-images-idx3-ubyte" + ext));
    fs::remove(dir / ("train-labels-idx1-ubyte" + ext));
  }
}

TEST_CASE("IDX: .gz is preferred, a raw file is found, gzip is detected by content") {
  TempDir dir("flowgrad-data");
  write_raw(dir / "t10k-images-idx3-ubyte", idx_images(3, 2, 2));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels(3));
  ImageDataset ds = load_idx_dataset(dir.path.string(), "test");
  CHECK(ds.size() == 3);
  // A gzip file without the .gz name and a raw file with it: the magic decides.
  write_gz(dir / "images-gz-without-suffix", idx_images(4, 2, 3));
  write_raw(dir / "raw-with-suffix.gz", idx_images(4, 2, 3));
  CHECK(read_idx_images(dir / "images-gz-without-suffix") == read_idx_images(dir / "raw-with-suffix.gz"));
  // Concatenated gzip members are one valid gzip file.
  Bytes whole = idx_images(4, 2, 3), a(whole.begin(), whole.begin() + 30), b(whole.begin() + 30, whole.end());
  write_gz(dir / "part1", a);
  write_gz(dir / "part2", b);
  Bytes joined = read_raw(dir / "part1"), second = read_raw(dir / "part2");
  joined.insert(joined.end(), second.begin(), second.end());
  write_raw(dir / "joined.gz", joined);
  CHECK(read_idx_images(dir / "joined.gz") == read_idx_images(dir / "raw-with-suffix.gz"));
}

TEST_CASE("IDX faults: missing directory and missing file name what was tried") {
  TempDir dir("flowgrad-data");
  std::string missing = dir / "no-such-dir";
  std::string msg = data_error_of([&] { load_idx_dataset(missing, "train"); });
  CHECK(contains(msg, missing));
  CHECK(contains(msg, "train-images-idx3-ubyte.gz"));
  CHECK(contains(msg, "train-images-idx3-ubyte,"));

  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(2, 2, 2));
  msg = data_error_of([&] { load_idx_dataset(dir.path.string(), "train"); });
  CHECK(contains(msg, dir.path.string()));
  CHECK(contains(msg, "train-labels-idx1-ubyte.gz"));
  CHECK(contains(msg, "train-labels-idx1-ubyte"));

  msg = data_error_of([&] { load_idx_dataset(dir.path.string(), "validation"); });
  CHECK(contains(msg, "validation"));
  msg = data_error_of([&] { read_idx_images(dir / "nothing-here"); });
  CHECK(contains(msg, "nothing-here"));
  CHECK(contains(msg, "cannot open"));
}

TEST_CASE("IDX fault: wrong magic") {
  TempDir dir("flowgrad-data");
  std::string path = dir / "train-images-idx3-ubyte";
  write_raw(path, idx_labels(5));  // a labels file where images are expected
  std::string msg = data_error_of([&] { read_idx_images(path); });
  CHECK(contains(msg, "train-images-idx3-ubyte"));
  CHECK(contains(msg, "0x00000803"));
  CHECK(contains(msg, "0x00000801"));
  write_gz(path + ".gz", idx_images(2, 2, 2, 0x12345678));
  msg = data_error_of([&] { read_idx_images(path + ".gz"); });
  CHECK(contains(msg, "train-images-idx3-ubyte.gz"));
  CHECK(contains(msg, "0x12345678"));
  write_raw(dir / "labels", idx_images(2, 2, 2));
  msg = data_error_of([&] { read_idx_labels(dir / "labels"); });
  CHECK(contains(msg, "0x00000801"));
  CHECK(contains(msg, "0x00000803"));
}

TEST_CASE("IDX fault: truncated data, raw and gzip, names the expected size and the offset") {
  TempDir dir("flowgrad-data");
  Bytes full = idx_images(10, 28, 28);  // 16 + 7840 bytes
  Bytes cut(full.begin(), full.begin() + 1000);
  write_raw(dir / "train-images-idx3-ubyte", cut);
  std::string msg = data_error_of([&] { read_idx_images(dir / "train-images-idx3-ubyte"); });
  CHECK(contains(msg, "train-images-idx3-ubyte"));
  CHECK(contains(msg, "truncated"));
  CHECK(contains(msg, "expected 7856 bytes"));
  CHECK(contains(msg, "offset 1000"));

  // A complete gzip stream whose content is short.
  write_gz(dir / "train-images-idx3-ubyte.gz", cut);
  msg = data_error_of([&] { read_idx_images(dir / "train-images-idx3-ubyte.gz"); });
  CHECK(contains(msg, "train-images-idx3-ubyte.gz"));
  CHECK(contains(msg, "expected 7856 bytes"));
  CHECK(contains(msg, "offset 1000"));

  // A gzip file cut in the middle of its compressed stream.
  write_gz(dir / "whole.gz", full);
  Bytes gz = read_raw(dir / "whole.gz");
  REQUIRE(gz.size() > 40);
  write_raw(dir / "cut.gz", Bytes(gz.begin(), gz.begin() + gz.size() / 2));
  msg = data_error_of([&] { read_idx_images(dir / "cut.gz"); });
  CHECK(contains(msg, "cut.gz"));
  CHECK(contains(msg, "expected 7856 bytes"));
  CHECK(contains(msg, "gzip stream is cut short"));

  // Cut inside the header, and labels cut short.
  write_raw(dir / "short-header", Bytes(full.begin(), full.begin() + 7));
  msg = data_error_of([&] { read_idx_images(dir / "short-header"); });
  CHECK(contains(msg, "short-header"));
  CHECK(contains(msg, "offset 7"));
  Bytes labels = idx_labels(50);
  write_raw(dir / "labels", Bytes(labels.begin(), labels.end() - 8));
  msg = data_error_of([&] { read_idx_labels(dir / "labels"); });
  CHECK(contains(msg, "expected 58 bytes"));
  CHECK(contains(msg, "offset 50"));
}

TEST_CASE("IDX fault: corrupt gzip data and trailing bytes") {
  TempDir dir("flowgrad-data");
  write_gz(dir / "whole.gz", idx_images(10, 28, 28));
  Bytes gz = read_raw(dir / "whole.gz");
  for (std::size_t i = 12; i < gz.size() - 8; ++i) gz[i] ^= 0x5a;
  write_raw(dir / "corrupt.gz", gz);
  std::string msg = data_error_of([&] { read_idx_images(dir / "corrupt.gz"); });
  CHECK(contains(msg, "corrupt.gz"));

  Bytes extra = idx_images(3, 2, 2);
  extra.push_back(0);
  write_raw(dir / "extra", extra);
  msg = data_error_of([&] { read_idx_images(dir / "extra"); });
  CHECK(contains(msg, "extra"));
  CHECK(contains(msg, "trailing"));
  CHECK(contains(msg, "offset 28"));
}

TEST_CASE("IDX fault: image and label counts disagree") {
  TempDir dir("flowgrad-data");
  write_raw(dir / "train-images-idx3-ubyte", idx_images(5, 2, 2));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels(4));
  std::string msg = data_error_of([&] { load_idx_dataset(dir.path.string(), "train"); });
  CHECK(contains(msg, "train-labels-idx1-ubyte.gz"));
  CHECK(contains(msg, "train-images-idx3-ubyte"));
  CHECK(contains(msg, "4 labels"));
  CHECK(contains(msg, "expected 5"));
}

TEST_CASE("IDX fault: dimensions that overflow or exceed the file, or are zero") {
  TempDir dir("flowgrad-data");
  Bytes lying;
  put32(lying, kIdxImagesMagic);
  for (int i = 0; i < 3; ++i) put32(lying, 0xffffffffu);
  write_raw(dir / "overflow", lying);
  std::string msg = data_error_of([&] { read_idx_images(dir / "overflow"); });
  CHECK(contains(msg, "overflow"));
  CHECK(contains(msg, "4294967295 x 4294967295 x 4294967295"));

  // A product that fits in 64 bits but exceeds the data: refused before any allocation.
  Bytes big = idx_images(2, 4, 4);
  big[4] = big[5] = big[6] = big[7] = 0xff;  // N = 4294967295
  big[10] = 0x7f;                             // H = 0x7f04
  write_raw(dir / "huge", big);
  msg = data_error_of([&] { read_idx_images(dir / "huge"); });
  CHECK(contains(msg, "huge"));
  CHECK(contains(msg, "4294967295 images"));
  CHECK(contains(msg, "offset " + std::to_string(big.size())));
  // Compressed, the same lie is refused before inflating: no gzip this small holds that much.
  write_gz(dir / "huge.gz", big);
  msg = data_error_of([&] { read_idx_images(dir / "huge.gz"); });
  CHECK(contains(msg, "huge.gz"));
  CHECK(contains(msg, "4294967295 images"));
  CHECK(contains(msg, "more than a gzip file of " + std::to_string(fs::file_size(dir / "huge.gz")) + " bytes"));

  // The labels count can lie too, raw and compressed.
  Bytes labels = idx_labels(3);
  labels[4] = 0x10;  // 268435459 labels
  write_raw(dir / "labels", labels);
  msg = data_error_of([&] { read_idx_labels(dir / "labels"); });
  CHECK(contains(msg, "268435459 labels"));
  CHECK(contains(msg, "offset 11"));
  write_gz(dir / "labels.gz", labels);
  msg = data_error_of([&] { read_idx_labels(dir / "labels.gz"); });
  CHECK(contains(msg, "268435459 labels"));
  CHECK(contains(msg, "more than a gzip file of"));

  Bytes zero = idx_images(2, 4, 4);
  zero[15] = 0;  // W = 0
  write_raw(dir / "zero-width", zero);
  msg = data_error_of([&] { read_idx_images(dir / "zero-width"); });
  CHECK(contains(msg, "zero-width"));
  CHECK(contains(msg, "offset 12"));
}

TEST_CASE("IDX fault: empty files, raw and gzip") {
  TempDir dir("flowgrad-data");
  write_raw(dir / "train-images-idx3-ubyte", {});
  std::string msg = data_error_of([&] { read_idx_images(dir / "train-images-idx3-ubyte"); });
  CHECK(contains(msg, "train-images-idx3-ubyte"));
  CHECK(contains(msg, "empty file"));
  CHECK(contains(msg, "16-byte"));
  write_gz(dir / "labels.gz", {});
  msg = data_error_of([&] { read_idx_labels(dir / "labels.gz"); });
  CHECK(contains(msg, "labels.gz"));
  CHECK(contains(msg, "8-byte"));
}

TEST_CASE("CIFAR-10 round trip, from the parent folder or the batches folder itself") {
  TempDir dir("flowgrad-data");
  fs::create_directory(dir.path / "cifar-10-batches-bin");
  std::string folder = (dir.path / "cifar-10-batches-bin").string();
  std::size_t first = 0;
  for (int b = 1; b <= 5; ++b) {
    write_raw(folder + "/data_batch_" + std::to_string(b) + ".bin", cifar_records(std::size_t(b), first));
    first += std::size_t(b);
  }
  write_raw(folder + "/test_batch.bin", cifar_records(2, 100));
  for (const std::string& where : {dir.path.string(), folder}) {
    ImageDataset train = load_cifar10(where, "train");
    REQUIRE(train.images.shape() == std::vector<std::size_t>{15, 3, 32, 32});
    for (std::size_t i = 0; i < 15; ++i) {
      CHECK(train.labels[i] == i % 10);
      // Record layout: 1024 R, then G, then B, each row-major 32x32.
      for (std::size_t k : {std::size_t(0), std::size_t(33), std::size_t(1024 + 5 * 32 + 7), std::size_t(3071)})
        CHECK(train.images(i, k / 1024, (k % 1024) / 32, k % 32) == pixel_of(i, k));
    }
    ImageDataset test = load_dataset("cifar10", where, "test");
    REQUIRE(test.size() == 2);
    CHECK(test.labels[1] == 101 % 10);
    CHECK(test.images(1, 2, 31, 31) == pixel_of(101, 3071));
  }
}

TEST_CASE("CIFAR-10 faults: missing, empty, bad size, bad label") {
  TempDir dir("flowgrad-data");
  std::string msg = data_error_of([&] { load_cifar10(dir.path.string(), "test"); });
  CHECK(contains(msg, "test_batch.bin"));
  CHECK(contains(msg, dir.path.string()));
  msg = data_error_of([&] { load_cifar10(dir / "absent", "train"); });
  CHECK(contains(msg, "absent"));
  CHECK(contains(msg, "data_batch_1.bin"));

  write_raw(dir / "test_batch.bin", {});
  msg = data_error_of([&] { load_cifar10(dir.path.string(), "test"); });
  CHECK(contains(msg, "test_batch.bin"));
  CHECK(contains(msg, "empty file"));
  CHECK(contains(msg, "3073"));

  Bytes odd = cifar_records(2, 0);
  odd.resize(odd.size() + 100);  // 6246 bytes
  write_raw(dir / "test_batch.bin", odd);
  msg = data_error_of([&] { load_cifar10(dir.path.string(), "test"); });
  CHECK(contains(msg, "test_batch.bin"));
  CHECK(contains(msg, "6246"));
  CHECK(contains(msg, "3073"));
  CHECK(contains(msg, "offset 6146"));

  Bytes bad = cifar_records(3, 0);
  bad[kCifarRecordBytes] = 12;  // record 1's label
  write_raw(dir / "test_batch.bin", bad);
  msg = data_error_of([&] { load_cifar10(dir.path.string(), "test"); });
  CHECK(contains(msg, "test_batch.bin"));
  CHECK(contains(msg, "label 12"));
  CHECK(contains(msg, "offset 3073"));
  // A label byte of 0x1f followed by 0x8b must not be taken for gzip.
  bad[kCifarRecordBytes] = 0;
  bad[0] = 0x1f;
  bad[1] = 0x8b;
  write_raw(dir / "test_batch.bin", bad);
  msg = data_error_of([&] { load_cifar10(dir.path.string(), "test"); });
  CHECK(contains(msg, "label 31"));
  CHECK(contains(msg, "offset 0"));

  for (int b = 1; b <= 4; ++b) write_raw(dir / ("data_batch_" + std::to_string(b) + ".bin"), cifar_records(1, 0));
  msg = data_error_of([&] { load_cifar10(dir.path.string(), "train"); });
  CHECK(contains(msg, "data_batch_5.bin"));
}

TEST_CASE("load_dataset picks the reader and checks its arguments") {
  TempDir dir("flowgrad-data");
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(4, 3, 3));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels(4));
  for (const char* name : {"mnist", "fashion-mnist"}) {
    ImageDataset ds = load_dataset(name, dir.path.string(), "train");
    CHECK(ds.size() == 4);
    CHECK(contains(ds.source, name));
  }
  CHECK(contains(data_error_of([&] { load_dataset("mnist", "", "train"); }), "mnist"));
  CHECK(contains(data_error_of([&] { load_dataset("cifar10", "", "train"); }), "cifar10"));
  CHECK(contains(data_error_of([&] { load_dataset("svhn", dir.path.string(), "train"); }), "svhn"));
  // An IDX file with zero images is valid IDX but no dataset.
  write_raw(dir / "t10k-images-idx3-ubyte", idx_images(0, 3, 3));
  write_raw(dir / "t10k-labels-idx1-ubyte", idx_labels(0));
  CHECK(load_idx_dataset(dir.path.string(), "test").size() == 0);
  std::string msg = data_error_of([&] { load_dataset("mnist", dir.path.string(), "test"); });
  CHECK(contains(msg, "t10k-images-idx3-ubyte"));
  CHECK(contains(msg, "no images"));
  CHECK(std::string(kFashionMnistDir) == "/usr/share/datasets/fashion-mnist");
}
