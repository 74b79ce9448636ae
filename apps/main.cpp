// The `flowgrad` program: one binary, one subcommand per job.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"flowgrad: normalizing flows (NICE, Real NVP, Glow) on a small autodiff engine"};
  app.set_version_flag("--version", std::string("flowgrad ") + FLOWGRAD_VERSION);
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowgrad: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
