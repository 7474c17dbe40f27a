#!/usr/bin/env bash
# Loads the demo's report.html, a compare.html and a campaign's report.html in headless
# Chromium, as a reader would,
# and fails unless every image loaded (a non-zero natural size), the page fetched nothing
# but its own file and data: URIs (it is self-contained; every host name resolves to
# nothing, so nothing can leave the machine), and the console stayed silent (no error,
# no missing file). Writes a screenshot of each page beside it (report.png, ...;
# docs/images/report.png is the demo report's).
#
#   report_in_browser.sh BDGUARD DIR
#
# DIR holds the demo's output; `bdguard demo` runs into it first unless DIR/report.html
# is newer than BDGUARD (the comparison limited to two defenses to keep the test short),
# then `bdguard compare` into DIR/compare and a campaign over the demo's defended models
# into DIR/campaign (merged without running a task: it is the page that is tested).
# Exit 77 (ctest: skipped) where Chromium is not installed.
set -euo pipefail
cli=$1 dir=$2
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
  echo "skipped: Chromium is not installed (apt-get install chromium; scripts/setup.sh does)"
  exit 77
fi
if [[ ! -f $dir/report.html || $cli -nt $dir/report.html ]]; then
  rm -rf "$dir"
  "$cli" demo --out "$dir" --quiet --compare-methods nc-unlearn,clp >/dev/null
  # compare.html: bdguard compare on the demo's files (CLP alone: seconds).
  "$cli" compare --model "$dir/bd_net.h5" --valid "$dir/data/valid.h5" \
    --poisoned-valid "$dir/data/bd_valid.h5" --test "$dir/data/test.h5" \
    --poisoned-test "$dir/data/bd_test.h5" --methods clp --out "$dir/compare" --quiet >/dev/null
  # A campaign's report.html: the demo's defended models, merged before any task ran
  # (every model missing, scored 0.5), against a ground truth.
  printf 'model,backdoored\nclp,1\nnc-unlearn,0\n' >"$dir/truth.csv"
  "$cli" campaign init --out "$dir/campaign" --models "$dir/models" --clean "$dir/data/valid.h5" \
    --ground-truth "$dir/truth.csv" >/dev/null
  "$cli" campaign merge "$dir/campaign" --quiet >/dev/null || true
fi

# The detection section opens with scan's verdict, also in scan.json.
if [[ ! -f $dir/scan.json ]] || ! grep -q "bdguard scan" "$dir/report.html"; then
  echo "FAIL: the demo wrote no scan.json or its report shows no scan verdict"
  exit 1
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile" "$dir"/.browser-check.html "$dir"/*/.browser-check.html' EXIT
chrome() {
  # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --host-resolver-rules='MAP * ~NOTFOUND' --user-data-dir="$profile" "$@"
}

failures=0
for page in report compare/compare campaign/report; do
  html=$dir/$page.html
  if [[ ! -s $html ]]; then
    echo "FAIL: $html is missing or empty"
    failures=$((failures + 1))
    continue
  fi
  # A copy beside the page (its relative links still resolve) with a script at the end
  # that records, once everything has loaded, each image's natural size and every
  # resource the page fetched.
  check=$(dirname "$html")/.browser-check.html
  sed 's|</body>|<script>\
window.addEventListener("load", () => {\
  const imgs = Array.from(document.images);\
  const broken = imgs.filter(i => !(i.complete \&\& i.naturalWidth > 0 \&\& i.naturalHeight > 0))\
                     .map(i => i.getAttribute("alt") \|\| "(no alt)");\
  const fetched = performance.getEntriesByType("resource").map(e => e.name)\
                     .filter(n => !n.startsWith("data:") \&\& !n.startsWith("file:"));\
  const out = document.createElement("pre");\
  out.id = "bdguard-check";\
  out.textContent = "images=" + imgs.length + " broken=" + JSON.stringify(broken) +\
                    " fetched=" + JSON.stringify(fetched);\
  document.body.appendChild(out);\
});\
</script></body>|' "$html" >"$check"
  log=$(mktemp)
  dom=$(chrome --enable-logging=stderr --v=0 --virtual-time-budget=10000 --dump-dom \
    "file://$(realpath "$check")" 2>"$log")
  result=$(sed -n 's|.*<pre id="bdguard-check">\([^<]*\)</pre>.*|\1|p' <<<"$dom")
  console=$(grep -E 'CONSOLE|Failed to load|ERR_' "$log" || true)
  rm -f "$log"
  echo "$page.html: ${result:-no result}"
  if [[ -z $result ]]; then
    echo "FAIL: $page.html: the check script did not run (the page did not load)"
    failures=$((failures + 1))
  elif [[ $result != *"broken=[] fetched=[]"* || $result == "images=0 "* ]]; then
    echo "FAIL: $page.html: an image did not load, a resource was fetched, or no image"
    failures=$((failures + 1))
  fi
  if [[ -n $console ]]; then
    echo "FAIL: $page.html: console output:"
    echo "$console"
    failures=$((failures + 1))
  fi
  chrome --hide-scrollbars --window-size=1100,1800 --screenshot="$dir/$page.png" \
    "file://$(realpath "$html")" >/dev/null 2>&1
  if [[ ! -s $dir/$page.png ]]; then
    echo "FAIL: no screenshot of $page.html"
    failures=$((failures + 1))
  fi
done
echo "report_in_browser: 3 pages, $failures failures"
exit $((failures > 0))
