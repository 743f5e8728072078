"""Trust, round three (#27): documents that expand past a limit, inputs that are not files, warnings that are
not errors, no environment change at import, and OS errors that say which file and what was being done."""

from __future__ import annotations

import ast
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from roadsynth.cli import app
from roadsynth.config import ConfigError, load_config
from roadsynth.datasets import io
from roadsynth.datasets.io import ImageLoadError, read_json, save_image_atomic
from roadsynth.datasets.validate import validate_coco_file
from tests.conftest import ROOT

runner = CliRunner()


class Overran(BaseException):
    """Not an Exception, so neither the CLI's one-line error handler nor CliRunner swallows it."""


@contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the suite) when the block runs past `seconds` in the main thread."""
    def overran(*_):
        raise Overran(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def fifo(path: Path, after: float = 3.0):
    """A FIFO at `path`. A reader that blocks in open() on it is let go after `after` s (a writer opens and
    closes it, so the reader sees an empty file), so a regression fails the test instead of hanging the suite,
    even when the reader is a worker thread that no signal reaches."""
    os.mkfifo(path)
    done = threading.Event()

    def release():
        if done.wait(after):
            return
        while not done.wait(0.1):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader waiting (ENXIO)
                pass

    t = threading.Thread(target=release, daemon=True)
    t.start()
    try:
        yield path
    finally:
        done.set()
        t.join()


def billion_laughs(path: Path) -> Path:
    """A few hundred bytes of YAML that expand to 9**9 (387 million) strings."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    path.write_text("\n".join(lines) + "\ngenerate: *a9\n")
    return path


def _coco(root: Path, names=("a.jpg",)) -> Path:
    (root / "img").mkdir(parents=True, exist_ok=True)
    for n in names:
        save_image_atomic(root / "img" / n, np.zeros((30, 40, 3), np.uint8))
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
            "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25.0,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "deer"}]}
    (root / "a.json").write_text(json.dumps(coco))
    return root / "a.json"


# 1. Limits on what a document may expand to ---------------------------------------------------------------


def test_a_yaml_alias_bomb_config_is_refused_without_expanding_it(tmp_path):
    bomb = billion_laughs(tmp_path / "bomb.yaml")
    assert bomb.stat().st_size < 1000
    start = time.perf_counter()
    with deadline(10), pytest.raises(ConfigError) as e:
        load_config(bomb)
    assert time.perf_counter() - start < 2
    assert str(e.value) == (f"{bomb}: the document expands to more than 1,000,000 nodes (YAML aliases?); "
                            "refusing it")


def test_roadsynth_generate_refuses_a_yaml_bomb_in_one_line(tmp_path):
    bomb = billion_laughs(tmp_path / "bomb.yaml")
    start = time.perf_counter()
    with deadline(10):
        r = runner.invoke(app, ["generate", str(bomb), "--out", str(tmp_path / "out")])
    assert time.perf_counter() - start < 2
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [f"error: {bomb}: the document expands to more than 1,000,000 nodes "
                                             "(YAML aliases?); refusing it"]
    assert not (tmp_path / "out").exists()


def test_yaml_limits_on_depth_size_and_self_reference(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 150 + "]" * 150)
    with pytest.raises(ValueError, match=r"deep.yaml: the document nests deeper than 100 levels; refusing it"):
        io.read_yaml(deep)
    loop = tmp_path / "loop.yaml"
    loop.write_text("a: &a [*a]\n")  # a list that contains itself: walking it never ends
    with pytest.raises(ValueError, match=r"loop.yaml: the document nests deeper than 100 levels"):
        io.read_yaml(loop)
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n# " + "a" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"big.yaml: the config file is 2.0 MiB, over the 1.0 MiB limit; refusing it"):
        load_config(big)
    ok = tmp_path / "ok.yaml"
    ok.write_text("base: &b {x: 1}\nuse: [*b, *b]\n")
    assert io.read_yaml(ok) == {"base": {"x": 1}, "use": [{"x": 1}, {"x": 1}]}


