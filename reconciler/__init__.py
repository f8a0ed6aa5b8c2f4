"""serve-reconciler: a GitOps reconciler that deploys Ray Serve-style applications onto Docker."""

__version__ = "0.1.0"
