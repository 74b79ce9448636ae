// The `flowgrad` program: one binary, one subcommand per job.
//
// Exit status: 0 success (also --help, --version); 1 any error: an unknown option, an
// impossible value, bad or missing data, a diverged training run, a refused checkpoint
// (CLI11's own parse-error codes, 105-109, are folded into 1); 130 training interrupted
// by Ctrl-C or SIGTERM after saving its checkpoint.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "apps/commands.hpp"
#include "apps/openblas_env.hpp"
#include "apps/run_config.hpp"

namespace {

std::string help_hint(CLI::App& app) {
  const auto selected = app.get_subcommands();
  const std::string name = selected.empty() ? "flowgrad" : "flowgrad " + selected.front()->get_name();
  return "Run '" + name + " --help' for the options.";
}

}  // namespace

int main(int argc, char** argv) {
  flowgrad::apps::ensure_openblas_coretype(argc, argv);
  CLI::App app{"flowgrad: normalizing flows (NICE, Real NVP, Glow) on a small autodiff engine"};
  app.set_version_flag("--version", std::string("flowgrad ") + FLOWGRAD_VERSION);
  app.require_subcommand(1);
  app.footer("Exit status: 0 success, 1 error (bad option or value, bad data, diverged training),\n"
             "130 training interrupted (its checkpoint saved; continue with train --resume).");
  flowgrad::app::add_train_command(app);
  flowgrad::app::add_eval_command(app);
  flowgrad::app::add_sample_command(app);
  flowgrad::app::add_interpolate_command(app);
  flowgrad::app::add_export_check_command(app);
  flowgrad::app::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "flowgrad: error: %s\n%s\n", e.what(), help_hint(app).c_str());
    return 1;
  } catch (const flowgrad::app::CommandExit& e) {
    return e.code;
  } catch (const flowgrad::app::UsageError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "flowgrad: error: %s\n%s\n", e.what(), help_hint(app).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "flowgrad: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
