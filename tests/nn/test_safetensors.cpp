// safetensors reading/writing, module state files, and training checkpoints.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>
#include <xtensor/xadapt.hpp>

#include "support.hpp"
#include "autograd/autograd.hpp"
#include "nn/activation.hpp"
#include "nn/checkpoint.hpp"
#include "nn/linear.hpp"
#include "nn/optim.hpp"
#include "nn/safetensors.hpp"
#include "nn/sequential.hpp"

using namespace flowgrad;
namespace fs = std::filesystem;
using flowgrad::testing::contains;
using flowgrad::testing::temp_files_in;

namespace {

// A fresh directory, removed with everything in it at the end of the test.
struct TmpDir {
  fs::path path;
  TmpDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("flowgrad-test-safetensors-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TmpDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::remove(path);  // rewriting in place would make ext4 flush on close (auto_da_alloc): slow
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// 8-byte little-endian length, header, data.
std::string raw_file(const std::string& header, const std::string& data, std::uint64_t len) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char(len >> (8 * i));
  return out + header + data;
}
std::string raw_file(const std::string& header, const std::string& data) {
  return raw_file(header, data, header.size());
}

// The message of the SafetensorsError that loading path throws; any other exception
// escapes and fails the test.
std::string load_error(const std::string& path) {
  try {
    nn::load_safetensors(path);
  } catch (const nn::SafetensorsError& e) {
    return e.what();
  }
  return "(no error)";
}

template <class T>
std::shared_ptr<nn::Sequential<T>> mlp(std::size_t in, std::size_t hidden, std::size_t out) {
  auto net = std::make_shared<nn::Sequential<T>>();
  net->push_back(std::make_shared<nn::Linear<T>>(in, hidden));
  net->push_back(std::make_shared<nn::ReLU<T>>());
  net->push_back(std::make_shared<nn::Linear<T>>(hidden, out));
  return net;
}

nn::NamedValues sample_tensors() {
  nn::NamedValues v;
  v.emplace_back("weights", xt::xarray<float>{{1.5f, -2.f, 3.25f}, {0.f, 1e-30f, -7.f}});
  v.emplace_back("scalar", xt::xarray<double>(3.141592653589793));
  v.emplace_back("counts", xt::xarray<std::int64_t>{-1, 0, std::int64_t(1) << 40, 7});
  v.emplace_back("bytes", xt::xarray<std::uint8_t>{{{0, 1}, {2, 255}}, {{9, 8}, {7, 6}}});
  v.emplace_back("empty", xt::xarray<float>::from_shape({0, 3}));
  return v;
}

bool same_value(const nn::TensorValue& a, const nn::TensorValue& b) {
  if (a.index() != b.index() || nn::shape_of(a) != nn::shape_of(b)) return false;
  return std::visit(
      [&](const auto& x) {
        const auto& y = std::get<std::decay_t<decltype(x)>>(b);
        return x.size() == 0 || std::memcmp(x.data(), y.data(), x.size() * sizeof(*x.data())) == 0;  // empty: null data
      },
      a);
}

}  // namespace

TEST_CASE("safetensors round trip keeps dtypes, shapes, values, order and metadata") {
  TmpDir dir;
  const std::string path = dir.file("a.safetensors");
  const auto tensors = sample_tensors();
  const nn::Metadata meta = {{"config", R"({"model": "nice", "lr": 0.001})"}, {"step", "12"}};
  nn::save_safetensors(path, tensors, meta);
  CHECK(temp_files_in(dir.path).empty());

  const nn::SafeTensors got = nn::load_safetensors(path);
  REQUIRE(got.tensors.size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    CAPTURE(tensors[i].first);
    CHECK(got.tensors[i].first == tensors[i].first);
    CHECK(same_value(got.tensors[i].second, tensors[i].second));
  }
  CHECK(got.metadata == meta);
  CHECK(nn::dtype_of(*got.find("counts")) == nn::DType::I64);
  CHECK(got.find("nope") == nullptr);
  CHECK(nn::float_array<double>(*got.find("weights"), "w")(0, 2) == 3.25);
  CHECK_THROWS_WITH(nn::float_array<float>(*got.find("counts"), "counts"), doctest::Contains("counts"));

  // The header is padded so the data starts 8-byte aligned, as Python writes it.
  const std::string bytes = read_bytes(path);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(std::uint8_t(bytes[i])) << (8 * i);
  CHECK((8 + n) % 8 == 0);
  CHECK(bytes.size() == 8 + n + 6 * 4 + 8 + 4 * 8 + 8);

  CHECK_THROWS_WITH(nn::save_safetensors(path, nn::NamedValues{{"x", xt::xarray<float>{1}}, {"x", xt::xarray<float>{2}}}),
                    doctest::Contains("'x' appears twice"));
  CHECK_THROWS_WITH(nn::save_safetensors(path, nn::NamedValues{{"__metadata__", xt::xarray<float>{1}}}),
                    doctest::Contains("reserved"));
  CHECK(nn::load_safetensors(path).tensors.size() == tensors.size());  // failed saves changed nothing
}

TEST_CASE("malformed safetensors files each give an error naming the file and the problem") {
  TmpDir dir;
  const std::string f32_entry = R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  struct Case {
    const char* what;
    std::string bytes;
    const char* expected;
  };
  const std::string eight(8, '\1');
  std::string many_ones = "1";
  for (std::size_t i = 0; i < nn::kMaxRank; ++i) many_ones += ", 1";
  const std::vector<Case> cases = {
      {"shorter than 8 bytes", "\x10\0\0\0", "too short"},
      {"header length above 100 MB", raw_file("{}", "", 200u << 20), "100 MB limit"},
      {"header length past the end", raw_file("{}", "", 100), "runs past the end"},
      {"invalid JSON", raw_file(R"({"a": {"dtype": )", ""), "not valid JSON"},
      {"not an object", raw_file("[1, 2]", ""), "not a JSON object"},
      {"unknown dtype", raw_file(R"({"a": {"dtype": "Q8", "shape": [2], "data_offsets": [0, 8]}})", eight),
       "unknown dtype 'Q8'"},
      {"unsupported dtype", raw_file(R"({"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}})", eight),
       "F16 is not supported"},
      {"offsets past the end", raw_file(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", eight),
       "past the 8-byte data buffer"},
      {"begin > end", raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", eight),
       "begin 8 > end 4"},
      {"size does not match shape", raw_file(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", eight),
       "needs 12"},
      {"overlapping tensors",
       raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", eight + "1234"),
       "'a' and 'b' overlap"},
      {"bytes covered by no tensor",
       raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", eight), "belong to no tensor"},
      {"non-integer shape", raw_file(R"({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", eight),
       "non-integer"},
      {"negative shape", raw_file(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", eight),
       "non-integer or negative"},
      {"shape not a list", raw_file(R"({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", eight),
       "shape is not a list"},
      {"shape overflows",
       raw_file(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})", eight),
       "too large"},
      {"offsets not two integers", raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", eight),
       "data_offsets"},
      {"missing field", raw_file(R"({"a": {"dtype": "F32", "shape": [2]}})", eight), "missing field 'data_offsets'"},
      {"duplicate names", raw_file("{" + f32_entry + ", " + f32_entry + "}", eight), "'a' appears twice"},
      {"metadata value not a string", raw_file(R"({"__metadata__": {"step": 3}})", ""), "not a string"},
      {"nested too deep", raw_file(R"({"a": {"shape": [[[1]]]}})", ""), "nested"},
      {"number too large for a double", raw_file(R"({"__metadata__": {"k": "v"}, "x": 1e999})", ""),
       "not valid JSON"},
      {"more dimensions than any tensor has",
       raw_file(R"({"a": {"dtype": "U8", "shape": [)" + many_ones + R"(], "data_offsets": [0, 1]}})", "x"),
       "more than 64 entries"},
      {"a zero beside dimensions whose product overflows",
       raw_file(R"({"a": {"dtype": "U8", "shape": [0, 4294967296, 4294967296], "data_offsets": [0, 0]}})", ""),
       "too large"},
      {"a zero beside dimensions past any array size",
       raw_file(R"({"a": {"dtype": "U8", "shape": [0, 9223372036854775808], "data_offsets": [0, 0]}})", ""),
       "too large"},
      {"begin past the end of the file",
       raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551615, 4]}})", "1234"),
       "begin 18446744073709551615 > end 4"},
  };
  for (auto& c : cases) {
    CAPTURE(c.what);
    const std::string path = dir.file(std::string(c.what) + ".safetensors");
    write_bytes(path, c.bytes);
    const std::string msg = load_error(path);
    CAPTURE(msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find(c.expected) != std::string::npos);
    CHECK(msg.find("byte offset") != std::string::npos);
  }
  CHECK(load_error(dir.file("missing.safetensors")).find("missing.safetensors: cannot open") != std::string::npos);
  CHECK(load_error(dir.path.string()).find("not a regular file") != std::string::npos);
}

