// Each subcommand of `flowgrad` lives in its own file and adds itself to the CLI here.
#pragma once

#include <CLI/CLI.hpp>

namespace flowgrad::app {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_interpolate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_export_check_command(CLI::App& app);

}  // namespace flowgrad::app
