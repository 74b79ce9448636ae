// The `flowgrad` program: one binary, one subcommand per job.
//
// Exit status: 0 success (also --help, --version); 1 any error: an unknown option, an
// impossible value, bad or missing data, a diverged training run, a refused checkpoint
// (CLI11's own parse-error codes, 105-109, are folded into 1); 130 training interrupted
// by Ctrl-C or SIGTERM after saving its checkpoint.
//
// Started by mpirun (and built with MPI), every process is one rank of a data-parallel
// run; only rank 0 prints to stdout. A rank that fails ends them all (MPI_Abort), so none
// is left waiting for it.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "apps/commands.hpp"
#include "apps/openblas_env.hpp"
#include "apps/run_config.hpp"
#ifdef FLOWGRAD_HAVE_MPI
#include "nn/mpi/communicator.hpp"
#endif

namespace {

std::string help_hint(CLI::App& app) {
  const auto selected = app.get_subcommands();
  const std::string name = selected.empty() ? "flowgrad" : "flowgrad " + selected.front()->get_name();
  return "Run '" + name + " --help' for the options.";
}

flowgrad::nn::Communicator* g_group = nullptr;

}  // namespace

namespace flowgrad::app {

nn::Communicator& process_group() { return g_group ? *g_group : nn::single_process(); }
void set_process_group(nn::Communicator& group) { g_group = &group; }

int threads_per_rank(int requested) {
  if (requested > 0) return requested;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, process_group().local_size()));
}

}  // namespace flowgrad::app

int main(int argc, char** argv) {
  flowgrad::apps::ensure_openblas_coretype(argc, argv);  // may restart the program: before MPI_Init
  std::unique_ptr<flowgrad::nn::Communicator> mpi;
  if (flowgrad::nn::launched_by_mpirun()) {
#ifdef FLOWGRAD_HAVE_MPI
    try {
      mpi = std::make_unique<flowgrad::nn::MpiCommunicator>(&argc, &argv);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flowgrad: error: %s\n", e.what());
      return 1;
    }
#else
    std::fprintf(stderr, "flowgrad: error: started by mpirun, but this flowgrad was built without MPI. Install "
                         "OpenMPI and rebuild: bash scripts/setup.sh --mpi, then ninja -C build\n");
    return 1;
#endif
  }
  flowgrad::nn::Communicator& group = mpi ? *mpi : flowgrad::nn::single_process();
  flowgrad::app::set_process_group(group);
  if (!group.is_root() && !std::freopen("/dev/null", "w", stdout)) std::fclose(stdout);
  // An error on one rank ends every rank (MPI_Abort): none is left waiting in a collective.
  const std::string who = group.size() > 1 ? "flowgrad (rank " + std::to_string(group.rank()) + ")" : "flowgrad";
  auto fail = [&](const std::string& message) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", who.c_str(), message.c_str());
    std::fflush(stderr);
    if (group.size() > 1) group.abort(1);
    return 1;
  };
  if (group.size() > 1) {  // the other commands write their output from every rank: one process is enough
    std::string command;
    for (int i = 1; i < argc && command.empty(); ++i)
      if (argv[i][0] != '-') command = argv[i];
    if (!command.empty() && command != "train" && command != "bench") {
      if (group.is_root())
        std::fprintf(stderr, "flowgrad: error: '%s' runs in one process: only train and bench run under mpirun\n",
                     command.c_str());
      return 1;
    }
  }
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
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))  // --help, --version
      return group.is_root() ? app.exit(e) : 0;
    // The same command line on every rank: each stops here, rank 0 says why.
    if (group.is_root()) std::fprintf(stderr, "flowgrad: error: %s\n%s\n", e.what(), help_hint(app).c_str());
    return 1;
  } catch (const flowgrad::app::CommandExit& e) {
    return e.code;
  } catch (const flowgrad::app::UsageError& e) {
    return fail(std::string(e.what()) + "\n" + help_hint(app));
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
