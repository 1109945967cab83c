"""textlstm's benchmarks (the code behind `textlstm bench`, `bench-scale`, `serve-bench`) and,
in experiments/, the one-off harnesses behind figures in docs/. Not part of the installed
package: they run from a source checkout (README.md here lists them)."""