TEST_CASE("every truncation and every corrupted header byte fails cleanly or loads") {
  TmpDir dir;
  const std::string good = dir.file("good.safetensors");
  nn::save_safetensors(good, sample_tensors(), {{"k", "v"}});
  const std::string bytes = read_bytes(good);
  const std::string path = dir.file("bad.safetensors");
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    CAPTURE(len);
    write_bytes(path, bytes.substr(0, len));
    CHECK_THROWS_AS(nn::load_safetensors(path), nn::SafetensorsError);
  }
  std::size_t loaded = 0, refused = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char replacement : {'\0', '9', '"', '}', '\xff'}) {
      std::string corrupt = bytes;
      if (corrupt[i] == char(replacement)) continue;
      corrupt[i] = char(replacement);
      write_bytes(path, corrupt);
      CAPTURE(i);
      try {
        nn::load_safetensors(path);
        ++loaded;
      } catch (const nn::SafetensorsError& e) {
        ++refused;
        CHECK(std::string(e.what()).find(path) != std::string::npos);
      }
    }
  }
  MESSAGE(refused << " corruptions refused, " << loaded << " loaded (data bytes, spaces, digits)");
  CHECK(refused > 0);
}

TEST_CASE("hostile safetensors files: a FIFO, huge names, offsets past the file, odd but valid names") {
  TmpDir dir;
  // A FIFO with no writer would block an ordinary open.
  const std::string fifo = dir.file("fifo.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(load_error(fifo) == "safetensors " + fifo + ": not a regular file");

  // A 100 KB name is shown shortened.
  const std::string long_name(100000, 'n');
  const std::string named = dir.file("long-name.safetensors");
  write_bytes(named, raw_file(R"({")" + long_name + R"(": {"dtype": "Q8", "shape": [], "data_offsets": [0, 0]}})", ""));
  std::string msg = load_error(named);
  CHECK(msg.find("unknown dtype 'Q8'") != std::string::npos);
  CHECK(msg.find("...(100000 bytes)") != std::string::npos);
  CHECK(msg.size() < 400);

  // An offset that lies is reported at a place inside the file.
  const std::string lying = dir.file("lying.safetensors");
  const std::string bytes =
      raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551615, 4]}})", "1234");
  write_bytes(lying, bytes);
  CHECK(load_error(lying).find("(at byte offset " + std::to_string(bytes.size()) + ")") != std::string::npos);

  // Valid but unusual: an empty name, a non-ASCII name, zero-size tensors sharing an
  // offset, a scalar. They load, and survive a save and a load unchanged.
  const std::string odd = dir.file("odd.safetensors");
  write_bytes(odd, raw_file(R"({"": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]},)"
                            R"( "\u00e9t\u00e9": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]},)"
                            R"( "z": {"dtype": "F64", "shape": [3, 0], "data_offsets": [0, 0]}})",
                            std::string("\x07\0\0\0\0\0\0\x80", 8)));
  const nn::SafeTensors first = nn::load_safetensors(odd);
  REQUIRE(first.tensors.size() == 3);
  const nn::TensorValue* ete = first.find("\xc3\xa9t\xc3\xa9");
  REQUIRE(ete != nullptr);
  CHECK(std::get<xt::xarray<std::int64_t>>(*ete)() == std::numeric_limits<std::int64_t>::min() + 7);
  nn::save_safetensors(dir.file("again.safetensors"), first.tensors, first.metadata);
  const nn::SafeTensors second = nn::load_safetensors(dir.file("again.safetensors"));
  REQUIRE(second.tensors.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(second.tensors[i].first == first.tensors[i].first);
    CHECK(same_value(second.tensors[i].second, first.tensors[i].second));
  }
}

