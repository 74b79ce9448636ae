// The run configuration a checkpoint stores (JSON in its metadata): read with strict types,
// then validated with the command line's rules. An input is refused with an error naming
// its source, or accepted; whatever is accepted writes and reads back unchanged.
#include <cstdint>
#include <cstring>
#include <string>

#include "apps/run_config.hpp"
#include "fuzz_common.hpp"

using namespace flowgrad;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  app::RunConfig config;
  try {
    config = app::run_config_from_json(text, "fuzz-config");
  } catch (const std::runtime_error& e) {
    if (!std::strstr(e.what(), "fuzz-config")) fuzz::finding(std::string("error without the source: ") + e.what());
    return 0;
  } catch (const std::exception& e) {
    fuzz::finding(std::string("unexpected exception: ") + e.what());
  }
  try {
    app::validate_model(config.model);
    app::validate_train(config.train);
  } catch (const app::UsageError&) {
    return 0;
  } catch (const std::exception& e) {
    fuzz::finding(std::string("unexpected exception from validation: ") + e.what());
  }
  // Accepted: describable, and its JSON form reads back to the same configuration.
  (void)app::describe(config.model);
  const nlohmann::json written = app::to_json(config);
  try {
    if (app::to_json(app::run_config_from_json(written.dump(), "again")) != written)
      fuzz::finding("the configuration changed in a write and read");
  } catch (const std::exception& e) {
    fuzz::finding(std::string("an accepted configuration does not read back: ") + e.what());
  }
  return 0;
}
