"""Speed and accuracy measurements (not part of the tests); see benchmarks/README.md."""
