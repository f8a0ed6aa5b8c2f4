"""The offline PEP 508 check `reconciler validate` runs on runtime_env.pip entries."""

from __future__ import annotations

import pytest

from reconciler.spec import pep508

VALID = [
    ("numpy", "numpy"),
    ("numpy==1.26.4", "numpy"),
    ("Django>=4.2,<5", "django"),
    ("requests[security,socks] ~= 2.31", "requests"),
    ("zope.interface", "zope-interface"),
    ("My_Package (>=1.0)", "my-package"),
    ("torch==2.3.0+cpu", "torch"),
    ("pydantic==2.*", "pydantic"),
    ("foo===weird-version", "foo"),
    ("pkg>=1.0.post1.dev3", "pkg"),
    ("pkg ; python_version >= '3.8'", "pkg"),
    ("pkg==1; sys_platform == 'linux' and (platform_machine == 'x86_64' or extra == 'gpu')", "pkg"),
    ("pip @ https://example.com/pip-23.2.1-py3-none-any.whl", "pip"),
    ("pkg @ https://example.com/pkg.zip ; python_version < '4'", "pkg"),
]

INVALID = [
    ("", "empty"),
    ("-r other.txt", "pip options"),
    ("--index-url=https://x", "pip options"),
    ("numpy>>1.0", "a version is expected"),
    ("numpy 1.0", "version specifier starts with"),
    ("numpy==1..0", "not a valid version"),
    ("numpy==latest", "not a valid version"),
    ("foo[bar", "extras"),
    ("pkg ; python_ver >= '3'", "marker names"),
    ("pkg ; python_version >= '3", "unclosed quote"),
    ("pkg @ not-a-url", "URL"),
    ("_private", "project name"),
    ("numpy==1.0 trailing", "expected ';'"),
]


@pytest.mark.parametrize(("text", "name"), VALID)
def test_valid_requirements_and_their_normalized_names(text: str, name: str) -> None:
    assert pep508.problem(text) is None
    assert pep508.parse(text).name == name


@pytest.mark.parametrize(("text", "words"), INVALID)
def test_invalid_requirements_say_why(text: str, words: str) -> None:
    problem = pep508.problem(text)
    assert problem is not None and words in problem, problem
    assert "PEP 508" in problem
