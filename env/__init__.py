"""Environment specs and lockfiles (data) and the code that builds environments."""
