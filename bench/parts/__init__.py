"""Code the benchmark scripts in bench/ share; not benchmarks themselves (bench/run_all.py runs only bench/*.py)."""
