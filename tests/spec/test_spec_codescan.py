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


def test_non_literal_and_unknown_options_are_issues_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        textwrap.dedent("""
        from ray import serve
        N = 2
        opts = {}
        @serve.deployment(num_replicas=N, health_check_period=3, **opts)
        class A: pass
        app = A.bind()
    """)
    )
    found = scan_app(tmp_path, ".", [], "m:app")
    assert isinstance(found, list)
    messages = sorted((i.line, i.message) for i in found)
    assert [line for line, _ in messages] == [5, 5, 5]
    assert any("num_replicas= of A is not a literal" in m for _, m in messages)
    assert any("did you mean 'health_check_period_s'" in m for _, m in messages)
    assert any("**opts" in m for _, m in messages)
    assert {i.file for i in found} == {"m.py"}


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
        "def build(args): return A.bind()\n"
    )
    for attr, words in [
        ("A", "not bound"),
        ("build", "builder functions"),
        ("nothing", "defines no 'nothing'"),
    ]:
        found = scan_app(tmp_path, ".", [], f"m:{attr}")
        assert isinstance(found, list)
        assert found[-1].file == "" and found[-1].path == "import_path"
        assert words in found[-1].message


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
