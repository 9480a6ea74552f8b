"""Tooling for tests and benchmarks (not part of the product): starting the served web app."""
