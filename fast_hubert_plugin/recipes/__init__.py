"""End-to-end recipes built on the plugin's CLIs (the demo and the benchmarks use them)."""
