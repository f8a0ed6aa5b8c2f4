"""High-volume loader fuzz (issue 9): a seeded, deterministic mutation loop over the config
corpus (tests/spec/invalid, tests/spec/valid, the examples), 10,000 inputs in the default suite
and 200,000 behind `slow`. Whatever the bytes, only ConfigError escapes, no issue is an internal
error, every issue is located in a file, and no input takes more than 2 s.

It complements tests/spec/test_spec_fuzz.py (hypothesis, ~1,200 structured inputs): this one is
cheap per input (small seeds, byte- and token-level edits), so it reaches volume."""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.spec import load_bytes

SPEC = Path(__file__).resolve().parents[1] / "spec"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples-repo"
# Expensive on purpose (alias and nesting bombs): covered by the corpus test, not mutated here.
SKIP = {"alias_bomb.yaml", "alias_expansion.yaml", "deep_nesting.yaml", "non_utf8.yaml"}
# A hang spins (CPU) or waits: CPU time is held tight, wall time loosely, since a busy 2-core
# machine once stalled this process 3.3 s on an input that takes 2 ms.
PER_INPUT_S = 2.0
PER_INPUT_WALL_S = 30.0
SEED = 20240917
TOKENS = [
    b": ", b"- ", b"\n", b"\n  ", b"\t", b"{", b"}", b"[", b"]", b",", b"&a ", b"*a", b"<<: *a\n",
    b"!!python/object:os.system ", b"!!binary ", b"!custom ", b"~", b"null", b"yes", b"NO",
    b"1e309", b"-1", b"0x10", b"99999999999999999999999", b".nan", b"'", b'"', b"\\", b"\x00",
    b"\xff", b"\xe2\x80\xae", b"..", b"../../etc", b"/", b"import_path", b"deployments",
    b"applications", b"name", b"num_replicas", b"runtime_env", b"working_dir", b"env_vars",
    b"image_uri", b"--privileged", b"from_env", b"secret", b"user_config", b"route_prefix",
    b"port", b"65536", b"x-", b"%YAML 1.1\n", b"---\n", b"...\n", b"? ", b"|\n", b">-\n",
]  # fmt: skip


def _seeds(tmp: Path) -> list[tuple[str, bytes]]:
    """(config name, bytes) of every small corpus file, all copied into one root with the code
    they name, so a mutated config that stays valid goes on to the code scan."""
    for source in (SPEC / "invalid", SPEC / "valid", EXAMPLES):
        for path in source.glob("*.py"):
            shutil.copy(path, tmp / path.name)
    seeds = []
    for source in (SPEC / "invalid", SPEC / "valid", EXAMPLES):
        for path in sorted(source.glob("*.yaml")):
            if path.name not in SKIP:
                seeds.append((path.name, path.read_bytes()))
    return seeds


def _mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(out))
        op = rng.randrange(7)
        if op == 0 and out:  # flip a byte
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif op == 1:  # delete a span
            del out[at : at + rng.randint(1, 12)]
        elif op == 2:  # insert a token
            out[at:at] = rng.choice(TOKENS)
        elif op == 3:  # duplicate a line
            lines = bytes(out).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            out = bytearray(b"\n".join(lines))
        elif op == 4:  # splice in lines of another seed
            lines = other.split(b"\n")
            i = rng.randrange(len(lines))
            out[at:at] = b"\n".join(lines[i : i + rng.randint(1, 4)]) + b"\n"
        elif op == 5:  # re-indent a line
            lines = bytes(out).split(b"\n")
            i = rng.randrange(len(lines))
            lines[i] = b" " * rng.choice((0, 1, 2, 3, 4, 6)) + lines[i].lstrip(b" ")
            out = bytearray(b"\n".join(lines))
        else:  # replace a scalar-looking span by a token
            out[at : at + rng.randint(1, 6)] = rng.choice(TOKENS)
    return bytes(out)


def _inputs(seeds: list[tuple[str, bytes]], count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    for _ in range(count):
        name, data = rng.choice(seeds)
        yield name, _mutate(rng, data, rng.choice(seeds)[1])


def _fuzz(tmp: Path, count: int, seed: int) -> Counter[str]:
    seeds = _seeds(tmp)
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    for name, data in _inputs(seeds, count, seed):
        began, began_cpu = time.monotonic(), time.thread_time()
        try:
            load_bytes(data, root=tmp, config_path=name, environ={})
            outcomes["valid"] += 1
        except ConfigError as exc:
            assert exc.issues, data
            internal = [i for i in exc.issues if "internal error" in i.message]
            assert not internal, (internal, data)
            assert all(i.file and i.message for i in exc.issues), (exc.issues, data)
            outcomes["refused"] += 1
        took, cpu = time.monotonic() - began, time.thread_time() - began_cpu
        slowest = max(slowest, cpu)
        assert cpu < PER_INPUT_S and took < PER_INPUT_WALL_S, (cpu, took, data)
    outcomes["slowest_cpu_ms"] = int(slowest * 1000)
    return outcomes


def test_ten_thousand_mutated_configs(tmp_path: Path) -> None:
    began = time.monotonic()
    outcomes = _fuzz(tmp_path, 10_000, SEED)
    took = time.monotonic() - began
    print(f"loader fuzz: 10,000 inputs (seed {SEED}) in {took:.1f}s: {outcomes}")
    assert outcomes["valid"] + outcomes["refused"] == 10_000
    assert outcomes["valid"] >= 10  # some mutants stay valid: they reach the code scan too


@pytest.mark.slow
def test_two_hundred_thousand_mutated_configs(tmp_path: Path) -> None:
    seed = random.SystemRandom().randrange(2**32)
    print(f"loader fuzz (long): seed {seed}")
    outcomes = _fuzz(tmp_path, 200_000, seed)
    print(f"loader fuzz (long): {outcomes}")
    assert outcomes["valid"] + outcomes["refused"] == 200_000
