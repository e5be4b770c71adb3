"""Running commands as a user does, for tests: `python -m <module> ARGS` in a process of its own.

Every command under test runs in its own process, with its own absl flags, exit status, signal
handlers and a fresh import of this project. Starting Python and importing TensorFlow and
Keras costs about 5 CPU-seconds, though, and the suite runs several dozen commands. So each
test process keeps one *command server*: a Python process that imported the third-party
libraries (TensorFlow, Keras, NumPy, absl, OpenCV) and nothing of this project, and forks a
child for every command. The child sets up `sys.argv`, `sys.path`, the working directory, the
environment and the standard streams as the interpreter does for `python -m`, a script or
`python -c`, and runs the command through `runpy`.

The command server needs `os.fork` (Linux, macOS). `COSEG_TEST_FORK=0` (or a platform without
fork) runs every command with `subprocess` instead, each importing everything itself.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

# What the command server imports before it forks: the slow imports of every command. Nothing
# of this project, so that each command imports the project as a fresh process does.
PRELOADED = ("numpy", "tensorflow", "keras", "absl.app", "absl.flags", "absl.logging", "cv2")
# Variables the interpreter reads only at start-up: a command that needs other values than the
# server's gets a process of its own.
_STARTUP_VARIABLES = ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONHOME", "PYTHONSAFEPATH", "TF_CPP_MIN_LOG_LEVEL")


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment of a command under test: TF logging quiet, no GPU, plus `extra`."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **extra}


def run_python(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`python ARGV` in a process of its own; its output captured as text.

    Args:
      argv: What follows `python` on the command line: `["-m", module, *args]`,
        `["-c", code, *args]` or `[script, *args]`.
      cwd: Working directory of the command (default: this process's).
      env: Its environment (default: `quiet_env()`).
      timeout: Seconds before the command is killed and `subprocess.TimeoutExpired` raised.

    Returns:
      The finished process: `args` (`[sys.executable, *argv]`), `returncode`, `stdout`, `stderr`.
    """
    argv = [str(a) for a in argv]
    env = dict(quiet_env() if env is None else env)
    cwd = os.fspath(cwd) if cwd is not None else os.getcwd()
    server = _server(env)
    if server is None:
        command = [sys.executable, *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    return server.run(argv, cwd, env, timeout)


def run_module(module: str, args: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` with TF logging quiet and no GPU (see `run_python`)."""
    return run_python(["-m", module, *args], timeout=timeout)


@contextlib.contextmanager
def built_once(marker: str) -> Iterator[bool]:
    """Holds `marker`'s lock; yields whether the file `marker` still has to be written.

    Parallel test processes (pytest-xdist workers) share one folder: the first builds what the
    marker stands for and writes the marker last, the others wait on the lock and then read
    what it built.

    Args:
      marker: Path of the file that says the shared thing is complete.

    Yields:
      True if the caller must build it (and write `marker`), False if it is already built.
    """
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield not os.path.exists(marker)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- the command server: the test process's side


class _Server:
    """One command server process and the pipe to it; commands run one at a time."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        # Started by path, not as `coseg_tf.testing`: the server must not import the project.
        bootstrap = "import runpy, sys; runpy.run_path(sys.argv[1])['serve']()"
        # Its own errors go to a file: the test process's stderr is pytest's capture of one test.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (open while the server runs)
        self.process = subprocess.Popen(
            [sys.executable, "-c", bootstrap, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=self.env,
            cwd=tempfile.gettempdir(),
        )
        self.lock = threading.Lock()
        if self._receive() != {"ready": True}:
            raise RuntimeError("the command server did not start")

    def _receive(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(
                f"the command server stopped (exit {self.process.wait()}): {self.log.read()[-3000:]}"
            )
        return json.loads(line)

    def compatible(self, env: Mapping[str, str]) -> bool:
        """Whether a command with this environment can be forked from this server."""
        return all(env.get(name) == self.env.get(name) for name in _STARTUP_VARIABLES)

    def run(
        self, argv: list[str], cwd: str, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        with self.lock, tempfile.TemporaryDirectory() as folder:
            streams = {name: os.path.join(folder, name) for name in ("stdout", "stderr")}
            request = {"argv": argv, "cwd": cwd, "env": env, "timeout": timeout, **streams}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = self._receive()
            output = {}
            for name, path in streams.items():
                with open(path, encoding="utf-8", errors="replace") as f:
                    output[name] = f.read()
        command = [sys.executable, *argv]
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired(command, timeout, output["stdout"], output["stderr"])
        return subprocess.CompletedProcess(command, reply["returncode"], output["stdout"], output["stderr"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


_SERVERS: list[_Server] = []


def _server(env: Mapping[str, str]) -> _Server | None:
    """This process's command server, started on first use; None: run `env`'s command with `subprocess`."""
    if os.environ.get("COSEG_TEST_FORK", "1") == "0" or not hasattr(os, "fork"):
        return None
    if _SERVERS and _SERVERS[0].process.poll() is not None:
        _SERVERS.pop().close()  # it stopped: start another
    if not _SERVERS:
        _SERVERS.append(_Server(quiet_env()))
        atexit.register(_SERVERS[-1].close)
    return _SERVERS[0] if _SERVERS[0].compatible(env) else None


# -- the command server: its own side


def serve() -> None:
    """The command server's loop: a request per line on stdin, a reply per line on stdout.

    Runs in the server process (see `_Server`). Each request is forked into a child that runs
    the command and exits; the reply gives its exit status, or that it timed out (the child's
    process group is then killed).
    """
    for name in PRELOADED:
        with contextlib.suppress(ImportError):  # cv2 is only needed by the video commands
            __import__(name)
    protocol = os.fdopen(os.dup(1), "w")  # replies; fds 0-2 are the children's to replace
    _reply(protocol, {"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            protocol.close()
            _child(request)  # does not return
        _reply(protocol, _wait(pid, float(request["timeout"])))


def _reply(protocol: Any, message: Mapping[str, Any]) -> None:
    protocol.write(json.dumps(message) + "\n")
    protocol.flush()


def _wait(pid: int, timeout: float) -> dict[str, Any]:
    """Waits for the child `pid`; kills its process group after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"returncode": os.waitstatus_to_exitcode(status), "timed_out": False}
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"returncode": -signal.SIGKILL, "timed_out": True}
        time.sleep(0.02)


def _child(request: Mapping[str, Any]) -> None:
    """In the forked child: becomes `python ARGV` as the interpreter would start it, runs it, exits."""
    os.setpgid(0, 0)  # the command and whatever it starts can be killed together
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        out = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's stdin until it exits)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    from absl import logging  # noqa: PLC0415 (preloaded; its handler holds the server's stderr)

    logging.get_absl_handler().python_handler.stream = sys.stderr
    argv = list(request["argv"])
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path[0] = request["cwd"]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        elif argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            sys.path[0] = ""
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102
        else:
            sys.argv = argv
            sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
            runpy.run_path(argv[0], run_name="__main__")
        status = 0
    except SystemExit as e:
        status = e.code
    except BaseException:  # noqa: BLE001 (as the interpreter: the traceback, then exit 1)
        traceback.print_exc()
        status = 1
    _leave(status)


def _leave(status: object) -> NoReturn:
    """Ends the child as the interpreter ends a program, without tearing down its modules.

    The interpreter waits for the non-daemon threads, runs the atexit handlers, flushes the
    streams and turns the `SystemExit` code into an exit status; all of that is done here. It
    then destroys every module and object, which with TensorFlow and Keras loaded costs about
    1.5 CPU-seconds: `os._exit` skips it, as `multiprocessing` does for the children it forks.
    What is lost is only what a command left to garbage collection at exit, such as the buffer
    of a file it never closed; the commands close what they write.
    """
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # the interpreter's own call at exit (no public name)
    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status
    else:  # `sys.exit("message")`: the message on stderr, exit status 1
        print(status, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code & 0xFF)
