// Writing a file so that a crash, a kill or a full disk never leaves it half-written: the
// bytes go to a new, uniquely named temp file beside it, are fsynced, and are renamed
// over the old file. Every file of a run directory is written this way.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace flowgrad {

// The message names the file, the step that failed, the byte offset and the system's reason.
struct FileWriteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using ByteChunks = std::vector<std::pair<const void*, std::size_t>>;

// Writes `chunks` to PATH.tmp.PID.N (created exclusively, never through a symlink), fsyncs
// it, renames it over `path` and fsyncs the directory. On any failure the temp file is
// removed, `path` is left as it was, and FileWriteError is thrown.
void write_atomically(const std::string& path, const ByteChunks& chunks);
void write_atomically(const std::string& path, const std::string& text);

// True for the names write_atomically gives its temp files (and the older NAME.tmp): what
// an interrupted write leaves behind, safe to delete once no writer can be running.
bool is_temp_file_name(const std::string& name);

}  // namespace flowgrad
