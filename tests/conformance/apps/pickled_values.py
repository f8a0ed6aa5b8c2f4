"""Any picklable value crosses a handle: dataclasses, bytes, sets, tuples, and exceptions."""

from dataclasses import dataclass

from ray import serve


@dataclass
class Point:
    x: float
    y: float


@serve.deployment
class Geometry:
    def centroid(self, points: list, label: bytes) -> tuple:
        cx = sum(p.x for p in points) / len(points)
        cy = sum(p.y for p in points) / len(points)
        return Point(cx, cy), label.upper(), {len(points)}


@serve.deployment
class Client:
    def __init__(self, geometry):
        self.geometry = geometry

    async def __call__(self) -> dict:
        point, label, sizes = await self.geometry.centroid.remote(
            [Point(0, 0), Point(2, 0), Point(2, 2), Point(0, 2)], b"square"
        )
        return {
            "point": [point.x, point.y],
            "type": type(point).__name__,
            "label": label.decode(),
            "sizes": sorted(sizes),
        }


app = Client.bind(Geometry.bind())
