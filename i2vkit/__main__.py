"""`python -m i2vkit ...`: the console script, for an interpreter whose scripts are not on PATH
(and the way the runtime tasks re-run themselves inside the env setup built)."""

from i2vkit.cli import main

main()
