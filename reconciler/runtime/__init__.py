"""The container runtime: Docker, seen as the replicas this reconciler instance owns."""
