"""Runs the ```python blocks of a Markdown page in order, in one namespace, in a fresh
folder, printing each block's output: checks that a walk-through (docs/python.md)
runs as written.

    PYTHONPATH=build/python python3 tests/python/run_doc.py docs/python.md [WORKDIR]
"""

import os
import re
import sys
import tempfile


def main():
    page = os.path.abspath(sys.argv[1])
    work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="bdguard-doc-")
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    blocks = re.findall(r"^```python\n(.*?)^```", open(page).read(), re.S | re.M)
    namespace = {"__name__": "__main__"}
    for i, code in enumerate(blocks, 1):
        print(f"--- block {i} ---", flush=True)
        exec(compile(code, f"{page}:block{i}", "exec"), namespace)
    print(f"ran {len(blocks)} blocks in {work}")


if __name__ == "__main__":
    main()
