#include "apps/run_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "autograd/atomic_file.hpp"

namespace flowgrad::app {

namespace {

// "pid 1234: flowgrad train --resume runs/a" for the process holding a flock on `inode`
// (from /proc/locks), or "another process" if it cannot be found.
std::string lock_holder(ino_t inode) {
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    // "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"; waiters have a "->" field.
    std::istringstream in(line);
    std::string id, kind, advisory, mode, pid, where;
    if (!(in >> id >> kind >> advisory >> mode >> pid >> where) || kind != "FLOCK") continue;
    const auto colon = where.rfind(':');
    if (colon == std::string::npos || where.substr(colon + 1) != std::to_string(inode)) continue;
    std::ifstream cmdline("/proc/" + pid + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(cmdline)), {});
    for (char& c : cmd)
      if (c == '\0') c = ' ';
    while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
    if (cmd.size() > 200) cmd = cmd.substr(0, 200) + "...";
    return "pid " + pid + (cmd.empty() ? "" : ": " + cmd);
  }
  return "another process";
}

}  // namespace

RunLock::RunLock(const std::string& run_dir) {
  fd_ = ::open(run_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0)
    throw std::runtime_error(run_dir + ": cannot open the run directory to lock it: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  const int err = errno;
  struct stat st {};
  const std::string holder = err == EWOULDBLOCK && ::fstat(fd_, &st) == 0 ? lock_holder(st.st_ino) : "";
  ::close(fd_);
  if (err != EWOULDBLOCK) throw std::runtime_error(run_dir + ": cannot lock the run directory: " + std::strerror(err));
  throw std::runtime_error(run_dir + " is in use: " + holder +
                           " is training in it. Wait for it to end, or stop it (Ctrl-C saves a checkpoint)");
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

bool is_run_temp_file(const std::string& name) {
  if (!is_temp_file_name(name)) return false;
  for (const char* file : {"checkpoint.safetensors", "config.json", "metrics.jsonl", "curve.svg", "samples_T0.7.png",
                           "samples_T1.0.png"})
    if (name.rfind(std::string(file) + ".tmp", 0) == 0) return true;
  return false;
}

void remove_temp_files(const std::string& run_dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir, ec))
    if (entry.is_regular_file(ec) && is_run_temp_file(entry.path().filename().string()))
      std::filesystem::remove(entry.path(), ec);
}

}  // namespace flowgrad::app
