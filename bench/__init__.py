"""Benchmarks: the reconciler beside docker-compose and plain `docker run`, on one machine in one
run. Entry point: `bench/run` (see bench/README.md); every section is a module here."""
