"""Who may send a replica a pickle (serve_replica/calls.py): a peer on one of its own networks,
or its loopback; the gateway is the host (a published port) and needs the router's stamp; an
address from elsewhere (a port published beyond the loopback keeps the caller's) is refused."""

from __future__ import annotations

from reconciler.replica.serve_replica.calls import inside, parse_routes

# A container on two networks (a bridge 172.19.0.0/16 with its default route, and an overlay
# 10.10.1.0/24), as the kernel writes /proc/net/route: little-endian hex.
ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010013AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000013AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth1\t00010A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_the_gateway_and_the_own_subnets_are_read_from_the_route_table() -> None:
    subnets, gateway = parse_routes(ROUTE)
    assert gateway == "172.19.0.1"
    assert len(subnets) == 2


def test_a_peer_is_inside_on_an_own_network_or_the_loopback_only() -> None:
    routes = parse_routes(ROUTE)
    assert inside("172.19.0.7", routes) is True
    assert inside("10.10.1.4", routes) is True
    assert inside("127.0.0.1", routes) is True
    assert inside("192.0.2.10", routes) is False  # forwarded from another host
    assert inside("172.20.0.3", routes) is False  # another Docker network
    assert inside("fd00::3", routes) is None  # cannot tell: the caller keeps the old rule
    assert inside("172.19.0.7", ((), None)) is None  # no routes read