TEST_CASE("a failed write leaves the previous file intact") {
  TmpDir dir;
  const std::string path = dir.file("model.safetensors");
  nn::NamedValues old = {{"x", xt::xarray<float>{1, 2, 3}}};
  nn::save_safetensors(path, old);
  const std::string before = read_bytes(path);

  // A full disk: the file-size limit makes writes fail with EFBIG (SIGXFSZ ignored), the
  // way ENOSPC would. The error names the file and the reason; nothing is left behind.
  {
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    rlimit small = saved;
    small.rlim_cur = 20;  // bytes: less than any safetensors file
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string msg;
    try {
      nn::save_safetensors(path, nn::NamedValues{{"x", xt::xarray<float>{4, 5}}});
    } catch (const nn::SafetensorsError& e) {
      msg = e.what();
    }
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &saved) == 0);
    std::signal(SIGXFSZ, old_handler);
    CHECK(contains(msg, path));
    CHECK(contains(msg, std::strerror(EFBIG)));
    CHECK(contains(msg, "left as it was"));
  }
  CHECK(read_bytes(path) == before);
  CHECK(temp_files_in(dir.path).empty());
  // A leftover temp file of a killed writer, or a directory in the way, does not block a write.
  fs::create_directory(path + ".tmp");
  write_bytes(path + ".tmp." + std::to_string(::getpid()) + ".0", "half a file");
  nn::save_safetensors(path, old);
  CHECK(read_bytes(path) == before);
  CHECK(fs::is_directory(path + ".tmp"));  // not ours to delete
  fs::remove(path + ".tmp");
  fs::remove(path + ".tmp." + std::to_string(::getpid()) + ".0");

  // A directory that does not exist.
  CHECK_THROWS_WITH_AS(nn::save_safetensors(dir.file("no/such/dir.safetensors"), old),
                       doctest::Contains("no/such/dir.safetensors"), nn::SafetensorsError);

  // A read-only directory (root ignores permissions, so only checked for other users).
  if (::geteuid() != 0) {
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
    CHECK_THROWS_AS(nn::save_safetensors(path, nn::NamedValues{{"x", xt::xarray<float>{4, 5}}}), nn::SafetensorsError);
    fs::permissions(dir.path, fs::perms::owner_all);
    CHECK(read_bytes(path) == before);
    CHECK(temp_files_in(dir.path).empty());
  }

  nn::save_safetensors(path, nn::NamedValues{{"x", xt::xarray<float>{4, 5}}});
  CHECK(nn::load_safetensors(path).tensors[0].second == nn::TensorValue(xt::xarray<float>{4, 5}));
  CHECK(temp_files_in(dir.path).empty());
}