def test_json_limits_on_depth_and_values(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 150 + "]" * 150)
    with pytest.raises(ValueError, match=r"deep.json: the document nests deeper than 100 levels; refusing it"):
        read_json(deep, "annotations file")
    deeper = tmp_path / "deeper.json"
    deeper.write_text("[" * 100_000 + "]" * 100_000)  # past Python's recursion limit: a RecursionError today
    with pytest.raises(ValueError, match="nests deeper than 100 levels"):
        read_json(deeper)
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps(list(range(2000))))
    with pytest.raises(ValueError, match=r"wide.json: the document has more than 1,000 values; refusing it"):
        read_json(wide, max_nodes=1000)
    assert len(read_json(wide)) == 2000
    with pytest.raises(ValueError, match=r"wide.json: the file is 10.6 KiB, over the 100 bytes limit"):
        read_json(wide, max_bytes=100)
    assert io.MAX_JSON_NODES >= 10_000_000 and io.MAX_DEPTH == 100 and io.MAX_YAML_NODES == 1_000_000


def test_validate_reports_an_over_deep_annotations_file_as_one_problem(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"images": ' + "[" * 5000 + "]" * 5000 + "}")
    [p] = validate_coco_file(deep)
    assert p.where == str(deep) and p.message == "the document nests deeper than 100 levels; refusing it"


# 2. Only regular files are read as inputs -----------------------------------------------------------------


def test_a_fifo_given_to_validate_is_refused_at_once(tmp_path):
    with fifo(tmp_path / "fifo.json") as path:
        start = time.perf_counter()
        r = runner.invoke(app, ["validate", str(path)])
    assert time.perf_counter() - start < 2
    assert r.exit_code == 1
    assert r.stdout.strip() == f"{path}: not a regular file (a FIFO); refusing to read it"


def test_no_shared_reader_opens_a_fifo_or_a_folder(tmp_path):
    with fifo(tmp_path / "fifo.yaml") as path:
        with pytest.raises(ConfigError, match="fifo.yaml: not a regular file"):
            load_config(path)
        with pytest.raises(ValueError, match="fifo.yaml: not a regular file"):
            read_json(path)
        with pytest.raises(ImageLoadError, match="fifo.yaml: not a regular file"):
            io.load_image(path)
        with pytest.raises(ImageLoadError, match="fifo.yaml: not a regular file"):
            io.image_size(path)
    with pytest.raises(ValueError, match=f"{tmp_path}: a folder, not a file"):
        read_json(tmp_path, "annotations file")


def test_validate_refuses_a_fifo_in_the_images_folder(tmp_path):
    ann = _coco(tmp_path)
    (tmp_path / "img" / "a.jpg").unlink()
    with fifo(tmp_path / "img" / "a.jpg"):
        problems = validate_coco_file(ann, tmp_path / "img")
    assert [str(p) for p in problems] == [f"image 1 (a.jpg): {tmp_path / 'img' / 'a.jpg'}: not a regular file "
                                          "(a FIFO); refusing to read it"]


# 3. Unreferenced images are a warning --------------------------------------------------------------------


def test_images_no_record_names_are_a_warning_and_strict_makes_it_fail(tmp_path):
    ann = _coco(tmp_path, names=("a.jpg", "stray.jpg"))
    args = ["validate", str(ann), "--images-root", str(tmp_path / "img")]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"warning: {tmp_path / 'img' / 'stray.jpg'}: image file that no record names" in r.stdout
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 1
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0
    assert json.loads(r.stdout) == [{"where": str(tmp_path / "img" / "stray.jpg"),
                                     "message": "image file that no record names", "level": "warning"}]


def test_errors_still_fail_and_carry_their_level(tmp_path):
    ann = _coco(tmp_path, names=("a.jpg", "stray.jpg"))
    coco = json.loads(ann.read_text())
    coco["annotations"][0]["bbox"] = [1, 1, -5, 5]
    ann.write_text(json.dumps(coco))
    r = runner.invoke(app, ["validate", str(ann), "--images-root", str(tmp_path / "img"), "--json"])
    assert r.exit_code == 1
    assert [(p["where"], p["level"]) for p in json.loads(r.stdout)] == [
        ("annotation 5", "error"), (str(tmp_path / "img" / "stray.jpg"), "warning")]


# 4. No environment change at import -----------------------------------------------------------------------


def test_importing_the_prefect_module_changes_no_environment_and_prefect_still_gets_the_defaults(tmp_path):
    code = ("import os, sys; before = dict(os.environ)\n"
            "import roadsynth.flows._prefect as p\n"
            "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())\n"
            "assert 'prefect' not in sys.modules\n"
            "from roadsynth.flows._prefect import flow\n"
            "from prefect.settings import PREFECT_HOME\n"
            "print(os.environ['DO_NOT_TRACK'], os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'], PREFECT_HOME.value())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "DO_NOT_TRACK"}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "false", str(tmp_path / ".cache" / "roadsynth" / "prefect")]
    env["PREFECT_HOME"] = str(tmp_path / "mine")  # a user's own value wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == str(tmp_path / "mine")


def _mutates_environ(node: ast.AST) -> bool:
    for n in ast.walk(node):
        target = n.func.value if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) else None
        if isinstance(n, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = n.targets if isinstance(n, (ast.Assign, ast.Delete)) else [n.target]
            if any(isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ" for t in targets):
                return True
        if target is not None and ast.unparse(target) == "os.environ" and n.func.attr in (
                "setdefault", "update", "pop", "popitem", "clear"):
            return True
        if isinstance(n, ast.Call) and ast.unparse(n.func) in ("os.putenv", "os.unsetenv"):
            return True
    return False


def _import_time(tree: ast.Module):
    """Statements that run at import: module level (inside if/try/with too) and class bodies, not function bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from node.decorator_list
            continue
        if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While, ast.ClassDef)):
            stack.extend(getattr(node, "body", []) + getattr(node, "orelse", []) + getattr(node, "finalbody", []))
            stack.extend(h for handler in getattr(node, "handlers", []) for h in handler.body)
            yield from (x for x in (getattr(node, "test", None), *getattr(node, "items", [])) if x is not None)
            continue
        yield node


def test_no_module_changes_the_environment_at_import():
    offenders = []
    for path in sorted((ROOT / "roadsynth").rglob("*.py")):
        tree = ast.parse(path.read_text())
        # A module-level call of one of the module's own functions that sets variables counts too.
        setters = {f.name for f in tree.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and _mutates_environ(f)}
        for node in _import_time(tree):
            calls = {ast.unparse(c.func) for c in ast.walk(node) if isinstance(c, ast.Call)}
            if _mutates_environ(node) or calls & setters:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


# 5. OS errors name the path and the operation -------------------------------------------------------------


def test_atomic_writes_name_the_file_and_the_operation(tmp_path, monkeypatch):
    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "replace", full)
    with pytest.raises(OSError) as e:
        io.atomic_write_bytes(tmp_path / "images" / "000015.jpg", b"x")
    assert str(e.value) == f"cannot write {tmp_path / 'images' / '000015.jpg'}: no space left on device"
    assert e.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path / "images") == []  # the temp file is gone
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=f"cannot create folder {tmp_path / 'file'}: "):
        io.atomic_write_text(tmp_path / "file" / "x.json", "{}")


def test_a_long_file_name_is_written_and_a_too_long_one_is_named(tmp_path):
    long = tmp_path / ("a" * 245 + ".json")  # fits; its temp file's name must fit too
    io.atomic_write_json(long, {})
    assert json.loads(long.read_text()) == {}
    too_long = tmp_path / ("b" * 300 + ".json")
    with pytest.raises(OSError, match=f"cannot write {too_long}: file name too long"):
        io.atomic_write_json(too_long, {})


def test_the_cli_reports_an_os_error_as_one_line_with_path_and_operation(tmp_path, monkeypatch):
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "annotations.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))

    def read_only(*_):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(io.os, "replace", read_only)
    out = tmp_path / "plain.json"
    r = runner.invoke(app, ["export", str(tmp_path / "ds"), "--out", str(out)])
    assert r.exit_code == 1
    assert r.output.strip() == f"error: cannot write {out}: read-only file system"
