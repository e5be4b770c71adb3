"""The public API of coseg_tf/ and export/ carries Google-style docstrings (issue 22).

Public means a name not starting with `_`, at module level or a method of a public class. Keras
overrides whose meaning is Keras' (`call`, `build`, ...) and the test helpers are left out.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).absolute().parents[1]
TEST_HELPERS = {"coseg_tf/testing.py", "coseg_tf/data/testing.py", "export/testing.py"}
KERAS_OVERRIDES = {"get_config", "from_config", "call", "build", "compute_output_shape"}


def _parameters(node):
    """Names of a function's parameters, without `self`/`cls`."""
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [n for n in names if n not in ("self", "cls")]


def _public_definitions(tree):
    """Yields (qualified name, node) of the public functions and classes of a module."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield node.name, node
            for item in node.body:
                if (
                    isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    and not item.name.startswith("_")
                    and item.name not in KERAS_OVERRIDES
                ):
                    yield f"{node.name}.{item.name}", item


def _modules(root):
    """Yields (path as in the source tree, file) of every module of coseg_tf/ and export/."""
    # Bazel's runfiles hold export/ where it is installed, as coseg_tf/export/.
    export = root / "export" if (root / "export").is_dir() else root / "coseg_tf" / "export"
    for package, folder in (("coseg_tf", root / "coseg_tf"), ("export", export)):
        paths = sorted(folder.rglob("*.py"))
        assert paths, f"no Python files under {folder}"
        for path in paths:
            relative = path.relative_to(folder)
            if package == "coseg_tf" and relative.parts[0] == "export":
                continue
            yield f"{package}/{relative.as_posix()}", path


def missing_docstrings(root=ROOT):
    """Lists `path:line name: problem` for every public definition short of the convention."""
    problems = []
    for relative, path in _modules(root):
        if relative in TEST_HELPERS:
            continue
        tree = ast.parse(path.read_text(), filename=relative)
        for name, node in _public_definitions(tree):
            doc = ast.get_docstring(node)
            where = f"{relative}:{node.lineno} {name}"
            if not doc:
                problems.append(f"{where}: no docstring")
            elif isinstance(node, ast.ClassDef):
                continue
            elif _parameters(node) and "Args:" not in doc:
                problems.append(f"{where}: docstring without Args:")
    return problems


def test_public_api_has_google_style_docstrings():
    problems = missing_docstrings()
    summary = f"{len(problems)} public definitions short of the docstring convention:"
    assert not problems, "\n".join([summary, *problems])


def test_checker_flags_what_it_should(tmp_path):
    (tmp_path / "coseg_tf").mkdir()
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "__init__.py").write_text("")
    (tmp_path / "coseg_tf" / "planted.py").write_text(
        "def bare(x):\n    return x\n\n\n"
        'def no_args(x):\n    """Summary only."""\n\n\n'
        'def no_parameters():\n    """Needs no Args."""\n\n\n'
        "def _private(x):\n    return x\n\n\n"
        'class Public:\n    """A class."""\n\n'
        "    def method(self, y):\n        return y\n\n"
        "    def call(self, y):\n        return y\n"
    )
    (tmp_path / "coseg_tf" / "testing.py").write_text("def helper(x):\n    return x\n")
    assert missing_docstrings(tmp_path) == [
        "coseg_tf/planted.py:1 bare: no docstring",
        "coseg_tf/planted.py:5 no_args: docstring without Args:",
        "coseg_tf/planted.py:20 Public.method: no docstring",
    ]
