"""Network-namespace lab used by `opendots demo --lab`, the end-to-end tests and the benchmarks."""