TEST_CASE("the names of temp files: ours, and the older NAME.tmp; nothing else") {
  for (const char* name : {"checkpoint.safetensors.tmp.123.0", "config.json.tmp.1.17", "curve.svg.tmp"})
    CHECK_MESSAGE(is_temp_file_name(name), name);
  for (const char* name : {"checkpoint.safetensors", "notes.tmp.txt", "a.tmp.12", "a.tmp.1.2.3", "a.tmp.x.1", ".tmp",
                           "a.tmp.1.", "a.tmp..1", "my.tmp.files.json"})
    CHECK_MESSAGE(!is_temp_file_name(name), name);
}

TEST_CASE("Python reads our files and we read Python's") {
  const std::string ref = FLOWGRAD_SOURCE_DIR "/../shared/reference";
  if (!fs::exists(ref + "/torch_flows.py") || !fs::exists("/usr/bin/python3")) {
    MESSAGE("skipped: needs /usr/bin/python3 and " << ref << "/torch_flows.py");
    return;
  }
  TmpDir dir;
  const std::string ours = dir.file("ours.safetensors"), theirs = dir.file("theirs.safetensors");
  const auto tensors = sample_tensors();
  nn::save_safetensors(ours, tensors, {{"note", "from C++"}});
  // A module file, loaded by torch.nn.Sequential.load_state_dict, must compute what we compute.
  manual_seed(11);
  auto net = mlp<float>(3, 16, 2);
  const Tensor<float> x(normal<float>({5, 3}));
  const std::string module_file = dir.file("mlp.safetensors"), io_file = dir.file("io.safetensors");
  nn::save_module(module_file, *net);
  nn::save_safetensors(io_file, nn::NamedValues{{"x", x.value()}, {"y", net->forward(x).value()}});
  // Reads ours with the reference's read_safetensors; writes theirs in the layout of the
  // safetensors package (compact JSON, __metadata__ first, sorted, padded to 8 bytes).
  const std::string script = dir.file("interop.py");
  std::ofstream(script) << R"(import json, struct, sys
sys.path.insert(0, sys.argv[1])
try:
    import numpy as np
    from torch_flows import read_safetensors
except ImportError:
    sys.exit(77)
t = read_safetensors(sys.argv[2])
seen = {k: [str(v.dtype), list(v.shape), v.flatten().tolist()] for k, v in t.items()}
import torch
net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
net.load_state_dict(read_safetensors(sys.argv[4]))
io = read_safetensors(sys.argv[5])
seen["mlp_max_abs_diff"] = (net(io["x"]) - io["y"]).abs().max().item()
print(json.dumps(seen))
arrays = {"b.weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "a.bias": np.array([1e-300, -2.5]),
          "a.count": np.array(5, dtype=np.int64), "img": np.arange(4, dtype=np.uint8)}
kinds = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8"}
header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
for k in sorted(arrays, key=lambda k: (-arrays[k].itemsize, k)):
    b = arrays[k].tobytes()
    header[k] = {"dtype": kinds[arrays[k].dtype], "shape": list(arrays[k].shape), "data_offsets": [at, at + len(b)]}
    blobs.append(b); at += len(b)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[3], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
)";
  const std::string out = dir.file("out.json");
  const std::string cmd = "/usr/bin/python3 " + script + " " + ref + " " + ours + " " + theirs + " " + module_file + " " + io_file + " > " + out;
  const int status = std::system(cmd.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    MESSAGE("skipped: /usr/bin/python3 cannot import numpy and torch");
    return;
  }
  REQUIRE(status == 0);

  const auto seen = nlohmann::json::parse(read_bytes(out));
  CHECK(seen.size() == tensors.size() + 1);
  CHECK(seen["mlp_max_abs_diff"].get<double>() < 1e-6);
  CHECK(seen["weights"][0] == "torch.float32");
  CHECK(seen["weights"][1] == nlohmann::json::array({2, 3}));
  CHECK(seen["weights"][2] == nlohmann::json::array({1.5, -2.0, 3.25, 0.0, double(1e-30f), -7.0}));
  CHECK(seen["scalar"][0] == "torch.float64");
  CHECK(seen["scalar"][1].empty());
  CHECK(seen["scalar"][2][0].get<double>() == 3.141592653589793);
  CHECK(seen["counts"][2] == nlohmann::json::array({-1, 0, std::int64_t(1) << 40, 7}));
  CHECK(seen["bytes"][0] == "torch.uint8");
  CHECK(seen["bytes"][2] == nlohmann::json::array({0, 1, 2, 255, 9, 8, 7, 6}));
  CHECK(seen["empty"][1] == nlohmann::json::array({0, 3}));

  const nn::SafeTensors py = nn::load_safetensors(theirs);
  CHECK(py.metadata.at("format") == "pt");
  CHECK(nn::float_array<float>(*py.find("b.weight"), "")(1, 2) == 5.f / 7.f);
  CHECK(std::get<xt::xarray<double>>(*py.find("a.bias"))(0) == 1e-300);
  CHECK(std::get<xt::xarray<std::int64_t>>(*py.find("a.count"))() == 5);
  CHECK(std::get<xt::xarray<std::uint8_t>>(*py.find("img")) == xt::xarray<std::uint8_t>{0, 1, 2, 3});
}

