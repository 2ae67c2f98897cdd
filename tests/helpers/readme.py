"""README.md's two commands, read from the file itself so that tests and CI run exactly what a
new user copies: the ```sh block after `<!-- command: run -->` and after `<!-- command: test -->`.

    python tests/helpers/readme.py run|test     # print one (CI runs it this way)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def command(name: str, readme: Path = README) -> str:
    """The command under `<!-- command: NAME -->`, as one line."""
    text = readme.read_text(encoding="utf-8")
    found = re.search(rf"<!-- command: {re.escape(name)} -->\s*```sh\n(.*?)```", text, re.S)
    if found is None:
        raise LookupError(f"{readme} has no ```sh block after <!-- command: {name} -->")
    lines = [ln for ln in found.group(1).splitlines() if ln.strip()]
    if len(lines) != 1:
        raise LookupError(f"the {name!r} command in {readme} is not one line: {lines}")
    return lines[0].strip()


if __name__ == "__main__":
    print(command(sys.argv[1]))
