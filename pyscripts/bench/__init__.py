"""Benchmarks (not tests): run by hand, their figures go into the README."""
