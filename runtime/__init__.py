"""The inference runtime: hardware, models, memory planner, generation, server, web page.

Importing this package (and `runtime.hardware`, `runtime.advice`, `runtime.doctor`) never imports
torch: `invoke doctor` and `invoke setup` run on machines where torch is not installed yet. The
modules that need torch import it themselves.
"""
