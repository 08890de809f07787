"""The benchmark scripts under bench/: their merged GPU report and a CPU smoke run of bench/gpu.sh."""
