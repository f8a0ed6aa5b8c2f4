"""The replica runtime: the code that runs INSIDE every replica container (standard library only).

Its contents are copied into each container at `/opt/serve/` (the `serve_replica` package and the
`ray.serve` shim user code imports). Nothing here may import
the rest of the reconciler; see `serve_replica/__init__.py` for the environment contract.
"""
