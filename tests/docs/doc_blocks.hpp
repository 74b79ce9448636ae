// The code blocks of the Markdown docs and their doc-test annotations, and the sources the
// docs test compiles from them. The convention (docs/COURSEWORK.md, "How these docs are
// tested"): the line right before a fenced block is an HTML comment saying what to do with
// it, invisible on the rendered page:
//
//   <!-- doc-test: doctest -->            a test file's contents (TEST_CASEs); compiled and run
//   <!-- doc-test: body -->               statements: run as one test case; its #includes
//                                         go above it
//   <!-- doc-test: file PATH -->          the file PATH of an exercise (a header other blocks
//                                         #include, or a .cpp compiled and linked in)
//   <!-- doc-test: same-as PATH -->       appears verbatim (modulo whitespace) in PATH, a file
//                                         of the repository
//   <!-- doc-test: skip REASON -->        not checked, and why
//
// doctest and body take `prelude=PATH`: a repository file included first (what a reader's
// own file would have, such as README's MyLayer). Every cpp and meson block needs an
// annotation; one that has none, or an annotation followed by no block, is an error.
#pragma once

#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace doc_test {

enum class Kind { Doctest, Body, File, SameAs, Skip };

struct Block {
  std::string doc;        // path relative to the repository, e.g. "docs/COURSEWORK.md"
  std::size_t line = 0;   // of the opening fence, 1-based
  std::string language;   // the fence's info string: "cpp", "meson", ...
  std::string code;       // between the fences
  Kind kind = Kind::Skip;
  std::string argument;   // file: its path; same-as: the repository file; skip: the reason
  std::string prelude;    // repository file to include first, or empty
  std::string where() const { return doc + ":" + std::to_string(line); }
  std::size_t code_line() const { return line + 1; }
};

struct Parsed {
  std::vector<Block> blocks;        // annotated blocks, in order
  std::vector<std::string> errors;  // "doc:line: what is wrong"
};

inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

inline bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline bool is_cpp(const std::string& language) {
  for (const char* l : {"cpp", "c++", "cc", "cxx", "hpp"})
    if (language == l) return true;
  return false;
}

// Languages whose blocks must say how they are checked.
inline bool needs_annotation(const std::string& language) {
  return is_cpp(language) || language == "meson";
}

// Reads "<!-- doc-test: KIND [ARGUMENT] [prelude=PATH] -->" into b; returns an error or "".
inline std::string read_annotation(const std::string& comment, Block& b) {
  const std::string open = "<!-- doc-test:", close = "-->";
  std::string inside = trim(comment.substr(open.size(), comment.size() - open.size() - close.size()));
  std::istringstream words(inside);
  std::string kind, word, rest;
  words >> kind;
  while (words >> word) {
    if (starts_with(word, "prelude=")) b.prelude = word.substr(8);
    else rest += (rest.empty() ? "" : " ") + word;
  }
  b.argument = rest;
  if (kind == "doctest" || kind == "body") {
    b.kind = kind == "doctest" ? Kind::Doctest : Kind::Body;
    if (!rest.empty()) return "'" + kind + "' takes no argument, got '" + rest + "'";
  } else if (kind == "file" || kind == "same-as" || kind == "skip") {
    b.kind = kind == "file" ? Kind::File : kind == "same-as" ? Kind::SameAs : Kind::Skip;
    if (rest.empty()) return "'" + kind + "' needs " + (kind == "skip" ? "a reason" : "a path");
  } else {
    return "unknown doc-test kind '" + kind + "' (doctest, body, file, same-as, skip)";
  }
  if (!b.prelude.empty() && b.kind != Kind::Doctest && b.kind != Kind::Body)
    return "prelude= is for doctest and body blocks";
  if ((b.kind == Kind::Doctest || b.kind == Kind::Body || b.kind == Kind::File) && !is_cpp(b.language))
    return "a " + kind + " block must be C++ (```cpp), not '" + b.language + "'";
  return "";
}

// Every fenced block of a Markdown text; blocks must be annotated as above.
inline Parsed parse_markdown(const std::string& doc, const std::string& text) {
  Parsed out;
  const auto lines = split_lines(text);
  auto error = [&](std::size_t line, const std::string& what) {
    out.errors.push_back(doc + ":" + std::to_string(line) + ": " + what);
  };
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string line = trim(lines[i]);
    const bool annotation = starts_with(line, "<!-- doc-test:");
    const bool fence = starts_with(line, "```");
    if (annotation && !(i + 1 < lines.size() && starts_with(trim(lines[i + 1]), "```")))
      error(i + 1, "a doc-test annotation must be the line right before a code block's opening ```");
    if (!fence) continue;
    Block b;
    b.doc = doc, b.line = i + 1, b.language = trim(line.substr(3));
    const std::size_t indent = lines[i].find('`');
    std::size_t end = i + 1;
    for (; end < lines.size() && trim(lines[end]) != "```"; ++end)
      b.code += (lines[end].size() >= indent ? lines[end].substr(indent) : trim(lines[end])) + "\n";
    if (end == lines.size()) {
      error(b.line, "code block never closed");
      break;
    }
    const std::string before = i > 0 ? trim(lines[i - 1]) : "";
    i = end;
    if (!starts_with(before, "<!-- doc-test:")) {
      if (needs_annotation(b.language))
        error(b.line, "```" + b.language + " block has no doc-test annotation: put <!-- doc-test: KIND --> "
                      "on the line before it (docs/COURSEWORK.md, 'How these docs are tested')");
      continue;
    }
    const std::string wrong = read_annotation(before, b);
    if (!wrong.empty()) error(b.line - 1, wrong);
    else out.blocks.push_back(std::move(b));
  }
  return out;
}

// Every run of whitespace as one space: how same-as compares.
inline std::string squeeze_space(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    out += c, space = false;
  }
  return out;
}

inline bool appears_in(const std::string& code, const std::string& file_text) {
  return squeeze_space(file_text).find(squeeze_space(code)) != std::string::npos;
}

inline std::string line_directive(std::size_t line, const std::string& doc) {
  return "#line " + std::to_string(line) + " \"" + doc + "\"\n";
}

// The translation unit of a doctest or body block. #line makes compiler errors and doctest's
// reports name the doc and its line. A body's preprocessor lines go above its test case.
inline std::string block_source(const Block& b, const std::string& prelude_path) {
  std::string src = "// Generated from " + b.where() + " by tests/docs/test_docs.cpp.\n";
  src += "#include <doctest/doctest.h>\n";
  if (!prelude_path.empty()) src += "#include \"" + prelude_path + "\"\n";
  if (b.kind == Kind::Doctest) return src + line_directive(b.code_line(), b.doc) + b.code;
  const auto lines = split_lines(b.code);
  auto copy = [&](bool preprocessor) {  // a #line wherever a run of copied lines starts
    for (std::size_t i = 0, next = std::string::npos; i < lines.size(); ++i) {
      if (starts_with(trim(lines[i]), "#") != preprocessor) continue;
      if (i != next) src += line_directive(b.code_line() + i, b.doc);
      src += lines[i] + "\n", next = i + 1;
    }
  };
  copy(true);
  src += "TEST_CASE(\"" + b.where() + " (body block)\") {\n";
  copy(false);
  return src + "}\n";
}

// An exercise's file as the reader would write it, with #line for the compiler's messages.
inline std::string file_source(const Block& b) { return line_directive(b.code_line(), b.doc) + b.code; }

}  // namespace doc_test
