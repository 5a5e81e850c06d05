#!/usr/bin/env python3
"""doc_blocks.py — pulls the buildable parts out of a Markdown page (for
tests/install/run.sh, which checks that docs/sdk.md's commands run as written):
every ```c or ```cpp block whose first line names its file ("/* saga.c — ..."
or "// app.cpp — ...") is written to OUTDIR/<that name>, and every line of a
```sh block that starts with "cc " or "g++ " is appended to OUTDIR/commands.sh.
Usage: doc_blocks.py [--commands-only] PAGE.md OUTDIR (--commands-only: only
commands.sh, e.g. into a copy of the folder the page's sources are in).
Prints the names it wrote."""
import os
import re
import sys

args = sys.argv[1:]
commands_only = args[:1] == ["--commands-only"]
page, outdir = args[1:] if commands_only else args
os.makedirs(outdir, exist_ok=True)
blocks = re.findall(r"^```(\w+)\n(.*?)^```$", open(page).read(), re.S | re.M)
commands = []
for lang, text in blocks:
    if lang in ("c", "cpp") and not commands_only:
        m = re.match(r"(?:/\*|//) ([\w-]+\.(?:c|cpp)) —", text)
        if m:
            with open(os.path.join(outdir, m.group(1)), "w") as f:
                f.write(text)
            print(m.group(1))
    elif lang == "sh":
        lines = text.replace("\\\n", " ").splitlines()
        commands += [l for l in lines if l.startswith(("cc ", "g++ "))]
with open(os.path.join(outdir, "commands.sh"), "w") as f:
    f.write("set -ex\n" + "\n".join(commands) + "\n")
print("commands.sh: %d commands" % len(commands))
