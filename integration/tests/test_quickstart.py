"""The READMEs' commands, run exactly as written, in a fresh clone with
nothing beside it (`make quickstart-test`), so a stale README fails CI:

- README.md's quick start: build, the standalone Envoy configuration
  validated with the Envoy the build provides, the collector started and
  queried through a sidecar;
- envoy/README.md's two blocks: the sidecar and the gateway, each with the
  applications it starts answering and the trace it says to expect.

`git clone` takes the committed HEAD of this checkout. To keep the time
modest, the clone's `make build` shares this checkout's cargo output
(CARGO_TARGET_DIR=<this checkout>/target), and every file of the clone whose
content is the same as this checkout's gets that file's modification time:
cargo then finds the crates built by the rest of `make test` fresh, and
compiles again only what differs (in CI, where the checkout is the commit,
nothing). Its `.venv` is its own (pip's cache makes it quick).

The README's commands use fixed ports (4318, 16686, 15006, ...), which other
builds on a shared machine may hold: everything after `make build` runs in a
private network namespace (an unprivileged `unshare -rn`, loopback only).
Where namespaces are off, the block runs on the host's loopback if its ports
are free, and is skipped (saying why) if not. After the block's own commands,
and before its `kill` line, the test asks the collector for the traces the
README says to expect, waiting until they are complete.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLL = '''
import json, sys, time, urllib.request
deadline = time.monotonic() + 30

def get(path):
    with urllib.request.urlopen("http://127.0.0.1:16686" + path, timeout=5) as r:
        return json.load(r)

print(flush=True)  # the README's last curl may not have ended its line
for want in sys.argv[1:]:
    what, count = want.rsplit(":", 1)
    found = None
    while time.monotonic() < deadline:
        try:
            if what.startswith("service="):
                found = get(f"/api/traces?{what}&limit=20")
                enough = len(found["data"]) >= int(count)
            else:
                found = get(f"/api/traces/{what}")["data"][0]
                enough = len(found["spans"]) >= int(count)
            if enough:
                break
        except OSError:
            pass
        time.sleep(0.2)
    print(("SEARCH " if what.startswith("service=") else "TRACE ") + json.dumps(found), flush=True)
'''
FIXED_PORTS = (4317, 4318, 9411, 16686, 15000, 15001, 15006, 8080, 9090, 9901, 10000, 8081, 8082)


def sh_blocks(markdown: str, after_heading: str) -> list[list[str]]:
    """The ```sh blocks of a section, as lists of command lines."""
    section = markdown.split(after_heading, 1)[1].split("\n## ", 1)[0]
    return [[line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
            for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def clean_env(**extra: str) -> dict[str, str]:
    """A user's shell: no make jobserver or recursion state from the outer make."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    env.update(extra)
    return env


def netns_works() -> bool:
    return (shutil.which("unshare") is not None and shutil.which("ip") is not None
            and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0)


def ports_free() -> bool:
    for port in FIXED_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.skip("needs git")
    dest = tmp_path_factory.mktemp("fresh") / "meshtrace"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True, timeout=300)
    assert not (dest / ".venv").exists() and not (dest / "dist").exists()
    share_modification_times(dest)
    return dest


def share_modification_times(clone: Path) -> None:
    """Gives the clone's files (and directories: build scripts watch some,
    cargo takes the newest time beneath them) this checkout's modification
    times where the content is the same, so cargo's freshness check sees what
    it saw here."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=clone, check=True, capture_output=True,
                             text=True).stdout.split("\0")
    differs: set[Path] = set()
    for name in filter(None, tracked):
        ours, theirs = ROOT / name, clone / name
        if ours.is_file() and not ours.is_symlink() and ours.read_bytes() == theirs.read_bytes():
            mtime = ours.stat().st_mtime_ns
            os.utime(theirs, ns=(mtime, mtime))
        else:
            differs.update(Path(name).parents)
    directories = {parent for name in filter(None, tracked) for parent in Path(name).parents} - {Path(".")}
    for directory in directories - differs:
        if (ROOT / directory).is_dir():
            mtime = (ROOT / directory).stat().st_mtime_ns
            os.utime(clone / directory, ns=(mtime, mtime))


def run_block(clone: Path, lines: list[str], expect: list[str], tmp_path: Path) -> str:
    """Runs one README block in the clone: its `make build` line on the host
    (it needs the registries), the rest in a private network namespace, with
    the trace poll before the `kill` line. Returns everything it printed."""
    assert lines[0] == "make build", lines
    env = clean_env(CARGO_TARGET_DIR=os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")))
    build = subprocess.run(["make", "build"], cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    rest = lines[1:]
    kill = next(i for i, line in enumerate(rest) if line.startswith("kill "))
    poll = tmp_path / "poll.py"
    poll.write_text(POLL)
    script = "\n".join([
        "set -e -o pipefail",
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",  # whatever a failing line left running
        *rest[:kill], f"python3 {poll} {' '.join(expect)}", *rest[kill:],
    ])
    if netns_works():
        argv = ["unshare", "-rn", "bash", "-c", "ip link set lo up && exec bash -c \"$0\"", script]
    elif ports_free():
        argv = ["bash", "-c", script]
    else:
        pytest.skip("no network namespaces and the README's fixed ports are taken on this machine")
    proc = subprocess.Popen(argv, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"the block did not finish:\n{out[-4000:]}") from None
    assert proc.returncode == 0, f"a README command failed:\n{out[-4000:]}"
    return out


def traces(out: str, prefix: str = "TRACE ") -> list[dict]:
    found = [json.loads(line[len(prefix):]) for line in out.splitlines() if line.startswith(prefix)]
    assert found and all(found), out[-3000:]
    return found


def tag(span: dict, key: str):
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)


def spans_by_kind(trace: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for span in trace["spans"]:
        out.setdefault(tag(span, "span.kind"), []).append(span)
    return out


def parent(span: dict) -> str | None:
    refs = [r for r in span.get("references") or [] if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def service(trace: dict, span: dict) -> str:
    return trace["processes"][span["processID"]]["serviceName"]


def sidecar_trace_is_complete(trace: dict, caller_span: str) -> None:
    kinds = spans_by_kind(trace)
    served = [s for s in kinds["server"] if tag(s, "http.response.status_code") == 200]
    assert served, trace
    server = served[0]
    assert parent(server) == caller_span
    assert service(trace, server) == "shop"
    clients = [s for s in kinds["client"] if parent(s) == server["spanID"]]
    assert clients, "the app's call, continued by the outbound sidecar, is a child of the SERVER span"
    assert tag(clients[0], "upstream_cluster") == "upstream"


def test_readme_quick_start(clone, tmp_path):
    readme = (clone / "README.md").read_text()
    (block,) = sh_blocks(readme, "## Quick start")
    out = run_block(clone, block, ["4bf92f3577b34da6a3ce929d0e0e4736:2"], tmp_path)
    assert "configuration 'envoy/sidecar.yaml' OK" in out
    assert '"service": "catalog"' in out and '"status": 200' in out, "the app answered, and so did its upstream"
    assert '"traceID":"4bf92f3577b34da6a3ce929d0e0e4736"' in out.replace(" ", ""), "the README's query found it"
    (trace,) = traces(out)
    sidecar_trace_is_complete(trace, "00f067aa0ba902b7")


def test_envoy_readme_sidecar_and_gateway(clone, tmp_path):
    readme = (clone / "envoy" / "README.md").read_text()
    (sidecar,) = sh_blocks(readme, "## Sidecar")
    out = run_block(clone, sidecar, ["80f198ee56343ba864fe8b2a57d3eff7:2"], tmp_path)
    (trace,) = traces(out)
    sidecar_trace_is_complete(trace, "e457b5a2e4d86bd1")
    assert "wasmcustom.meshtrace.spans_started" in out

    (gateway,) = sh_blocks(readme, "## Front proxy / gateway")
    out = run_block(clone, gateway, ["4bf92f3577b34da6a3ce929d0e0e4736:1", "service=shop-gateway:2"], tmp_path)
    assert out.count('"service": ') >= 2 and '"forwards"' in out, "both backends answered"
    (trace,) = traces(out)
    (server,) = trace["spans"]
    assert service(trace, server) == "shop-gateway" and parent(server) == "00f067aa0ba902b7"
    assert tag(server, "upstream_cluster") == "api" and tag(server, "http.response.status_code") == 200
    (search,) = traces(out, "SEARCH ")
    roots = [s for t in search["data"] for s in t["spans"] if tag(s, "upstream_cluster") == "web"]
    assert roots and parent(roots[0]) is None, "the request without context started its trace at the gateway"
