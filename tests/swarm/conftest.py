"""The swarm tests' fixtures live in tests/swarm/fixtures.py, a plugin of tests/conftest.py (one
lab per session, shared with the swarm runs of tests/e2e); the names tests import are here too."""

from tests.swarm.fixtures import GPU_NODE, GPUS, HEARTBEAT, LabNode, SwarmLab, unique

__all__ = ["GPUS", "GPU_NODE", "HEARTBEAT", "LabNode", "SwarmLab", "unique"]
