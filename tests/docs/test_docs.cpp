// The docs cannot drift from the code: every C++ block of README.md and docs/*.md is
// compiled against the built library and run, or found verbatim in the file it quotes,
// as its doc-test annotation says (tests/docs/doc_blocks.hpp; docs/COURSEWORK.md, "How
// these docs are tested"). The generated sources stay in BUILD/tests/doc_blocks/.
// scripts/sanitize.sh leaves the compiling test case out by its name (*code*block*).
#include <doctest/doctest.h>

#include "doc_blocks.hpp"
#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

using namespace doc_test;
namespace fs = std::filesystem;

namespace {

const fs::path kSource = FLOWGRAD_SOURCE_DIR;
const fs::path kBuild = FLOWGRAD_BUILD_DIR;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// README.md and every docs/*.md, parsed once.
const Parsed& all_docs() {
  static const Parsed parsed = [] {
    std::vector<std::string> docs{"README.md"};
    for (const auto& e : fs::directory_iterator(kSource / "docs"))
      if (e.path().extension() == ".md") docs.push_back("docs/" + e.path().filename().string());
    std::sort(docs.begin() + 1, docs.end());
    Parsed all;
    for (const auto& doc : docs) {
      Parsed one = parse_markdown(doc, read_text(kSource / doc));
      all.blocks.insert(all.blocks.end(), one.blocks.begin(), one.blocks.end());
      all.errors.insert(all.errors.end(), one.errors.begin(), one.errors.end());
    }
    return all;
  }();
  return parsed;
}

std::vector<Block> blocks_of(Kind kind) {
  std::vector<Block> out;
  for (const auto& b : all_docs().blocks)
    if (b.kind == kind) out.push_back(b);
  return out;
}

std::string lines_of(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& line : v) s += line + "\n";
  return s;
}

// The first lines of a compiler's output: its first error says what is wrong.
std::string head(const std::string& text, std::size_t max_lines = 60) {
  std::size_t pos = 0;
  for (std::size_t n = 0; n < max_lines && pos != std::string::npos; ++n) pos = text.find('\n', pos + 1);
  return pos == std::string::npos ? text : text.substr(0, pos) + "\n[... cut]\n";
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// -fsanitize=... when the library was built with meson's b_sanitize: an instrumented
// library needs instrumented programs.
std::string sanitize_flags() {
  std::ifstream in(kBuild / "meson-info" / "intro-buildoptions.json");
  if (!in) return "";
  for (const auto& option : nlohmann::json::parse(in, nullptr, false)) {
    if (!option.is_object() || option.value("name", "") != "b_sanitize") continue;
    std::string value;
    if (option["value"].is_string()) value = option["value"];
    if (option["value"].is_array())
      for (const auto& v : option["value"]) value += (value.empty() ? "" : ",") + v.get<std::string>();
    return value.empty() || value == "none" ? "" : " -fsanitize=" + value;
  }
  return "";
}

struct Toolchain {
  std::string compile;  // then: -c SOURCE -o OBJECT
  std::string link;     // then: OBJECTS -o PROGRAM, then libs
  std::string libs;
};

// The flags of an app built against this build tree, from meson's uninstalled flowgrad.pc.
Toolchain toolchain(const fs::path& include_dir) {
  const std::string pc = "PKG_CONFIG_PATH=" + shell_quote((kBuild / "meson-uninstalled").string()) + " pkg-config ";
  const auto cflags = flowgrad::testing::run_command(pc + "--cflags flowgrad 2>&1");
  const auto libs = flowgrad::testing::run_command(pc + "--libs flowgrad 2>&1");
  INFO("pkg-config on " << (kBuild / "meson-uninstalled").string() << ": " << cflags.out << libs.out);
  REQUIRE(cflags.code == 0);
  REQUIRE(libs.code == 0);
  const char* cxx = std::getenv("CXX");
  const std::string compiler = cxx && *cxx ? cxx : "c++";
  const std::string sanitize = sanitize_flags();
  return {compiler + " -std=c++17 -O0" + sanitize + " -I" + shell_quote(include_dir.string()) + " " +
              trim(cflags.out),
          compiler + sanitize + " -Wl,-rpath," + shell_quote(kBuild.string()), trim(libs.out)};
}

struct Unit {
  Unit(std::string what, fs::path source, fs::path object)
      : what(std::move(what)), source(std::move(source)), object(std::move(object)) {}
  std::string what;  // "README.md:123 (doctest block)", for messages
  fs::path source, object;
  int code = 0;
  std::string output;  // the compiler's
};

// Compiles the units on as many threads as the machine has cores (at most 4).
void compile_all(std::vector<Unit>& units, const std::string& compile) {
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; (i = next++) < units.size();) {
      Unit& u = units[i];
      const std::string cmd = compile + " -c " + shell_quote(u.source.string()) + " -o " +
                              shell_quote(u.object.string()) + " 2>&1";
      FILE* p = popen(cmd.c_str(), "r");  // not run_command: doctest's macros are not thread-safe
      char buf[4096];
      for (std::size_t n; p && (n = fread(buf, 1, sizeof buf, p)) > 0;) u.output.append(buf, n);
      u.code = p ? pclose(p) : -1;
    }
  };
  const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
}