TEST_CASE("save_module / load_module: a fresh model computes bit-identical outputs") {
  TmpDir dir;
  const std::string path = dir.file("mlp.safetensors");
  manual_seed(1);
  auto net = mlp<float>(3, 16, 2);
  const Tensor<float> x(normal<float>({5, 3}));
  const xt::xarray<float> y = net->forward(x).value();
  nn::save_module(path, *net, {{"arch", "mlp 3-16-2"}});

  const auto file = nn::load_safetensors(path);
  std::vector<std::string> names;
  for (auto& [name, v] : file.tensors) {
    names.push_back(name);
    CHECK(nn::dtype_of(v) == nn::DType::F32);
  }
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});

  auto fresh = mlp<float>(3, 16, 2);
  CHECK_FALSE(fresh->forward(x).value() == y);
  const nn::Metadata meta = nn::load_module(path, *fresh);
  CHECK(meta.at("arch") == "mlp 3-16-2");
  CHECK(fresh->forward(x).value() == y);  // exactly

  // A double module writes F64; loading it into a float module rounds each value.
  auto wide = mlp<double>(3, 16, 2);
  nn::save_module(path, *wide);
  CHECK(nn::dtype_of(nn::load_safetensors(path).tensors[0].second) == nn::DType::F64);
  nn::load_module(path, *fresh);
  const auto& layer0 = dynamic_cast<nn::Linear<float>&>((*fresh)[0]);  // the layer sees the loaded values
  CHECK(layer0.weight.value() == xt::xarray<float>(wide->named_parameters()[0].second.value()));
}

