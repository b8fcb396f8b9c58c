"""Benchmarks: commands that print speed and quality figures beside the plain-script baseline."""
