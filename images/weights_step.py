"""Run inside the image's weights stage with the env's python: fetch the model's files with
i2vkit's own `i2vkit setup --weights-only`, into HF_HOME's cache layout.

When the build has an HF token, HF_TOKEN_URL names the one-shot loopback server
(images/secrets.py): the token is read once, into the child's environment only, never written
and never printed. Standard library only; no i2vkit import (it runs before setup's checks).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import urllib.request


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--mirror", required=True)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    url = env.pop("HF_TOKEN_URL", "")
    if url:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback URL
                env["HF_TOKEN"] = answer.read().decode().strip()
        except OSError as error:
            print(
                f"weights: cannot read the HF token from the build host ({error}); "
                "build with host networking (i2vkit build-image does)",
                file=sys.stderr,
            )
            return 2
    command = [
        sys.executable,
        "-m",
        "i2vkit",
        "setup",
        "--weights-only",
        "--model",
        args.model,
        "--mirror",
        args.mirror,
    ]
    return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
