"""mobexport.benchmarks — host harness, results and their store, results server, analysis, plots."""
