"""The replica runtime: the code that runs INSIDE every replica container (standard library only).

Its contents are copied into each container at `/opt/serve/` (the `serve_replica` package, the
`ray.serve` shim user code imports, and `probe.py` for the HEALTHCHECK). Nothing here may import
the rest of the reconciler; see `serve_replica/__init__.py` for the environment contract.
"""