TEST_CASE("load_module names every missing, unexpected and mis-shaped tensor, and changes nothing") {
  TmpDir dir;
  const std::string path = dir.file("other.safetensors");
  nn::NamedValues file;
  file.emplace_back("0.weight", xt::xarray<float>::from_shape({4, 2}));  // shape: (5, 2) expected
  file.emplace_back("0.bias", xt::xarray<std::int64_t>::from_shape({5}));  // dtype
  file.emplace_back("2.bias", xt::xarray<double>{0.5});                    // fine
  file.emplace_back("junk", xt::xarray<float>{1});                          // unexpected
  file.emplace_back("3.weight", xt::xarray<float>{1});                      // unexpected
  nn::save_safetensors(path, file);                                         // 2.weight missing

  auto net = mlp<float>(2, 5, 1);
  const auto before = net->named_parameters()[3].second.value();
  try {
    nn::load_module(path, *net);
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("1 missing (2.weight)") != std::string::npos);
    CHECK(msg.find("2 unexpected (junk, 3.weight)") != std::string::npos);
    CHECK(msg.find("0.weight: found F32 (4, 2), expected (5, 2)") != std::string::npos);
    CHECK(msg.find("0.bias: found I64 (5,), expected (5,)") != std::string::npos);
  }
  CHECK(net->named_parameters()[3].second.value() == before);  // 2.bias not loaded either
}

namespace {

// Regression with input noise drawn from the global generator, warmup, cosine decay,
// clipping and a moving average: a resumed run only matches if model, optimizer, average,
// step count and generator are all restored.
struct Run {
  std::shared_ptr<nn::Sequential<float>> net = mlp<float>(2, 8, 1);
  std::unique_ptr<nn::Optimizer<float>> opt;
  nn::ExponentialMovingAverage<float> ema{net->named_parameters(), 0.9};
  Tensor<float> x{xt::xarray<float>{{0.1f, 0.2f}, {-0.5f, 0.3f}, {0.9f, -0.7f}, {0.0f, 1.0f}}};
  Tensor<float> y{xt::xarray<float>(xt::adapt(std::vector<float>{0.3f, -0.1f, 0.5f, 0.8f}, {4, 1}))};

