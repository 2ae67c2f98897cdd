"""Dockerfile(s) and the code that builds and checks images."""
