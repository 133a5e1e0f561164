"""Benchmarks of the UPR Tracker services (`make bench`); not part of the test suite."""
