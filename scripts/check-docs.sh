#!/usr/bin/env bash
# Checks the documentation (ctest runs it as `docs_links`): README.md and docs/**/*.md.
#   scripts/check-docs.sh BDGUARD_BINARY
# Fails, listing each problem, when
#   (a) a relative Markdown link or image, [text](path) or ![alt](path), names a file
#       that does not exist (http(s)://, mailto: and #anchors are not checked; a path's
#       #anchor is dropped; paths are relative to the Markdown file);
#   (b) a repository path in backticks (`src/...`, `include/...`, `tools/...`, `tests/...`,
#       `bench/...`, `fuzz/...`, `scripts/...`, `docs/...`, `models/...`, `cmake/...`,
#       `.ci/...`; the first word of the span) does not exist; placeholders and globs
#       (containing <, *, ... or {) are skipped;
#   (c) a subcommand that `BDGUARD_BINARY --help` lists has no docs/commands/<name>.md.
# Fenced code blocks are not read for (a) and (b): they hold commands and output.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [[ $# -ne 1 || ! -x $1 ]]; then
  echo "usage: scripts/check-docs.sh BDGUARD_BINARY (an executable bdguard)" >&2
  exit 2
fi
bin="$1"
problems=()

mapfile -t docs < <({ echo README.md; find docs -name '*.md' 2>/dev/null; } | sort -u)

# Prints "LINE<TAB>KIND<TAB>TARGET" for every link/image (KIND link) and every backtick
# span (KIND code) outside fenced code blocks. A span or a link may run over a line
# break (not over a blank line); LINE is where it starts.
extract() {
  perl -0777 -ne '
    my @lines = split /\n/, $_, -1;
    my $fence = 0;
    for (@lines) {  # fenced blocks become blank lines: line numbers stay
      if (/^\s*(```|~~~)/) { $fence = !$fence; $_ = ""; next; }
      $_ = "" if $fence;
    }
    my $text = join("\n", @lines);
    my $line_at = sub { 1 + (substr($text, 0, $_[0]) =~ tr/\n//) };
    # inline code spans; links are looked for in what is left (same length, so the
    # line numbers hold)
    my $rest = $text;
    while ($text =~ /(`+)((?:(?!\n[ \t]*\n).)+?)\1/gs) {
      my ($start, $len, $code) = ($-[0], $+[0] - $-[0], $2);
      $code =~ s/\s+/ /g;
      print $line_at->($start), "\tcode\t$code\n";
      substr($rest, $start, $len) = " " x $len;
    }
    while ($rest =~ /!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g) {
      print $line_at->($-[0]), "\tlink\t$1\n";
    }
    # reference definitions: [label]: path
    while ($rest =~ /^[ ]{0,3}\[[^\]]+\]:[ \t]*<?(\S+?)>?(?:[ \t]|$)/mg) {
      print $line_at->($-[0]), "\tlink\t$1\n";
    }
  ' "$1"
}

repo_prefix='^(src|include|tools|tests|bench|fuzz|scripts|docs|models|cmake|\.ci)/'

for md in "${docs[@]}"; do
  [[ -f $md ]] || continue
  dir="$(dirname "$md")"
  while IFS=$'\t' read -r line kind target; do
    if [[ $kind == link ]]; then
      case "$target" in
        http://* | https://* | mailto:* | '#'*) continue ;;
      esac
      path="${target%%#*}"
      path="${path%%\?*}"
      [[ -z $path ]] && continue
      if [[ $path == /* ]]; then
        problems+=("$md:$line: link to an absolute path: $target")
      elif [[ ! -e "$dir/$path" ]]; then
        problems+=("$md:$line: link to a missing file: $target")
      fi
    else
      word="${target#"${target%%[![:space:]]*}"}"  # leading blanks off
      word="${word%%[[:space:]]*}"                  # the first word
      [[ $word =~ $repo_prefix ]] || continue
      case "$word" in
        *'<'* | *'*'* | *'...'* | *'{'*) continue ;;
      esac
      word="${word%%[:,;)]}"  # `src/x.cpp:` and the like
      if [[ ! -e $word ]]; then
        problems+=("$md:$line: names a path that does not exist: \`$word\`")
      fi
    fi
  done < <(extract "$md")
done

# (c) every subcommand of `bdguard --help` has its page. CLI11 lists them after the
# option groups, under a "Subcommands:" heading (and under their own group's heading
# when a subcommand sets one), one per line, indented: "  name[, alias]  description".
if ! help="$("$bin" --help 2>&1)"; then
  problems+=("$bin --help failed")
fi
mapfile -t subcommands < <(printf '%s\n' "$help" | awk '
  tolower($0) ~ /^subcommands:/ { on = 1; next }
  on && /^[ \t]+[a-z][a-z0-9_-]*/ { name = $1; sub(/,$/, "", name); print name }')
if [[ ${#subcommands[@]} -eq 0 ]]; then
  problems+=("$bin --help lists no subcommands (no Subcommands: section)")
fi
for cmd in "${subcommands[@]}"; do
  if [[ ! -f docs/commands/$cmd.md ]]; then
    problems+=("subcommand '$cmd' ($bin --help) has no page docs/commands/$cmd.md")
  fi
done

if [[ ${#problems[@]} -gt 0 ]]; then
  printf 'check-docs: %s\n' "${problems[@]}" >&2
  echo "check-docs: ${#problems[@]} problem(s) in README.md and docs/" >&2
  exit 1
fi
echo "check-docs: ${#docs[@]} Markdown files, links and paths exist;" \
  "${#subcommands[@]} subcommands each have docs/commands/<name>.md"
