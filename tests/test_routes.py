"""Route templates: the compiled per-method tables agree with Starlette's own matching."""

from __future__ import annotations

import itertools

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from exporter.http.routes import UNMATCHED, RouteResolver, _flatten, _walk


def ok(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


def complex_app(tmp_dir: str) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> None: ...

    @app.put("/items/{item_id}")
    async def put_item(item_id: int) -> None: ...

    @app.post("/items/special")
    async def special() -> None: ...

    @app.get("/prices/{value:float}")
    async def price(value: float) -> None: ...

    @app.get("/files/{file_path:path}")
    async def files(file_path: str) -> None: ...

    router = APIRouter(prefix="/users")

    @router.get("/{user_id}")
    async def user(user_id: str) -> None: ...

    @router.delete("/{user_id}")
    async def delete_user(user_id: str) -> None: ...

    inner = APIRouter(prefix="/posts")

    @inner.get("/{post_id:int}")
    async def post(post_id: int) -> None: ...

    router.include_router(inner)
    app.include_router(router, prefix="/v1")
    sub = FastAPI()

    @sub.get("/orders/{order_id}")
    async def order(order_id: int) -> None: ...

    app.mount("/tenants/{tenant}/shop", sub)
    app.mount("/static", StaticFiles(directory=tmp_dir))
    app.router.routes.append(WebSocketRoute("/ws", ok))
    app.router.routes.append(Route("/any", ok, methods=None))
    return app


PATHS = [
    "/items/1",
    "/items/x",
    "/items/special",
    "/prices/1.5",
    "/prices/-2",
    "/prices/abc",
    "/files/a/b/c.txt",
    "/v1/users/ann",
    "/v1/users/posts/3",
    "/v1/users/posts/x",
    "/tenants/acme/shop/orders/9",
    "/tenants/acme/shop/nowhere",
    "/static/app.css",
    "/static",
    "/ws",
    "/any",
    "/",
    "/nothing/here",
    "/items/1/",
    "/v1/users",
]
METHODS = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE"]


def scope(method: str, path: str) -> dict[str, object]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def test_compiled_tables_agree_with_starlette_matching(tmp_path: object) -> None:
    app = complex_app(str(tmp_path))
    resolver = RouteResolver()
    for method, path in itertools.product(METHODS, PATHS):
        expected = _walk(_flatten(app.routes), scope(method, path)) or UNMATCHED
        assert resolver.resolve(scope(method, path), app.routes) == expected, (method, path)


def test_expected_templates(tmp_path: object) -> None:
    app = complex_app(str(tmp_path))
    resolver = RouteResolver()

    def resolve(method: str, path: str) -> str:
        return resolver.resolve(scope(method, path), app.routes)

    assert resolve("PUT", "/items/3") == "/items/{item_id}"
    assert resolve("POST", "/items/special") == "/items/special"
    assert resolve("POST", "/items/3") == "/items/{item_id}"  # 405, still the template
    assert resolve("GET", "/prices/1.5") == "/prices/{value}"
    assert resolve("GET", "/files/a/b/c.txt") == "/files/{file_path}"
    assert resolve("DELETE", "/v1/users/ann") == "/v1/users/{user_id}"
    assert resolve("GET", "/v1/users/posts/3") == "/v1/users/posts/{post_id}"
    assert (
        resolve("GET", "/tenants/acme/shop/orders/9") == "/tenants/{tenant}/shop/orders/{order_id}"
    )
    assert resolve("GET", "/tenants/acme/shop/nowhere") == "/tenants/{tenant}/shop/{path}"
    assert resolve("GET", "/static/app.css") == "/static/{path}"
    assert resolve("GET", "/ws") == UNMATCHED  # websocket routes never match HTTP
    assert resolve("GET", "/nothing/here") == UNMATCHED


def test_root_path_is_stripped_before_matching(tmp_path: object) -> None:
    app = complex_app(str(tmp_path))
    request = {**scope("GET", "/api/items/4"), "root_path": "/api"}
    assert RouteResolver().resolve(request, app.routes) == "/items/{item_id}"


def test_host_routes_fall_back_to_the_general_walk() -> None:
    app = Starlette(
        routes=[
            Host("api.example.com", app=Starlette(routes=[Route("/v/{n}", ok)])),
            Route("/plain/{n}", ok),
        ]
    )
    resolver = RouteResolver()
    api = {**scope("GET", "/v/1"), "headers": [(b"host", b"api.example.com")]}
    assert resolver.resolve(api, app.routes) == "/v/{n}"
    assert resolver.resolve(scope("GET", "/plain/2"), app.routes) == "/plain/{n}"


def test_routes_added_later_are_learned(tmp_path: object) -> None:
    app = Starlette(routes=[Route("/a", ok)])
    resolver = RouteResolver()
    assert resolver.resolve(scope("GET", "/b/1"), app.routes) == UNMATCHED
    app.router.routes.append(Route("/b/{n}", ok))
    assert resolver.resolve(scope("GET", "/b/1"), app.routes) == "/b/{n}"
