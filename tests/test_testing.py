"""The tests' command server (coseg_tf.testing): each command in a process of its own, as `python` runs it."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from coseg_tf import testing

# A command that reports how it was started, defines an absl flag and exits with --status.
COMMAND = textwrap.dedent(
    """
    import json, os, sys
    from absl import app, flags

    flags.DEFINE_integer("status", 0, "exit status")

    def main(argv):
        print(json.dumps({"argv": argv, "path0": sys.path[0], "cwd": os.getcwd(), "pid": os.getpid(),
                          "coseg": sorted(m for m in sys.modules if m.startswith("coseg")),
                          "env": os.environ.get("PROBE")}))
        print("to stderr", file=sys.stderr)
        return flags.FLAGS.status

    if __name__ == "__main__":
        app.run(main)
    """
)


@pytest.fixture
def probe(tmp_path):
    (tmp_path / "probe.py").write_text(COMMAND)
    return tmp_path


def _report(done):
    import json

    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("fork", ["1", "0"])
def test_a_module_runs_as_python_m_runs_it_in_a_process_of_its_own(probe, fork, monkeypatch):
    monkeypatch.setenv("COSEG_TEST_FORK", fork)
    env = testing.quiet_env(PROBE="x")
    runs = [testing.run_python(["-m", "probe", f"--status={s}", "rest"], cwd=probe, env=env) for s in (3, 0)]
    assert [r.returncode for r in runs] == [3, 0]
    first = _report(runs[0])
    assert first["argv"] == [str(probe / "probe.py"), "rest"] and first["path0"] == str(probe)
    assert first["cwd"] == str(probe) and first["env"] == "x"
    assert first["coseg"] == []  # the project is imported by the command, not found preloaded
    assert runs[0].stderr.strip().endswith("to stderr")
    assert len({_report(r)["pid"] for r in runs} | {os.getpid()}) == 3
    assert runs[0].args == [sys.executable, "-m", "probe", "--status=3", "rest"]


def test_a_script_and_code_run_as_python_runs_them(probe):
    script = testing.run_python([str(probe / "probe.py"), "--status=4"], cwd=probe.parent)
    assert script.returncode == 4 and _report(script)["path0"] == str(probe)
    code = testing.run_python(["-c", "import sys; print(sys.argv, repr(sys.path[0])); sys.exit('bad')", "a"])
    assert code.returncode == 1 and code.stdout.strip() == "['-c', 'a'] ''" and code.stderr.strip() == "bad"
    crash = testing.run_python(["-c", "raise KeyError('boom')"])
    assert crash.returncode == 1 and "Traceback" in crash.stderr and "KeyError: 'boom'" in crash.stderr


def test_a_command_past_its_timeout_is_killed_with_what_it_started(tmp_path):
    marker = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        testing.run_python(["-c", code], timeout=3)
    grandchild = int(marker.read_text())
    assert _gone(grandchild, within=10)
    assert testing.run_python(["-c", "print('next')"]).stdout == "next\n"  # the server goes on


def _gone(pid, within):
    """Whether process `pid` is gone (or a zombie, killed but not yet reaped) within `within` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_other_interpreter_start_up_variables_get_a_fresh_interpreter(tmp_path):
    (tmp_path / "extra_module.py").write_text("VALUE = 7\n")
    env = testing.quiet_env(PYTHONPATH=str(tmp_path))
    done = testing.run_python(["-c", "import extra_module; print(extra_module.VALUE)"], env=env)
    assert done.returncode == 0 and done.stdout == "7\n", done.stderr


# A command that leaves work for the interpreter's exit: a non-daemon thread still writing, an
# atexit handler, and an exit status from `sys.exit`.
ENDING = textwrap.dedent(
    """
    import atexit, sys, threading, time

    def late():
        time.sleep(0.5)
        print("thread done", flush=True)

    threading.Thread(target=late).start()
    atexit.register(lambda: print("atexit ran"))
    sys.exit(int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1])
    """
)


@pytest.mark.parametrize("fork", ["1", "0"])
def test_a_command_ends_as_the_interpreter_ends_it(fork, monkeypatch):
    monkeypatch.setenv("COSEG_TEST_FORK", fork)
    for status, returncode in (("0", 0), ("300", 300 & 0xFF), ("gave up", 1)):
        done = testing.run_python(["-c", ENDING, status])
        assert done.returncode == returncode, (status, done.stderr)
        assert sorted(done.stdout.splitlines()) == ["atexit ran", "thread done"], done.stdout
        assert done.stderr.strip().endswith("gave up") == (status == "gave up"), done.stderr
