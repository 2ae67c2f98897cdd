"""The mirror catalogue (data) and what acts on it: probe, choose, render configs."""
