"""Helpers of the tests and the benchmarks (no tests here): real processes, browsers, network
namespaces, a garbled line, the virtual-time loop. bench/ imports only from this package."""
