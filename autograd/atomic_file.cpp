#include "autograd/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace flowgrad {

namespace {

std::string errno_text() { return std::strerror(errno); }

// PATH.tmp.PID.N, created with O_EXCL | O_NOFOLLOW: never an existing file or a symlink.
int create_temp(const std::string& path, std::string& tmp) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

}  // namespace

void write_atomically(const std::string& path, const ByteChunks& chunks) {
  std::string tmp;
  const int fd = create_temp(path, tmp);
  if (fd < 0) throw FileWriteError("cannot write " + path + ": cannot create " + tmp + ": " + errno_text());
  auto abandon = [&](const std::string& what) {
    const std::string reason = errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    throw FileWriteError("cannot write " + path + ": " + what + ": " + reason + " (" + path + " is left as it was)");
  };
  std::uint64_t offset = 0;
  for (auto& [data, size] : chunks) {
    const char* p = static_cast<const char*>(data);
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, p + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) errno = ENOSPC;  // a write that makes no progress: treat as a full disk
      if (n <= 0) abandon("write to " + tmp + " failed at byte offset " + std::to_string(offset + done));
      done += static_cast<std::size_t>(n);
    }
    offset += size;
  }
  if (::fsync(fd) != 0) abandon("fsync of " + tmp + " failed");
  if (::close(fd) != 0) {
    const std::string reason = errno_text();
    ::unlink(tmp.c_str());
    throw FileWriteError("cannot write " + path + ": close of " + tmp + " failed: " + reason);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = errno_text();
    ::unlink(tmp.c_str());
    throw FileWriteError("cannot write " + path + ": rename from " + tmp + " failed: " + reason);
  }
  // Make the rename itself durable; failing here loses nothing already written.
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_atomically(const std::string& path, const std::string& text) {
  write_atomically(path, ByteChunks{{text.data(), text.size()}});
}

bool is_temp_file_name(const std::string& name) {
  const auto at = name.rfind(".tmp");
  if (at == std::string::npos || at == 0) return false;
  const std::string rest = name.substr(at + 4);  // "" (older NAME.tmp) or ".PID.N"
  if (rest.empty()) return true;
  if (rest[0] != '.') return false;
  std::size_t dots = 0;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '.') ++dots;
    else if (rest[i] < '0' || rest[i] > '9') return false;
  }
  return dots == 2 && rest.back() != '.' && rest.find("..") == std::string::npos;
}

}  // namespace flowgrad