const char* kind_name(Kind k) {
  return k == Kind::Doctest ? "doctest" : k == Kind::Body ? "body" : k == Kind::File ? "file" : "other";
}

struct Sources {
  std::vector<Unit> units;      // doctest's main first
  std::size_t test_blocks = 0;  // doctest and body blocks
};

// Writes every file, doctest and body block where the compiler will find it: exercise
// files under DIR/include (as the reader's own tree), the other blocks under DIR/src.
Sources write_sources(const fs::path& dir) {
  Sources out;
  out.units.emplace_back("tests/main.cpp (doctest's main)", kSource / "tests" / "main.cpp", dir / "main.o");
  for (const auto& b : all_docs().blocks) {
    const std::string name = fs::path(b.doc).stem().string() + "_" + std::to_string(b.line);
    const std::string what = b.where() + " (" + kind_name(b.kind) + " block)";
    if (b.kind == Kind::File) {
      write_text(dir / "include" / b.argument, file_source(b));
      if (fs::path(b.argument).extension() == ".cpp")
        out.units.emplace_back(what, dir / "include" / b.argument, dir / (name + ".o"));
    } else if (b.kind == Kind::Doctest || b.kind == Kind::Body) {
      const std::string prelude = b.prelude.empty() ? "" : (kSource / b.prelude).string();
      REQUIRE_MESSAGE((prelude.empty() || fs::exists(prelude)), b.where() << ": no prelude " << prelude);
      write_text(dir / "src" / (name + ".cpp"), block_source(b, prelude));
      out.units.emplace_back(what, dir / "src" / (name + ".cpp"), dir / (name + ".o"));
      ++out.test_blocks;
    }
  }
  return out;
}

// Links the compiled units into one doctest program; returns its path.
std::string link_program(const std::vector<Unit>& units, const fs::path& program) {
  const Toolchain tools = toolchain(program.parent_path() / "include");
  std::string objects, legend;  // the linker names objects, the legend says which block each is
  for (const auto& u : units) {
    objects += " " + shell_quote(u.object.string());
    legend += "  " + u.object.filename().string() + ": " + u.what + "\n";
  }
  const auto linked = flowgrad::testing::run_command(tools.link + objects + " -o " + shell_quote(program.string()) +
                                                     " " + tools.libs + " 2>&1");
  REQUIRE_MESSAGE(linked.code == 0, "linking the doc blocks failed:\n" << head(linked.out) << "objects:\n" << legend);
  return program.string();
}

}  // namespace

