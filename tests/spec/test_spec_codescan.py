"""Unit tests of the code scanner: every way Serve code declares deployments and graphs, read
from the syntax tree without running anything."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler.spec.codescan import Bound, ScannedApp, ScannedDeployment, scan_app, scan_module


def _scan(source: str) -> dict[str, ScannedDeployment | Bound]:
    return scan_module(textwrap.dedent(source), "m.py").values


def _app(tmp_path: Path, source: str, import_path: str = "m:app") -> ScannedApp:
    (tmp_path / "m.py").write_text(textwrap.dedent(source))
    found = scan_app(tmp_path, ".", [], import_path)
    assert isinstance(found, ScannedApp), found
    return found


def test_decorator_forms() -> None:
    values = _scan("""
        from ray import serve
        from ray.serve import deployment
        import ray.serve as rs
        import ray

        @serve.deployment
        class A: pass

        @serve.deployment(name="bee", num_replicas=3, user_config={"k": [1, 2]})
        class B: pass

        @deployment
        class C: pass

        @rs.deployment()
        def d(request): return 1

        @ray.serve.deployment(max_ongoing_requests=7)
        class E: pass

        class Plain: pass
    """)
    assert {n: v.name for n, v in values.items() if isinstance(v, ScannedDeployment)} == {
        "A": "A",
        "B": "bee",
        "C": "C",
        "d": "d",
        "E": "E",
    }
    b = values["B"]
    assert isinstance(b, ScannedDeployment)
    assert b.options == {"num_replicas": 3, "user_config": {"k": [1, 2]}}
    assert b.class_name == "B" and b.line == 11 and b.option_lines["num_replicas"] == 10
    assert "Plain" not in values


def test_functional_wrapping_and_options_chains() -> None:
    values = _scan("""
        from ray import serve
        class Stand: pass
        class Other: pass
        Wrapped = serve.deployment(Stand)
        Named = serve.deployment(name="named", num_replicas=2)(Other)
        Renamed = Wrapped.options(name="Kiosk", num_replicas=4)
        graph = Renamed.bind(Named.bind())
    """)
    wrapped, named, renamed = values["Wrapped"], values["Named"], values["Renamed"]
    assert isinstance(wrapped, ScannedDeployment) and wrapped.name == "Stand"
    assert isinstance(named, ScannedDeployment) and named.options == {"num_replicas": 2}
    assert isinstance(renamed, ScannedDeployment)
    assert (renamed.name, renamed.class_name, renamed.options) == (
        "Kiosk",
        "Stand",
        {"num_replicas": 4},
    )
    graph = values["graph"]
    assert isinstance(graph, Bound) and graph.deployment.name == "Kiosk"
    assert [c.deployment.name for c in graph.children] == ["named"]


def test_graph_through_variables_lists_and_keywords(tmp_path: Path) -> None:
    app = _scan_app_source(tmp_path)
    assert app.ingress == "Router"
    assert app.deployments == ("Router", "A", "B", "C")
    assert app.module_file == "m.py"


def _scan_app_source(tmp_path: Path) -> ScannedApp:
    return _app(
        tmp_path,
        """
        from ray import serve

        @serve.deployment
        class A: pass
        @serve.deployment
        class B: pass
        @serve.deployment
        class C: pass
        @serve.deployment
        class Router: pass

        a = A.bind()
        shared = B.bind(a)
        app = Router.bind([a, shared], extra={"c": C.bind()}, again=a)
    """,
    )


def test_reassigned_variable_is_forgotten() -> None:
    values = _scan("""
        from ray import serve
        @serve.deployment
        class A: pass
        app = A.bind()
        app = None
    """)
    assert "app" not in values


def test_unknown_options_are_issues_and_computed_ones_undecided(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        textwrap.dedent("""
        from ray import serve
        N = compute()
        opts = load()
        @serve.deployment(num_replicas=N, health_check_period=3, **opts)
        class A: pass
        app = A.bind()
    """)
    )
    found = scan_app(tmp_path, ".", [], "m:app")
    assert isinstance(found, list)
    (unknown,) = found
    assert unknown.line == 5 and "did you mean 'health_check_period_s'" in unknown.message
    (tmp_path / "m.py").write_text(
        (tmp_path / "m.py").read_text().replace("health_check_period=3, ", "")
    )
    undecided = _app(tmp_path, (tmp_path / "m.py").read_text()).undecided
    assert [(i.file, i.line) for i in undecided] == [("m.py", 5), ("m.py", 5)]
    assert "option num_replicas= of A (N)" in undecided[0].message
    assert "**opts in the options of A" in undecided[1].message


def test_module_constants_are_read_unless_code_may_change_them(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        """
        from ray import serve
        N = 2
        AUTO = {"min_replicas": 1, "max_replicas": 3}
        OPTS = dict(user_config={"k": [1]}, max_ongoing_requests=N)
        MUTATED = {"num_cpus": 1}
        MUTATED["num_cpus"] = 2
        PASSED = {"num_cpus": 1}
        tweak(PASSED)
        @serve.deployment(num_replicas=N, autoscaling_config=None, **OPTS)
        class A: pass
        @serve.deployment(autoscaling_config=AUTO, ray_actor_options=MUTATED)
        class B: pass
        @serve.deployment(ray_actor_options=PASSED)
        class C: pass
        app = A.bind(B.bind(), C.bind())
    """,
    )
    a, b, c = (app.deployment(n) for n in "ABC")
    assert a is not None and a.options == {
        "num_replicas": 2,
        "autoscaling_config": None,
        "user_config": {"k": [1]},
        "max_ongoing_requests": 2,
    }
    assert a.undecided == ()
    assert b is not None and b.options == {
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 3}
    }
    assert [u.message for u in b.undecided] == ["option ray_actor_options= of B (MUTATED)"]
    assert c is not None and [u.message for u in c.undecided] == [
        "option ray_actor_options= of C (PASSED)"
    ]


def test_imports_across_modules_and_packages(tmp_path: Path) -> None:
    pkg = tmp_path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "stands.py").write_text(
        textwrap.dedent("""
        from ray import serve
        @serve.deployment(user_config={"price": 3})
        class Mango: pass
    """)
    )
    (pkg / "main.py").write_text(
        textwrap.dedent("""
        from ray import serve
        from .stands import Mango
        from shop.stands import Mango as M2
        @serve.deployment
        class Market: pass
        app = Market.bind(Mango.bind(), M2.options(name="Mango2").bind())
    """)
    )
    found = scan_app(tmp_path, ".", [], "shop.main:app")
    assert isinstance(found, ScannedApp)
    assert found.deployments == ("Market", "Mango", "Mango2")
    mango = found.deployment("Mango")
    assert mango is not None and mango.file == "shop/stands.py"
    assert mango.options == {"user_config": {"price": 3}}


def test_py_modules_package_is_found_by_its_directory_name(tmp_path: Path) -> None:
    lib = tmp_path / "vendor" / "pricing"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text(
        "from ray import serve\n@serve.deployment\nclass P: pass\napp = P.bind()\n"
    )
    (tmp_path / "code").mkdir()
    found = scan_app(tmp_path, "code", ["vendor/pricing"], "pricing:app")
    assert isinstance(found, ScannedApp) and found.module_file == "vendor/pricing/__init__.py"
    missing = scan_app(tmp_path, "code", [], "pricing:app")
    assert isinstance(missing, list) and "module 'pricing' not found" in missing[0].message


def test_import_path_issues_have_no_file(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from ray import serve\n@serve.deployment\nclass A: pass\n"
        "def build(args): return A.bind()\nclass Thing: pass\n"
    )
    for attr, words in [
        ("A", "not bound"),
        ("Thing", "neither a bound deployment"),
        ("nothing", "defines no 'nothing'"),
    ]:
        found = scan_app(tmp_path, ".", [], f"m:{attr}")
        assert isinstance(found, list)
        assert found[-1].file == "" and found[-1].path == "import_path"
        assert words in found[-1].message


def test_builders_are_undecided_or_refused_by_their_signature(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        textwrap.dedent("""
        from ray import serve
        @serve.deployment
        class A: pass
        def build(args): return A.bind()
        def none(): return A.bind()
        def many(args, more=1): return A.bind()
        async def later(args): return A.bind()
        @cached
        def wrapped(): return A.bind()
        computed = make_app()
    """)
    )
    builder = scan_app(tmp_path, ".", [], "m:build", args_given=True)
    assert isinstance(builder, ScannedApp) and builder.kind == "builder"
    assert builder.specs == () and [d.class_name for d in builder.definitions] == ["A"]
    assert "application builder build(args) (m.py:5)" in builder.undecided[0].message
    for attr, words in [("none", "takes 0"), ("many", "takes 2"), ("later", "is async")]:
        found = scan_app(tmp_path, ".", [], f"m:{attr}")
        assert isinstance(found, list) and words in found[0].message, found
        assert found[0].file == "m.py"
    for attr in ("wrapped", "computed"):
        found = scan_app(tmp_path, ".", [], f"m:{attr}")
        assert isinstance(found, ScannedApp) and found.undecided, found
    image = scan_app(tmp_path, ".", [], "elsewhere.mod:app", image_set=True)
    assert isinstance(image, ScannedApp) and "may be in the image" in image.undecided[0].message


def test_two_binds_of_one_class_are_named_as_serve_names_them(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        """
        from ray import serve
        @serve.deployment
        class Model: pass
        @serve.deployment
        class Chain: pass
        shared = Model.bind()
        app = Chain.bind(Model.bind(), Model.bind(), again=shared, twice=[shared, shared])
    """,
    )
    assert app.deployments == ("Chain", "Model", "Model_1", "Model_2")
    assert all(app.deployment(n).class_name == "Model" for n in app.deployments[1:])  # type: ignore[union-attr]


def test_a_taken_name_is_skipped_when_renaming(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        """
        from ray import serve
        @serve.deployment
        class Model: pass
        @serve.deployment
        class Top: pass
        app = Top.bind(Model.options(name="Model_1").bind(), Model.bind(), Model.bind())
    """,
    )
    assert app.deployments == ("Top", "Model_1", "Model", "Model_2")


def test_deep_graph_does_not_overflow(tmp_path: Path) -> None:
    lines = ["from ray import serve", "@serve.deployment", "class A: pass", "n0 = A.bind()"]
    lines += [f"n{i} = A.bind(n{i - 1})" for i in range(1, 3000)]
    (tmp_path / "m.py").write_text("\n".join([*lines, "app = n2999\n"]))
    found = scan_app(tmp_path, ".", [], "m:app")
    assert isinstance(found, ScannedApp) and len(found.deployments) == 3000
    assert found.deployments[:3] == ("A_2999", "A", "A_1")


def test_graph_built_by_code_is_undecided(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        """
        from ray import serve
        @serve.deployment
        class Model: pass
        @serve.deployment
        class Chain: pass
        models = [Model.bind() for _ in range(3)]
        app = Chain.bind(*models, extra=make(Model.bind()), plain=CONFIG)
    """,
    )
    assert app.deployments == ("Chain",)
    assert [u.message for u in app.undecided] == [
        "the graph is built by code (models)",
        "the graph is built by code (make(Model.bind()))",
    ]


def test_ingress_checks(tmp_path: Path) -> None:
    found = scan_app(
        _write(
            tmp_path,
            """
            from ray import serve
            from ray.serve import ingress
            from fastapi import FastAPI
            api = FastAPI()
            class Plain: pass
            class Asgi2:
                def __call__(self, receive, send): pass
            def build_app(): return api
            def needs(prefix): return api
            @serve.deployment
            @serve.ingress(api)
            class Good: pass
            @serve.deployment
            @ingress(build_app)
            class AlsoGood: pass
            @serve.deployment
            @serve.ingress(Asgi2)
            class Fine: pass
            @serve.deployment
            @serve.ingress(Plain)
            class Bad1: pass
            @serve.deployment
            @serve.ingress(needs)
            class Bad2: pass
            @serve.deployment
            @serve.ingress()
            class Bad3: pass
            app = Good.bind(AlsoGood.bind(), Fine.bind(), Bad1.bind(), Bad2.bind(), Bad3.bind())
        """,
        ),
        ".",
        [],
        "m:app",
    )
    assert isinstance(found, list)
    assert [(i.line, i.message.split(",")[0]) for i in found] == [
        (21, "serve.ingress is given the plain class Plain"),
        (24, "serve.ingress is given needs()"),
        (27, "serve.ingress() without an app needs Bad3 to define __serve_build_asgi_app__"),
    ]


def _write(tmp_path: Path, source: str) -> Path:
    (tmp_path / "m.py").write_text(textwrap.dedent(source))
    return tmp_path


def test_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _app(
        tmp_path,
        f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("ran")
        from ray import serve
        @serve.deployment
        class A: pass
        app = A.bind()
    """,
    )
    assert not marker.exists()


def test_syntax_error_and_hostile_source() -> None:
    broken = scan_module("class (:\n", "m.py")
    assert broken.issues and "cannot parse m.py" in broken.issues[0].message
    deep = scan_module("x = " + "(" * 500 + "1" + ")" * 500 + "\n", "m.py")
    assert deep.issues and deep.values == {}
