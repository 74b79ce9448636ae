#include "nn/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <new>

#include <nlohmann/json.hpp>

namespace flowgrad::nn {

using Json = nlohmann::ordered_json;  // keeps the header's tensor order

namespace {

constexpr std::uint64_t kMaxHeader = 100u << 20;  // as the reference implementation

bool host_little_endian() {
  const std::uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

void require_little_endian(const std::string& path) {
  if (!host_little_endian())
    throw SafetensorsError("safetensors " + path + ": this host is big-endian; only little-endian hosts are supported");
}

[[noreturn]] void fail(const std::string& path, const std::string& what, std::uint64_t offset) {
  throw SafetensorsError("safetensors " + path + ": " + what + " (at byte offset " +
                         std::to_string(offset) + ")");
}

std::string errno_str() { return std::strerror(errno); }

// A name or JSON value as shown in an error: a header may hold 100 MB strings.
std::string brief(const std::string& text) {
  constexpr std::size_t kShown = 80;
  return text.size() <= kShown ? text : text.substr(0, kShown) + "...(" + std::to_string(text.size()) + " bytes)";
}

// Closes on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { if (fd >= 0) ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// a * b, or false on overflow.
bool mul_checked(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

bool parse_dtype(const std::string& s, DType& d) {
  if (s == "F32") d = DType::F32;
  else if (s == "F64") d = DType::F64;
  else if (s == "I64") d = DType::I64;
  else if (s == "U8") d = DType::U8;
  else return false;
  return true;
}

bool known_unsupported_dtype(const std::string& s) {
  static const std::set<std::string> others = {"BOOL", "I8", "I16", "I32", "U16", "U32", "U64",
                                               "F16", "BF16", "F8_E4M3", "F8_E5M2"};
  return others.count(s) > 0;
}

template <class S>
xt::xarray<S> read_array(int fd, const Shape& shape, std::uint64_t file_offset, std::uint64_t nbytes,
                         const std::string& path, const std::string& name) {
  xt::xarray<S> a = xt::xarray<S>::from_shape(shape);
  char* dst = reinterpret_cast<char*>(a.data());
  std::uint64_t done = 0;
  while (done < nbytes) {
    const ssize_t got = ::pread(fd, dst + done, nbytes - done, static_cast<off_t>(file_offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(path, "cannot read tensor '" + brief(name) + "': " + errno_str(), file_offset + done);
    if (got == 0) fail(path, "file ended inside tensor '" + brief(name) + "'", file_offset + done);
    done += static_cast<std::uint64_t>(got);
  }
  return a;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t begin, end;
};

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  return "?";
}

std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}

DType dtype_of(const TensorValue& v) {
  return std::visit([](const auto& a) { return dtype_of<typename std::decay_t<decltype(a)>::value_type>(); }, v);
}

Shape shape_of(const TensorValue& v) {
  return std::visit([](const auto& a) { return to_shape(a.shape()); }, v);
}

template <class T>
xt::xarray<T> float_array(const TensorValue& v, const std::string& what) {
  if (auto* f = std::get_if<xt::xarray<float>>(&v)) return xt::xarray<T>(*f);
  if (auto* d = std::get_if<xt::xarray<double>>(&v)) return xt::xarray<T>(*d);
  throw SafetensorsError(what + ": expected dtype F32 or F64, found " + dtype_name(dtype_of(v)));
}
template xt::xarray<float> float_array<float>(const TensorValue&, const std::string&);
template xt::xarray<double> float_array<double>(const TensorValue&, const std::string&);

TensorView::TensorView(std::string n, const TensorValue& v)
    : name(std::move(n)), dtype(dtype_of(v)), shape(shape_of(v)),
      data(std::visit([](const auto& a) { return static_cast<const void*>(a.data()); }, v)) {}

const TensorValue* SafeTensors::find(const std::string& name) const {
  for (auto& [n, v] : tensors)
    if (n == name) return &v;
  return nullptr;
}

void StateMismatch::throw_if_any(const std::string& what) const {
  if (empty()) return;
  std::string msg = what + ":";
  auto list = [&](const std::vector<std::string>& names, const char* kind) {
    if (names.empty()) return;
    msg += (msg.back() == ':' ? " " : "; ") + std::to_string(names.size()) + " " + kind + " (";
    for (std::size_t i = 0; i < names.size(); ++i) msg += (i ? ", " : "") + names[i];
    msg += ")";
  };
  list(missing, "missing");
  list(unexpected, "unexpected");
  list(wrong, "with wrong dtype or shape");
  throw SafetensorsError(msg);
}

// --- writing ---------------------------------------------------------------

void save_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                      const Metadata& metadata) {
  require_little_endian(path);
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  ByteChunks data;
  std::uint64_t offset = 0;
  for (auto& t : tensors) {
    if (t.name == "__metadata__")
      throw SafetensorsError("cannot write " + path + ": '__metadata__' is reserved, not a tensor name");
    if (header.contains(t.name))
      throw SafetensorsError("cannot write " + path + ": tensor name '" + t.name + "' appears twice");
    std::uint64_t nbytes = dtype_size(t.dtype);
    for (auto d : t.shape) nbytes *= d;
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    if (nbytes > 0) data.emplace_back(t.data, nbytes);
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const nlohmann::json::exception& e) {
    throw SafetensorsError("cannot write " + path + ": header is not valid UTF-8 JSON: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as Python writes it
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(std::uint64_t(text.size()) >> (8 * i));
  ByteChunks chunks = {{len, 8}, {text.data(), text.size()}};
  chunks.insert(chunks.end(), data.begin(), data.end());
  try {
    write_atomically(path, chunks);
  } catch (const FileWriteError& e) {
    throw SafetensorsError(e.what());
  }
}

void save_safetensors(const std::string& path, const NamedValues& tensors, const Metadata& metadata) {
  std::vector<TensorView> views;
  for (auto& [name, v] : tensors) views.emplace_back(name, v);
  save_safetensors(path, views, metadata);
}

// --- reading ---------------------------------------------------------------

namespace {

SafeTensors load_validated(const std::string& path) {
  require_little_endian(path);
  // O_NONBLOCK so that opening a FIFO returns at once (fstat then refuses it); pread on a
  // regular file ignores it.
  Fd file(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (file.fd < 0) throw SafetensorsError("safetensors " + path + ": cannot open: " + errno_str());
  struct stat st;
  if (::fstat(file.fd, &st) != 0) throw SafetensorsError("safetensors " + path + ": cannot stat: " + errno_str());
  if (!S_ISREG(st.st_mode)) throw SafetensorsError("safetensors " + path + ": not a regular file");
  const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);

  if (size < 8) fail(path, "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length", 0);
  unsigned char len[8];
  if (::pread(file.fd, len, 8, 0) != 8) fail(path, "cannot read the header length", 0);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(len[i]) << (8 * i);
  if (n > kMaxHeader)
    fail(path, "header length " + std::to_string(n) + " exceeds the 100 MB limit", 0);
  if (n > size - 8)
    fail(path, "header length " + std::to_string(n) + " runs past the end of the " + std::to_string(size) +
                   "-byte file", 0);

  std::string text(n, '\0');
  for (std::uint64_t done = 0; done < n;) {
    const ssize_t got = ::pread(file.fd, &text[done], n - done, static_cast<off_t>(8 + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) fail(path, "cannot read the header", 8 + done);
    done += static_cast<std::uint64_t>(got);
  }

  // Parse, rejecting duplicate names, nesting deeper than a header ever needs and arrays
  // longer than any shape (a 100 MB array would cost ~16x its bytes before other checks).
  std::set<std::string> seen;
  std::vector<std::pair<bool, std::size_t>> open_containers;  // being parsed: is_array, values so far
  auto check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    const bool starts = event == E::object_start || event == E::array_start;
    if (starts && depth > 2) fail(path, "header JSON is nested deeper than a safetensors header", 8);
    if ((starts || event == E::value) && !open_containers.empty() && open_containers.back().first &&
        ++open_containers.back().second > kMaxRank)
      fail(path, "header JSON has an array of more than " + std::to_string(kMaxRank) + " entries", 8);
    if (starts) open_containers.emplace_back(event == E::array_start, 0);
    if (event == E::object_end || event == E::array_end) open_containers.pop_back();
    if (event == E::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second)
      fail(path, "tensor name '" + brief(parsed.get<std::string>()) + "' appears twice in the header", 8);
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, check);
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what(), 8 + (e.byte > 0 ? e.byte - 1 : 0));
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
    fail(path, std::string("header is not valid JSON: ") + e.what(), 8);
  }
  if (!header.is_object()) fail(path, "header is not a JSON object", 8);

  const std::uint64_t data_start = 8 + n;
  const std::uint64_t buffer_size = size - data_start;
  // A data offset as a file offset, kept inside the file when the offset lies.
  auto file_offset_of = [&](std::uint64_t offset) { return offset > buffer_size ? size : data_start + offset; };
  SafeTensors out;
  std::vector<Entry> entries;
  for (auto& [name, meta] : header.items()) {
    if (name == "__metadata__") {
      if (!meta.is_object()) fail(path, "__metadata__ is not an object of strings", 8);
      for (auto& [k, v] : meta.items()) {
        if (!v.is_string()) fail(path, "__metadata__ value for '" + brief(k) + "' is not a string", 8);
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + brief(name) + "': ";
    if (!meta.is_object()) fail(path, where + "entry is not an object", 8);
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!meta.contains(field)) fail(path, where + "missing field '" + field + "'", 8);

    Entry e{name, DType::F32, {}, 0, 0};
    const Json& dt = meta["dtype"];
    if (!dt.is_string()) fail(path, where + "dtype is not a string", 8);
    const std::string dts = dt.get<std::string>();
    if (!parse_dtype(dts, e.dtype))
      fail(path, where + (known_unsupported_dtype(dts) ? "dtype " + dts + " is not supported (F32, F64, I64, U8 are)"
                                                        : "unknown dtype '" + brief(dts) + "'"), 8);

    const Json& sh = meta["shape"];
    if (!sh.is_array()) fail(path, where + "shape is not a list", 8);
    // The bytes of the nonzero dimensions must fit, even when a zero makes the tensor
    // empty: every stride of the array is a partial product of them.
    std::uint64_t nonzero_bytes = dtype_size(e.dtype);
    bool empty = false;
    for (auto& d : sh) {
      if (!d.is_number_unsigned())
        fail(path, where + "shape " + brief(sh.dump()) + " has a non-integer or negative entry", 8);
      const std::uint64_t v = d.get<std::uint64_t>();
      empty = empty || v == 0;
      if (v != 0 && (!mul_checked(nonzero_bytes, v, nonzero_bytes) ||
                     nonzero_bytes > std::uint64_t(std::numeric_limits<std::ptrdiff_t>::max())))
        fail(path, where + "shape " + sh.dump() + " is too large", 8);
      e.shape.push_back(static_cast<std::size_t>(v));
    }
    const std::uint64_t nbytes = empty ? 0 : nonzero_bytes;

    const Json& off = meta["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, where + "data_offsets " + brief(off.dump()) + " is not [begin, end] with integers >= 0", 8);
    e.begin = off[0].get<std::uint64_t>();
    e.end = off[1].get<std::uint64_t>();
    if (e.begin > e.end)
      fail(path, where + "data_offsets begin " + std::to_string(e.begin) + " > end " + std::to_string(e.end),
           file_offset_of(e.begin));
    if (e.end > buffer_size)
      fail(path, where + "data_offsets end " + std::to_string(e.end) + " is past the " + std::to_string(buffer_size) +
                     "-byte data buffer", file_offset_of(e.begin));
    if (e.end - e.begin != nbytes)
      fail(path, where + "data_offsets span " + std::to_string(e.end - e.begin) + " bytes but " + dts + " shape " +
                     sh.dump() + " needs " + std::to_string(nbytes), file_offset_of(e.begin));
    entries.push_back(std::move(e));
  }

  // The buffer must be covered exactly, without overlaps or holes (as the spec requires).
  std::vector<const Entry*> sorted;
  for (auto& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : sorted) {
    if (e->begin < covered)
      fail(path, "tensors '" + brief(previous->name) + "' and '" + brief(e->name) + "' overlap", data_start + e->begin);
    if (e->begin > covered)
      fail(path, "data bytes " + std::to_string(covered) + ".." + std::to_string(e->begin) + " belong to no tensor",
           data_start + covered);
    covered = e->end;
    previous = e;
  }
  if (covered != buffer_size)
    fail(path, "data bytes " + std::to_string(covered) + ".." + std::to_string(buffer_size) + " belong to no tensor",
         data_start + covered);

  for (auto& e : entries) {
    const std::uint64_t at = data_start + e.begin, nbytes = e.end - e.begin;
    TensorValue v;
    switch (e.dtype) {
      case DType::F32: v = read_array<float>(file.fd, e.shape, at, nbytes, path, e.name); break;
      case DType::F64: v = read_array<double>(file.fd, e.shape, at, nbytes, path, e.name); break;
      case DType::I64: v = read_array<std::int64_t>(file.fd, e.shape, at, nbytes, path, e.name); break;
      case DType::U8: v = read_array<std::uint8_t>(file.fd, e.shape, at, nbytes, path, e.name); break;
    }
    out.tensors.emplace_back(e.name, std::move(v));
  }
  return out;
}

}  // namespace

SafeTensors load_safetensors(const std::string& path) {
  try {
    return load_validated(path);
  } catch (const std::bad_alloc&) {
    // Only a file whose validated tensors exceed the memory gets here.
    throw SafetensorsError("safetensors " + path + ": out of memory while loading its tensors");
  }
}

}  // namespace flowgrad::nn
