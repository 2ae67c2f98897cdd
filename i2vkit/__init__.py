"""i2vkit's shared basics: the base error and the settings object every room uses.

This package imports nothing heavy (no torch, no network clients): the rooms `mirrors`, `env`,
`images` and `runtime` import from it, never the other way round.
"""

__version__ = "0.1.0"
