"""`scripts/swarm-lab`: up, down, status, env, stop-node, start-node, load (the lab itself is
tests/swarm/lab.py)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from tests.swarm import lab as swarm
from tests.swarm import plumbing as pl
from tests.swarm.plumbing import LabError


def _generic(specs: list[str]) -> dict[int, list[str]]:
    """`--generic-resource 3:gpu=2` -> {3: ["gpu=2"]}."""
    out: dict[int, list[str]] = {}
    for spec in specs:
        node, sep, resource = spec.partition(":")
        if not sep or not node.isdigit() or "=" not in resource:
            raise LabError(f"--generic-resource {spec!r}: expected NODE:KIND=VALUE, e.g. 3:gpu=2")
        out.setdefault(int(node), []).append(resource)
    return out


def _describe(lab: swarm.Lab) -> dict[str, object]:
    try:
        ready = set(swarm.ready_nodes(lab).values())
    except LabError:
        ready = set()  # the manager does not answer: no node counts as Ready
    nodes = []
    for n in lab.nodes:
        pid = pl.read_pid(n.pidfile)
        nodes.append({**asdict(n), "docker_host": n.socket, "pid": pid,
                      "daemon": "running" if pid and pl.alive(pid) else "stopped",
                      "ready": n.name in ready})
    return {"name": lab.name, "docker_host": lab.manager.socket, "registry": lab.registry,
            "host_ip": lab.host_ip, "image": lab.image, "nodes": nodes}


def _status(name: str | None, as_json: bool) -> int:
    names = [name] if name else swarm.labs()
    found = []
    for n in names:
        lab = swarm.Lab.load(n)
        if lab is None:
            left = swarm.leftovers(n)
            print(f"lab {n}: " + (f"not up, but {len(left)} leftovers: scripts/swarm-lab down "
                                  f"--name {n}" if left else "not up"), file=sys.stderr)
            continue
        try:
            found.append(_describe(lab))
        except LabError as exc:
            found.append({"name": n, "error": str(exc)})
    if as_json:
        print(json.dumps(found, indent=2))
        return 0 if found else 1
    for d in found:
        print(f"lab {d['name']}: manager {d.get('docker_host')}  registry {d.get('registry')}")
        for node in d.get("nodes", []):  # type: ignore[attr-defined]
            print(f"  {node['name']:16} {node['ip']:14} daemon {node['daemon']:8} "
                  f"{'Ready' if node['ready'] else 'not ready'}")
        if "error" in d:
            print(f"  error: {d['error']}")
    return 0 if found else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="swarm-lab", description="A multi-node Docker Swarm on this "
                                "machine: each node a dockerd in a network namespace of its own.")
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start the lab (a leftover lab of that name is cleaned up)")
    u.add_argument("--nodes", type=int, default=3)
    u.add_argument("--image", default=swarm.BASE_IMAGE,
                   help="host-engine image copied onto every node (default: %(default)s)")
    u.add_argument("--no-image", action="store_true", help="load no image")
    u.add_argument("--generic-resource", action="append", default=[], metavar="NODE:KIND=VALUE",
                   help="a node generic resource, e.g. 3:gpu=2 (repeatable)")
    u.add_argument("--heartbeat", metavar="DURATION",
                   help="dispatcher heartbeat, e.g. 1s (default: Docker's 5s)")
    u.add_argument("--json", action="store_true", help="print the lab as JSON when up")
    for name, text in (("down", "remove everything of the lab"), ("status", "show the labs"),
                       ("env", "print `export DOCKER_HOST=...` for the manager")):
        sub.add_parser(name, help=text)
    for name, text in (("stop-node", "stop node K's dockerd"), ("start-node", "start it again")):
        s = sub.add_parser(name, help=text)
        s.add_argument("k", type=int)
    ld = sub.add_parser("load", help="copy a host-engine image onto every node (save | load)")
    ld.add_argument("image")
    for cmd, s in sub.choices.items():
        default = None if cmd == "status" else "lab"
        s.add_argument("--name", default=default, help="lab name (default: %(default)s)")
    sub.choices["status"].add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        return _dispatch(args)
    except LabError as exc:
        print(f"swarm-lab: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `status --json | head`
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "up":
        image = None if args.no_image else args.image
        new = swarm.up(args.name, args.nodes, image, _generic(args.generic_resource),
                       log=not args.json, heartbeat=args.heartbeat)
        if args.json:
            print(json.dumps(_describe(new), indent=2))
        return 0
    if args.cmd == "down":
        swarm.down(args.name)
        return 0
    if args.cmd == "status":
        return _status(args.name, args.json)
    lab = swarm.Lab.load(swarm.check_name(args.name))
    if lab is None:
        raise LabError(f"lab {args.name} is not up (scripts/swarm-lab up --name {args.name})")
    if args.cmd == "env":
        print(f"export DOCKER_HOST={lab.manager.socket}")
        print(f"export SWARM_LAB_REGISTRY={lab.registry}")
    elif args.cmd == "stop-node":
        swarm.stop_daemon(lab, args.k)
    elif args.cmd == "start-node":
        swarm.start_daemon(lab, args.k)
        swarm.wait_daemon(lab, args.k)
    elif args.cmd == "load":
        seconds = swarm.load_image(lab, args.image)
        print(f"swarm-lab: {args.image} loaded on every node in {seconds:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
