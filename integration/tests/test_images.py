"""The compose file's images. Containers cannot be started on the build and CI
machines (runc's rlimit setup is refused there), so the proof is a real build
and a static check of what was built:

- every image whose Dockerfile needs no network (FROM scratch, local artefacts
  from `make images`) is built with buildah, exported as an OCI layout, and its
  configuration (user, entrypoint, ports, volume) and file system (the volume's
  owner, the entrypoint and the libraries it loads, what the compose health
  checks and commands run) are read back from the layers;
- the built file systems run: unpacked, the collector's starts in a chroot
  (inside an unprivileged user namespace, no container runtime) and answers
  the compose health check run with the image's own busybox, and the
  sidecar's Envoy validates the image's bootstrap with the image's module;
- every other image (the shop's, on Docker Hub's Python) is pinned by digest
  and runs as a non-root user.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from meshtrace_testkit import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "integration" / "docker-compose.yaml").read_text())
BUILDAH = shutil.which("buildah")
IMAGES = ROOT / "dist" / "images"


def dockerfile_of(service: dict) -> Path:
    return ROOT / service["build"]["dockerfile"]


def froms(dockerfile: Path) -> list[str]:
    return re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M)


def offline(dockerfile: Path) -> bool:
    return all(base == "scratch" for base in froms(dockerfile))


BUILT = sorted({s["build"]["dockerfile"] for s in COMPOSE["services"].values() if "build" in s})
OFFLINE = [d for d in BUILT if offline(ROOT / d)]
PULLED = [d for d in BUILT if not offline(ROOT / d)]


class Image:
    """A built image read back from its OCI layout: config and file system."""

    def __init__(self, layout: Path):
        blobs = layout / "blobs" / "sha256"
        index = json.loads((layout / "index.json").read_text())
        manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
        self.config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())["config"]
        self.layers = [blobs / layer["digest"][7:] for layer in manifest["layers"]]
        self.files: dict[str, tarfile.TarInfo] = {}
        for layer in self.layers:
            with tarfile.open(layer) as tar:
                for member in tar.getmembers():
                    self.files["/" + member.name.removeprefix("./").rstrip("/")] = member

    def has_executable(self, path: str) -> bool:
        member = self.files.get(path)
        return member is not None and member.isfile() and bool(member.mode & 0o111)

    def unpack(self, dest: Path) -> Path:
        for layer in self.layers:
            with tarfile.open(layer) as tar:
                tar.extractall(dest, filter="tar")
        return dest


def chroot_works() -> bool:
    """An unprivileged user namespace lets a chroot run without root."""
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-r", "true"], capture_output=True).returncode == 0


def in_image(root: Path, argv: list[str], user: str = "") -> list[str]:
    """argv run in the unpacked image. As root, first become the image's user
    (setpriv), so the process has the credentials a container would give it
    and the unpacked files their owners: the volume is writable only if the
    image hands it to that user."""
    become = []
    if os.geteuid() == 0 and user:
        uid, gid = user.split(":")
        become = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    return [*become, "unshare", "-r", "chroot", str(root), *argv]


@pytest.fixture
def unpack_dir():
    """A directory the image's user can reach (pytest's temp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="meshtrace-image-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Dockerfile -> Image for every offline one, built with buildah in a
    private storage (vfs: no overlay or fuse needed)."""
    if not BUILDAH:
        pytest.skip("needs Debian's buildah (`make deploy-test` installs it)")
    if not (IMAGES / "collector").is_dir() or not (IMAGES / "sidecar").is_dir():
        pytest.skip("needs the images' root file systems: make images")
    home = tmp_path_factory.mktemp("buildah")
    storage = ["--root", str(home / "root"), "--runroot", str(home / "run"), "--storage-driver", "vfs"]
    images = {}
    try:
        for dockerfile in OFFLINE:
            tag = f"localhost/meshtrace-test/{Path(dockerfile).stem}:test"
            proc = subprocess.run([BUILDAH, *storage, "bud", "--quiet", "--pull-never", "-f", dockerfile,
                                   "-t", tag, "."], cwd=ROOT, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            layout = home / Path(dockerfile).stem
            subprocess.run([BUILDAH, *storage, "push", "--quiet", "--disable-compression", tag, f"oci:{layout}"],
                           check=True, capture_output=True, timeout=600)
            images[dockerfile] = Image(layout)
        yield images
    finally:
        # vfs copies every layer; the storage goes with the temp dir, its mounts first.
        subprocess.run([BUILDAH, *storage, "rmi", "--all", "--force"], capture_output=True, timeout=120)


def services_of(dockerfile: str) -> dict[str, dict]:
    return {name: s for name, s in COMPOSE["services"].items() if s.get("build", {}).get("dockerfile") == dockerfile}


def test_the_collector_and_sidecar_images_need_no_network():
    assert "integration/docker/collector.Dockerfile" in OFFLINE
    assert "integration/docker/sidecar.Dockerfile" in OFFLINE


@pytest.mark.parametrize("dockerfile", OFFLINE)
def test_offline_image_runs_what_compose_asks_of_it(built, dockerfile):
    image = built[dockerfile]
    user = image.config.get("User", "")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), f"a numeric non-root user, not {user!r}"
    entrypoint = image.config["Entrypoint"]
    assert image.has_executable(entrypoint[0]), entrypoint
    for lib in (p for p in image.files if "/lib" in p and ".so" in p):
        assert image.files[lib].isfile(), f"{lib}: a file, not a dangling link"
    assert any(p.endswith(("ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1")) for p in image.files), \
        "the dynamic loader the binaries name"
    exposed = {p.split("/")[0] for p in image.config.get("ExposedPorts", {})}
    for name, service in services_of(dockerfile).items():
        for published in service.get("ports", []):
            assert published.rsplit(":", 1)[1] in exposed, f"{name} publishes {published}, not exposed"
        test = service.get("healthcheck", {}).get("test")
        if test:
            assert test[0] == "CMD" and image.has_executable(test[1]), f"{name}'s health check runs {test[1]}"
        for arg in service.get("command", []):
            if arg.startswith("/"):
                assert arg in image.files, f"{name}'s command names {arg}"


def test_the_collector_can_write_its_volume(built):
    image = built["integration/docker/collector.Dockerfile"]
    uid, gid = (int(x) for x in image.config["User"].split(":"))
    data = image.config["Env"]
    assert "MESHTRACE_DATA_DIR=/var/lib/meshtrace" in data
    assert "/var/lib/meshtrace" in image.config["Volumes"]
    volume = image.files["/var/lib/meshtrace"]
    assert volume.isdir()
    assert (volume.uid, volume.gid) == (uid, gid), "a new named volume copies this owner"
    assert volume.mode & 0o700 == 0o700
    assert image.config["Entrypoint"] == ["/usr/local/bin/meshtrace-collector"]
    assert {"4317/tcp", "4318/tcp", "9411/tcp", "16686/tcp"} <= image.config["ExposedPorts"].keys()
    compose = COMPOSE["services"]["collector"]
    assert compose["volumes"] == ["collector-data:/var/lib/meshtrace"]


def test_every_sidecar_has_its_bootstrap_and_the_module(built):
    image = built["integration/docker/sidecar.Dockerfile"]
    assert image.has_executable("/usr/local/bin/envoy")
    assert image.files["/etc/meshtrace/plugin.wasm"].isfile()
    for name, service in services_of("integration/docker/sidecar.Dockerfile").items():
        bootstrap = service["command"][1]
        assert bootstrap == f"/etc/meshtrace/{name}.json"
        assert image.files[bootstrap].isfile()


needs_chroot = pytest.mark.skipif(not chroot_works(), reason="unprivileged user namespaces are off: "
                                  "the built file systems are checked but not run")


@needs_chroot
def test_the_collector_image_starts_as_its_user_and_answers_the_compose_health_check(built, tmp_path, unpack_dir):
    image = built["integration/docker/collector.Dockerfile"]
    root = image.unpack(unpack_dir)
    user = image.config["User"]
    env = dict(e.split("=", 1) for e in image.config["Env"])
    ports = {name.removeprefix("MESHTRACE_").removesuffix("_ADDR"): free_port()
             for name in env if name.startswith("MESHTRACE_") and name.endswith("_ADDR")}
    assert {"OTLP_HTTP", "OTLP_GRPC", "ZIPKIN", "HTTP", "SAMPLING"} <= ports.keys()
    env.update({f"MESHTRACE_{name}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()})
    log = open(tmp_path / "collector.log", "wb")
    proc = subprocess.Popen(in_image(root, image.config["Entrypoint"], user), env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['HTTP']}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "collector.log").read_text()
                time.sleep(0.1)
        check = COMPOSE["services"]["collector"]["healthcheck"]["test"][1:]
        check = [arg.replace(":16686/", f":{ports['HTTP']}/") for arg in check]
        assert subprocess.run(in_image(root, check, user), capture_output=True, timeout=30).returncode == 0
        assert any((root / "var" / "lib" / "meshtrace").iterdir()), "the store was written on the volume's path"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


@needs_chroot
def test_the_sidecar_image_validates_its_bootstrap_with_its_module(built, unpack_dir):
    image = built["integration/docker/sidecar.Dockerfile"]
    root = image.unpack(unpack_dir)
    argv = image.config["Entrypoint"] + COMPOSE["services"]["frontend"]["command"]
    proc = subprocess.run(in_image(root, [*argv, "--mode", "validate"], image.config["User"]),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "meshtrace: service `frontend`" in proc.stdout + proc.stderr, "the module loaded and took the config"


@pytest.mark.parametrize("dockerfile", PULLED)
def test_pulled_images_are_pinned_by_digest_and_not_root(dockerfile):
    text = (ROOT / dockerfile).read_text()
    for base in froms(ROOT / dockerfile):
        assert re.search(r"@sha256:[0-9a-f]{64}$", base), f"{base} is not pinned by digest"
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
