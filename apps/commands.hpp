// Each subcommand of `flowgrad` lives in its own file and adds itself to the CLI here.
#pragma once

#include <CLI/CLI.hpp>

#include "nn/distributed.hpp"

namespace flowgrad::app {

// Thrown by a command that stops early on purpose (e.g. training interrupted by Ctrl-C,
// its checkpoint saved): main exits with `code` without printing an error.
struct CommandExit {
  int code;
};

// For unsigned options: CLI11 would read "-1" into one as 2^64 - 1.
inline CLI::Validator non_negative() {
  return CLI::Validator(
      [](std::string& s) {
        const auto first = s.find_first_not_of(" \t");
        return first != std::string::npos && s[first] == '-' ? "must be >= 0, got " + s : std::string();
      },
      "", "NONNEGATIVE");
}

// The processes this run is one of: mpirun's ranks, or this process alone. main sets it
// before any command runs; rank 0 alone prints to stdout and writes files.
nn::Communicator& process_group();
void set_process_group(nn::Communicator& group);
// --threads 0 means this machine's cores, divided between the ranks that share it.
int threads_per_rank(int requested);

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_interpolate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_export_check_command(CLI::App& app);

}  // namespace flowgrad::app