TEST_CASE("doc blocks: the annotation convention") {
  const std::string md =
      "Text.\n"
      "<!-- doc-test: body prelude=tests/docs/readme_prelude.hpp -->\n"
      "```cpp\n"
      "#include <autograd/autograd.hpp>\n"
      "auto x = 1;\n"
      "```\n"
      "```sh\n"
      "ls\n"
      "```\n"
      "```cpp\n"
      "int unannotated;\n"
      "```\n"
      "<!-- doc-test: same-as autograd/tensor.hpp -->\n"
      "\n"
      "```meson\n"
      "x = 1\n"
      "```\n"
      "<!-- doc-test: file -->\n"
      "```cpp\n"
      "```\n";
  const Parsed p = parse_markdown("doc.md", md);
  REQUIRE(p.blocks.size() == 1);
  CHECK(p.blocks[0].kind == Kind::Body);
  CHECK(p.blocks[0].line == 3);
  CHECK(p.blocks[0].prelude == "tests/docs/readme_prelude.hpp");
  REQUIRE(p.errors.size() == 4);  // the sh block needs nothing
  CHECK(starts_with(p.errors[0], "doc.md:10: ```cpp block has no doc-test annotation"));
  CHECK(starts_with(p.errors[1], "doc.md:13: a doc-test annotation must be the line right before"));
  CHECK(starts_with(p.errors[2], "doc.md:15: ```meson block has no doc-test annotation"));
  CHECK(p.errors[3] == "doc.md:18: 'file' needs a path");

  // A body's #include goes above its test case; #line points every line back at the doc.
  const std::string src = block_source(p.blocks[0], "/x/prelude.hpp");
  const auto include = src.find("#line 4 \"doc.md\"\n#include <autograd/autograd.hpp>");
  const auto test_case = src.find("TEST_CASE(\"doc.md:3 (body block)\")");
  CHECK(include < test_case);
  CHECK(src.find("#line 5 \"doc.md\"\nauto x = 1;", test_case) != std::string::npos);

  CHECK(appears_in("a  (b,\n   c)", "x; a (b, c) y"));
  CHECK_FALSE(appears_in("a (b, d)", "x; a (b, c) y"));
}

TEST_CASE("every C++ and meson block of README.md and docs/*.md has a doc-test annotation") {
  CHECK_MESSAGE(all_docs().errors.empty(), lines_of(all_docs().errors));
  std::map<std::string, int> compiled;  // per doc
  for (const auto& b : all_docs().blocks)
    if (b.kind == Kind::Doctest || b.kind == Kind::Body) ++compiled[b.doc];
  CHECK(compiled["README.md"] >= 3);
  CHECK(compiled["docs/COURSEWORK.md"] >= 5);
}

TEST_CASE("same-as blocks appear verbatim in the files they quote") {
  const auto quotes = blocks_of(Kind::SameAs);
  CHECK(quotes.size() >= 2);
  for (const auto& b : quotes) {
    const fs::path file = kSource / b.argument;
    INFO(b.where() << ": quotes " << b.argument);
    REQUIRE(fs::exists(file));
    CHECK_MESSAGE(appears_in(b.code, read_text(file)),
                  b.where() << ": this block is no longer in " << b.argument << " (whitespace aside):\n" << b.code);
  }
}

TEST_CASE("the exercises' files do not exist in the library yet") {
  for (const auto& b : blocks_of(Kind::File))
    CHECK_MESSAGE(!fs::exists(kSource / b.argument),
                  b.where() << ": " << b.argument << " exists in the repository now; the exercise "
                            << "is done, so the doc needs another one");
}

// The slow part: one translation unit per block (so a block that forgets an #include or a
// `using` fails, as it would in a reader's file), -O0, on all cores; then one program.
TEST_CASE("the C++ code blocks of the docs compile against the library, and their tests pass") {
  const fs::path dir = kBuild / "tests" / "doc_blocks";
  fs::remove_all(dir);
  Sources sources = write_sources(dir);
  compile_all(sources.units, toolchain(dir / "include").compile);
  bool all_compiled = true;
  for (const auto& u : sources.units) {
    CHECK_MESSAGE(u.code == 0, u.what << " does not compile (" << u.source.string() << "):\n" << head(u.output));
    all_compiled = all_compiled && u.code == 0;
  }
  REQUIRE(all_compiled);

  const std::string program = link_program(sources.units, dir / "doc_blocks");
  const auto run = flowgrad::testing::run_command(shell_quote(program) + " --no-intro=true 2>&1");
  INFO("the doc blocks' tests (" << program << "):\n" << run.out);
  CHECK(run.code == 0);
  // Every doctest and body block registered a test case.
  std::size_t cases = 0;
  const auto at = run.out.find("[doctest] test cases:");
  REQUIRE(at != std::string::npos);
  REQUIRE(std::sscanf(run.out.c_str() + at, "[doctest] test cases: %zu", &cases) == 1);
  CHECK(cases >= sources.test_blocks);
}
