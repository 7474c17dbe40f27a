// A small document model rendered both as Markdown and as self-contained HTML, so the
// two reports always say the same thing.
//
// Text is plain; a span between backticks is code (`conv_3`), in both renderings.
// HTML escapes every character it must; Markdown escapes table-cell pipes.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace bdguard::report {

struct Block {
  enum class Kind { kHeading, kParagraph, kList, kTable, kImage, kNote };
  Kind kind = Kind::kParagraph;
  int level = 1;                               // headings
  std::string text;                            // heading, paragraph, note; image alt text
  std::vector<std::string> items;              // list items; table header
  std::vector<std::vector<std::string>> rows;  // table rows
  std::vector<bool> right_aligned;             // per table column
  std::string path;                            // image: relative to the output folder
};

class Document {
 public:
  void heading(int level, const std::string& text);
  void paragraph(const std::string& text);
  // A paragraph set apart (a warning or a missing plot).
  void note(const std::string& text);
  void list(const std::vector<std::string>& items);
  void table(const std::vector<std::string>& header,
             const std::vector<std::vector<std::string>>& rows,
             const std::vector<bool>& right_aligned = {});
  void image(const std::string& alt, const std::string& path);
  const std::vector<Block>& blocks() const { return blocks_; }

 private:
  std::vector<Block> blocks_;
};

std::string to_markdown(const Document& doc);
// `image_uri(path)` returns the data: URI of an image (or "" to leave it out).
std::string to_html(const Document& doc, const std::string& title,
                    const std::function<std::string(const std::string&)>& image_uri);

std::string html_escape(const std::string& s);

// Numbers as the reports print them: formatted("%g", v) with any printf spec of one
// double, fixed1(98.65) "98.7", fixed2(98.654) "98.65", percent1(98.65) "98.7 %".
std::string formatted(const char* spec, double v);
std::string fixed1(double v);
std::string fixed2(double v);
std::string percent1(double v);

}  // namespace bdguard::report
