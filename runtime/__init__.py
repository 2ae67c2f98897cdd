"""The inference runtime: hardware, models, memory planner, generation, server, web page.

Importing this package (and `i2vkit.host`, `i2vkit.advice`, `i2vkit.doctor`) never imports
torch: `i2vkit doctor` and `i2vkit setup` run on machines where torch is not installed yet. The
modules that need torch import it themselves.
"""
