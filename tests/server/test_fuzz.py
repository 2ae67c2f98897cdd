"""API fuzzing with schemathesis against the served OpenAPI document: no request gets a 5xx."""

from __future__ import annotations

import subprocess

import pytest

from i2vkit import tools


@pytest.mark.slow
def test_no_request_makes_a_server_error(start_server, tmp_path):
    schemathesis = tools.script("schemathesis", "schemathesis")
    server = start_server("--queue-size", "1")  # accepted fuzz jobs cannot pile up
    result = subprocess.run(
        [schemathesis, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "30", "--request-timeout", "30", "--generation-deterministic",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache goes there
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert "passed" in result.stdout
    assert "Traceback" not in server.log.read_text()
