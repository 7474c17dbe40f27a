#include "report/document.h"

#include <cstdio>
#include <sstream>

namespace bdguard::report {

void Document::heading(int level, const std::string& text) {
  Block b;
  b.kind = Block::Kind::kHeading;
  b.level = level;
  b.text = text;
  blocks_.push_back(std::move(b));
}

void Document::paragraph(const std::string& text) {
  Block b;
  b.kind = Block::Kind::kParagraph;
  b.text = text;
  blocks_.push_back(std::move(b));
}

void Document::note(const std::string& text) {
  Block b;
  b.kind = Block::Kind::kNote;
  b.text = text;
  blocks_.push_back(std::move(b));
}

void Document::list(const std::vector<std::string>& items) {
  Block b;
  b.kind = Block::Kind::kList;
  b.items = items;
  blocks_.push_back(std::move(b));
}

void Document::table(const std::vector<std::string>& header,
                     const std::vector<std::vector<std::string>>& rows,
                     const std::vector<bool>& right_aligned) {
  Block b;
  b.kind = Block::Kind::kTable;
  b.items = header;
  b.rows = rows;
  b.right_aligned = right_aligned;
  b.right_aligned.resize(header.size(), false);
  blocks_.push_back(std::move(b));
}

void Document::image(const std::string& alt, const std::string& path) {
  Block b;
  b.kind = Block::Kind::kImage;
  b.text = alt;
  b.path = path;
  blocks_.push_back(std::move(b));
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// Markdown: text as is, but a table cell may not hold a raw pipe or newline.
std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// HTML of inline text: escaped, with `code` spans.
std::string html_inline(const std::string& s) {
  std::string out;
  bool code = false;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '`') {
      std::string part = html_escape(s.substr(start, i - start));
      out += code ? "<code>" + part + "</code>" : part;
      if (i < s.size()) code = !code;
      start = i + 1;
    }
  }
  return out;
}

// Markdown image paths: angle brackets allow '=' and spaces in file names.
std::string md_link_target(const std::string& path) { return "<" + path + ">"; }

}  // namespace

std::string to_markdown(const Document& doc) {
  std::ostringstream md;
  bool first = true;
  for (const Block& b : doc.blocks()) {
    if (!first) md << '\n';
    first = false;
    switch (b.kind) {
      case Block::Kind::kHeading:
        md << std::string(static_cast<size_t>(b.level), '#') << ' ' << b.text << '\n';
        break;
      case Block::Kind::kParagraph:
        md << b.text << '\n';
        break;
      case Block::Kind::kNote:
        md << "> " << b.text << '\n';
        break;
      case Block::Kind::kList:
        for (const auto& item : b.items) md << "- " << item << '\n';
        break;
      case Block::Kind::kTable: {
        md << '|';
        for (const auto& h : b.items) md << ' ' << md_cell(h) << " |";
        md << "\n|";
        for (bool right : b.right_aligned) md << (right ? " ---: |" : " --- |");
        md << '\n';
        for (const auto& row : b.rows) {
          md << '|';
          for (const auto& cell : row) md << ' ' << md_cell(cell) << " |";
          md << '\n';
        }
        break;
      }
      case Block::Kind::kImage:
        md << "![" << b.text << "](" << md_link_target(b.path) << ")\n";
        break;
    }
  }
  return md.str();
}

namespace {

constexpr const char* kStyle = R"(
body { font-family: sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f2f2f2; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: monospace; background: #f4f4f4; padding: 0 .2em; word-break: break-all; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { border-left: 4px solid #e0a000; background: #fff8e0; padding: .4em .8em; }
)";

}  // namespace

std::string to_html(const Document& doc, const std::string& title,
                    const std::function<std::string(const std::string&)>& image_uri) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>"
    << html_escape(title) << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n";
  for (const Block& b : doc.blocks()) {
    switch (b.kind) {
      case Block::Kind::kHeading:
        h << "<h" << b.level << '>' << html_inline(b.text) << "</h" << b.level << ">\n";
        break;
      case Block::Kind::kParagraph:
        h << "<p>" << html_inline(b.text) << "</p>\n";
        break;
      case Block::Kind::kNote:
        h << "<p class=\"note\">" << html_inline(b.text) << "</p>\n";
        break;
      case Block::Kind::kList:
        h << "<ul>\n";
        for (const auto& item : b.items) h << "<li>" << html_inline(item) << "</li>\n";
        h << "</ul>\n";
        break;
      case Block::Kind::kTable: {
        auto cls = [&](size_t i) {
          return i < b.right_aligned.size() && b.right_aligned[i] ? " class=\"r\"" : "";
        };
        h << "<table>\n<thead><tr>";
        for (size_t i = 0; i < b.items.size(); ++i) {
          h << "<th" << cls(i) << '>' << html_inline(b.items[i]) << "</th>";
        }
        h << "</tr></thead>\n<tbody>\n";
        for (const auto& row : b.rows) {
          h << "<tr>";
          for (size_t i = 0; i < row.size(); ++i) {
            h << "<td" << cls(i) << '>' << html_inline(row[i]) << "</td>";
          }
          h << "</tr>\n";
        }
        h << "</tbody>\n</table>\n";
        break;
      }
      case Block::Kind::kImage: {
        std::string uri = image_uri ? image_uri(b.path) : "";
        if (uri.empty()) {
          h << "<p class=\"note\">" << html_escape(b.text) << ": image not available</p>\n";
        } else {
          h << "<figure><img src=\"" << uri << "\" alt=\"" << html_escape(b.text)
            << "\"><figcaption>" << html_inline(b.text) << "</figcaption></figure>\n";
        }
        break;
      }
    }
  }
  h << "</body>\n</html>\n";
  return h.str();
}

std::string formatted(const char* spec, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

std::string fixed1(double v) { return formatted("%.1f", v); }
std::string fixed2(double v) { return formatted("%.2f", v); }
std::string percent1(double v) { return formatted("%.1f %%", v); }

}  // namespace bdguard::report
