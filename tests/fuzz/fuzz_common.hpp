// What every fuzz target shares: the input written to a file (the readers take paths;
// under /dev/shm it costs no disk I/O), and the one rule each target checks: an input
// either loads or throws the reader's own error naming the file. Anything else (another
// exception, a crash, a sanitizer report, an allocation above -malloc_limit_mb, a hang)
// is a finding.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace flowgrad::fuzz {

// A directory of this process's own, removed at exit.
inline const std::filesystem::path& work_dir() {
  static const std::filesystem::path dir = [] {
    const char* base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = std::string(base) + "/flowgrad-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(work_dir(), ec);
    });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

// Writes bytes to work_dir()/name and returns its path.
inline std::string write_file(const std::string& name, const unsigned char* data, std::size_t size) {
  const std::string path = (work_dir() / name).string();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  if (!f) std::abort();
  return path;
}

[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "FINDING: %s\n", what.c_str());
  std::abort();
}

// Runs load(); an Error naming `named` is a fine outcome, any other exception a finding.
template <class Error, class Load>
void loads_or_refuses(const std::string& named, Load&& load) {
  try {
    load();
  } catch (const Error& e) {
    if (!std::strstr(e.what(), named.c_str())) finding(std::string("error without the file name: ") + e.what());
  } catch (const std::exception& e) {
    finding(std::string("unexpected exception: ") + e.what());
  }
}

}  // namespace flowgrad::fuzz