  explicit Run(const std::string& kind) {
    if (kind == "adam") opt = std::make_unique<nn::Adam<float>>(net->named_parameters(), 0.05);
    if (kind == "adamax") opt = std::make_unique<nn::Adamax<float>>(net->named_parameters(), 0.05);
    if (kind == "sgd") opt = std::make_unique<nn::SGD<float>>(net->named_parameters(), 0.05, 0.9, 1e-4, true);
  }
  void steps(int n) {
    const nn::LearningRateSchedule schedule{0.05, 5, 0, 20};
    for (int i = 0; i < n; ++i) {
      opt->set_lr(schedule.lr(opt->step_count()));
      opt->zero_grad();
      Tensor<float> noisy = x + Tensor<float>(normal<float>({4, 2}, 0, 0.1f));
      Tensor<float> d = net->forward(noisy) - y;
      mean(d * d).backward();
      nn::clip_grad_norm(net->named_parameters(), 0.5);
      opt->step();
      ema.update();
    }
  }
};

}  // namespace

TEST_CASE("a checkpoint resumes training bit-identically") {
  TmpDir dir;
  for (const std::string kind : {"adam", "adamax", "sgd"}) {
    CAPTURE(kind);
    const std::string path = dir.file(kind + ".safetensors");
    manual_seed(42);
    Run straight(kind);
    straight.steps(20);

    manual_seed(42);
    Run first(kind);
    first.steps(10);
    nn::save_checkpoint(path, *first.net, *first.opt, {{"config", R"({"kind": ")" + kind + "\"}"}}, &first.ema);

    manual_seed(5);  // a different init and generator state, all to be overwritten
    Run resumed(kind);
    const nn::Metadata meta = nn::load_checkpoint(path, *resumed.net, *resumed.opt, true, &resumed.ema);
    CHECK(meta.at("step") == "10");
    CHECK(meta.at("config") == R"({"kind": ")" + kind + "\"}");
    CHECK(resumed.opt->step_count() == 10);
    resumed.steps(10);

    const auto a = straight.net->named_parameters(), b = resumed.net->named_parameters();
    for (std::size_t i = 0; i < a.size(); ++i) {
      CAPTURE(a[i].first);
      CHECK(a[i].second.value() == b[i].second.value());  // exactly
    }
    // The averages too: swapped in, they are the parameters.
    CHECK(resumed.ema.updates() == 20);
    straight.ema.swap(), resumed.ema.swap();
    for (std::size_t i = 0; i < a.size(); ++i) {
      CAPTURE(a[i].first);
      CHECK(a[i].second.value() == b[i].second.value());
    }
  }
}

TEST_CASE("a checkpoint that does not fit changes neither model, optimizer nor generator") {
  TmpDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  manual_seed(3);
  Run adam("adam");
  adam.steps(3);
  nn::save_checkpoint(path, *adam.net, *adam.opt);

  Run sgd("sgd");
  sgd.steps(2);
  const auto before = sgd.net->named_parameters()[0].second.value();
  const std::string rng = generator_state();
  try {
    nn::load_checkpoint(path, *sgd.net, *sgd.opt);
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("adam.exp_avg.0.weight") != std::string::npos);
  }
  CHECK(sgd.net->named_parameters()[0].second.value() == before);
  CHECK(sgd.opt->step_count() == 2);
  CHECK(generator_state() == rng);

  // Same model and optimizer kind, but the file's optimizer state is broken: still nothing changes.
  auto file = nn::load_safetensors(path);
  nn::NamedValues broken;
  for (auto& [name, v] : file.tensors)
    if (name != "adam.exp_avg_sq.2.bias") broken.emplace_back(name, v);
  nn::save_safetensors(path, broken, {{"rng", "not a generator state"}});
  Run other("adam");
  const auto other_before = other.net->named_parameters()[0].second.value();
  const std::string other_rng = generator_state();
  CHECK_THROWS_WITH(nn::load_checkpoint(path, *other.net, *other.opt), doctest::Contains("rng"));
  nn::save_safetensors(path, broken, file.metadata);
  CHECK_THROWS_WITH(nn::load_checkpoint(path, *other.net, *other.opt), doctest::Contains("adam.exp_avg_sq.2.bias"));
  CHECK(other.net->named_parameters()[0].second.value() == other_before);
  CHECK(other.opt->step_count() == 0);
  CHECK(generator_state() == other_rng);
}
