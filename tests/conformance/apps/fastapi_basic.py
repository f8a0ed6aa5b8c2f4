"""FastAPI ingress: routes on the class's methods, path and query parameters, sync and async."""

from fastapi import FastAPI
from ray import serve

api = FastAPI()
STARTED = []


@api.on_event("startup")
def started() -> None:
    STARTED.append("startup event ran")


@serve.deployment
@serve.ingress(api)
class Library:
    def __init__(self):
        self.books = {1: "Dune", 2: "Emma"}

    @api.get("/")
    def index(self) -> dict:
        return {"books": len(self.books), "started": STARTED}

    @api.get("/books/{book_id}")
    async def book(self, book_id: int, upper: bool = False) -> dict:
        title = self.books.get(book_id, "unknown")
        return {"id": book_id, "title": title.upper() if upper else title}

    @api.delete("/books/{book_id}")
    def remove(self, book_id: int) -> dict:
        return {"removed": self.books.pop(book_id, None)}


app = Library.bind()
