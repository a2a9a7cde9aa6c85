"""mnist-edge benchmarks: quantised accuracy against latency across runtimes."""
