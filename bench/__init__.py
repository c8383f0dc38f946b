"""Benchmarks: the platform driven as a deployment would be, beside this machine's raw ceilings."""
