"""The collector's ingest cost per span, repeatable on a shared machine.

`python bench/collector_profile.py instructions` runs the release collector under callgrind and posts the
benchmark's batches (bench/collector.py: 100 sidecar spans a request, new trace ids every request): 100
requests to warm it, then callgrind's counters are zeroed, 300 more requests posted, and the counters dumped
while the collector still runs (`callgrind_control`). The dump's instructions divided by those 300
requests' spans are the cost of a span through the whole ingest path (HTTP, decoding, analytics, store,
group commit, the LSM flushes started meanwhile), without start-up or shutdown. Callgrind counts
instructions, not time, so other work on the machine does not change the figure. `KEEP_CALLGRIND=dir`
keeps the dump for `callgrind_annotate`.

`python bench/collector_profile.py cpu [seconds] [connections]` runs the collector under wrk (as
bench/collector.py does) and divides the CPU time the collector's process used (every thread: receivers,
writer, analytics, LSM flushes and compactions, counted until they settle after the load, up to two
minutes) by the spans it acknowledged, in all and per thread name, with the bytes each thread handed to
`write` per span (the store writer's are the journal, the compactor's what compaction rewrote): CPU time
per span moves far less than spans per second when other work shares the machine, so it compares
settings (`COLLECTOR_ARGS`) and builds (`COLLECTOR_BIN`) on a busy machine, and it counts the compactions
that callgrind's 300-request window (`instructions`) mostly misses. It also counts, over the load only, the
process's minor page faults and its live threads' context switches per request (of 100 spans): counts
that other work on the machine moves far less than time, for changes too small for the CPU per span to
show.

`python bench/collector_profile.py peer [seconds] [connections]` runs rotel (receive only) under the same
load and prints its CPU per span and wrk's: what the collector's CPU per span is up against on a machine
that the load generator shares.

`python bench/collector_profile.py search [spans] [rounds]` fills a collector with the same load to `spans`
spans (10M unless told) and times the benchmark's search (bench/collector.py's `SEARCH_PATH`) in rounds
of 30 in a row, each query's latency listed: the first round meets a cold cache, the later ones show the
steady cost. With `COLLECTOR_BIN` it compares builds.

`python bench/collector_profile.py threads [seconds] [connections]` runs the collector under wrk (as bench/collector.py
does) and prints each of the collector's threads' CPU time over the load as a share of one core (from
/proc/<pid>/task/*/stat), with the machine's busy share of all cores and wrk's own: whether ingest is
bound by all cores being busy or by one serial stage (a thread near 100% of a core: the writer, the
analytics, fjall's flushes), and the share of the time the writer spent in group commits (from /metrics).
With `NO_FSYNC=1` (`threads`, `cpu`, `perf`) the collector runs with libeatmydata preloaded, so fsync
returns at once: the difference is what waiting for the journal's fsync costs (an experiment, not a
mode: nothing acknowledged that way is durable).

`python bench/collector_profile.py fsync [directory]` appends blocks of 20 to 160 KB to a sparse file in
`directory` (the current one unless told), as fjall's journal does, each followed by an fsync, and prints
the CPU time the thread spent in the `write` and in the `fsync` (the median latency of the fsync too): what
one group commit's fsync costs on this machine's disk, whatever the group holds. Each size is measured
twice more with `fdatasync`: on that sparse file (fjall sizes its journal files with `set_len`, so every
append allocates blocks, metadata an `fdatasync` writes too) and on a file whose blocks were written
before (as a journal that reused its files would be: only the data to write).

`python bench/collector_profile.py perf [seconds] [connections]` runs the collector under wrk (as bench/collector.py
does) for a while, samples it with `perf record -g` and prints the hottest functions.

`python bench/collector_profile.py pair [rounds] [seconds] [connections]` runs two collectors at the same
time, each under a wrk of its own: the build `COLLECTOR_BIN` names (the release build unless told) as "a",
and `PAIR_BIN` (the same unless told) with `PAIR_ENV` (`NAME=value ...`) added to its environment as "b".
It prints each one's CPU time per span (every thread, settled as in `cpu`) and spans/s, round by round.
Whatever else runs on the machine meanwhile weighs on both alike, so the two CPU figures of one round
differ by what the builds or settings do, where `cpu` run one after the other also differs by what the
machine did in between (10 s runs of one build spread ±15% on this shared machine; rounds of `pair` a few
percent). Four processes share the cores, so the spans/s are not `make bench`'s.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import collector as bench  # noqa: E402
from meshtrace_testkit import LOOPBACK, ROOT, free_port, http_ok, request, wait_until  # noqa: E402
from meshtrace_testkit.procs import Process, cpu_seconds  # noqa: E402

COLLECTOR = Path(os.environ.get("COLLECTOR_BIN", ROOT / "target" / "release" / "meshtrace-collector"))
CONNECTIONS = 8


def args(data_dir, ports, binary=COLLECTOR):
    return [str(binary), *os.environ.get("COLLECTOR_ARGS", "").split(), "--data-dir", str(data_dir), "--log-level", "warn",
            "--otlp-http-addr", f"{LOOPBACK}:{ports['http']}",
            "--otlp-grpc-addr", f"{LOOPBACK}:{ports['grpc']}",
            "--zipkin-addr", f"{LOOPBACK}:0", "--http-addr", f"{LOOPBACK}:{ports['query']}",
            "--sampling-addr", f"{LOOPBACK}:0", "--tempo-addr", f"{LOOPBACK}:0",
            "--retention-max-age", "0", "--retention-max-bytes", "0"]


def post_all(port, bodies, start, count):
    """Posts `count` requests from CONNECTIONS threads, each with fresh trace ids."""
    marker = bench.MARKER
    lock, nxt = threading.Lock(), [start]

    def worker():
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=600)
        while True:
            with lock:
                n = nxt[0]
                if n >= start + count:
                    break
                nxt[0] += 1
            body = bodies[n % len(bodies)].replace(marker, (0xA5 << 56 | n).to_bytes(8, "big"))
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


EATMYDATA = Path("/usr/lib/x86_64-linux-gnu/libeatmydata.so")


def start(data_dir, ports, binary=COLLECTOR, extra_env=None):
    """The collector `binary` on `data_dir` and `ports`, with `extra_env` added to its environment."""
    env = {**os.environ, **extra_env} if extra_env else None
    if os.environ.get("NO_FSYNC"):
        # What ingest would be without the journal's fsync (an experiment only: acknowledged spans are then
        # not durable): libeatmydata (Debian `eatmydata`) turns fsync into a no-op.
        if not EATMYDATA.exists():
            raise RuntimeError(f"NO_FSYNC needs {EATMYDATA} (apt-get install eatmydata)")
        env = {**(env or os.environ), "LD_PRELOAD": str(EATMYDATA)}
    return Process(args(data_dir, ports, binary), ready=lambda: http_ok(ports["query"], "/readyz"),
                   what=f"collector {Path(binary).name} ready", timeout=30, env=env)


def callgrind_run(bodies, warm, measured, settle=3.0):
    """Instructions of the whole collector process (every thread) while `measured` requests are ingested,
    after `warm` requests: callgrind's counters are zeroed once the warm-up is acknowledged and dumped
    (`callgrind_control`) `settle` seconds after the last measured request was, while the collector still
    runs, so neither start-up nor shutdown (fjall freeing its memtables) is counted. The settling time
    lets the analytics thread finish the last batches; LSM flushes the measured requests started are
    counted as far as they got."""
    with tempfile.TemporaryDirectory(prefix="meshtrace-cg-") as tmp:
        return callgrind_in(Path(tmp), bodies, warm, measured, settle)


def callgrind_in(tmp, bodies, warm, measured, settle):
    out = tmp / "callgrind.out"
    ports = {k: free_port() for k in ("http", "grpc", "query")}
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                            + args(tmp / "data", ports), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def control(*flags):
        subprocess.run(["callgrind_control", *flags, str(proc.pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=300)

    try:
        def ready():
            if proc.poll() is not None:
                raise RuntimeError(f"collector under callgrind exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                return request(ports["query"], "/readyz", timeout=5)[0] == 200
            except OSError:
                return False
        wait_until(ready, timeout=300, what="collector under callgrind")
        post_all(ports["http"], bodies, 0, warm)
        time.sleep(settle)
        control("--zero")
        post_all(ports["http"], bodies, warm, measured)
        time.sleep(settle)
        control("--dump=ingest")
    finally:
        proc.terminate()
        proc.communicate(timeout=600)
    dumps = [f for f in tmp.glob("callgrind.out*") if b"Program termination" not in f.read_bytes()]
    if len(dumps) != 1:
        raise RuntimeError(f"expected one callgrind dump of the measured requests, found {len(dumps)}")
    total = int(re.search(rb"^totals:\s+(\d+)", dumps[0].read_bytes(), re.M).group(1))
    keep = os.environ.get("KEEP_CALLGRIND")
    if keep:
        shutil.copy(dumps[0], Path(keep) / f"callgrind.{measured}.out")
    return total


def instructions(warm=100, measured=300):
    total = callgrind_run(batches(), warm, measured)
    spans = measured * bench.SPANS_PER_BATCH
    return {"requests": [warm, measured], "instructions": total, "per_span": total / spans}


def batches(n=300):
    d = Path(tempfile.mkdtemp(prefix="meshtrace-batches-"))
    bench.write_batches(d, n)
    bodies = [(d / f"{i}.pb").read_bytes() for i in range(1, n + 1)]
    shutil.rmtree(d, ignore_errors=True)
    return bodies


@contextlib.contextmanager
def warm_collector(prefix):
    """A release collector on a fresh data directory, warmed by 2 s of the ingest load; yields the temporary
    directory, the batches and the ports, then stops the collector and removes the directory."""
    with tempfile.TemporaryDirectory(prefix=prefix) as t:
        tmp = Path(t)
        batch_dir = tmp / "batches"
        batch_dir.mkdir()
        bench.write_batches(batch_dir, 300)
        ports = {k: free_port() for k in ("http", "grpc", "query")}
        coll = start(tmp / "data", ports)
        try:
            bench.wrk_ingest(ports["http"], batch_dir, 300, 2)
            yield tmp, batch_dir, ports, coll
        finally:
            coll.stop()


def cpu(seconds=20, connections=CONNECTIONS):
    with warm_collector("meshtrace-cpu-") as (tmp, batch_dir, ports, coll):
        time.sleep(3)
        pid = coll.proc.pid
        before, threads_before = cpu_seconds(pid), thread_work(pid)
        counts_before = faults_and_switches(pid)
        r = bench.wrk_ingest(ports["http"], batch_dir, 300, seconds, connections=connections)
        counts_after = faults_and_switches(pid)
        # Let the flushes and compactions the load caused finish (the CPU stops moving).
        used = bench.settle(pid, cap=120, step=1, idle=0.02) - before
        threads_after = thread_work(pid)
    spans = max(r["spans"], 1)
    per_thread = {}
    for name, (cpu_s, written) in threads_after.items():
        cpu0, written0 = threads_before.get(name, (0.0, 0))
        per_thread[name] = {"cpu_us_per_span": round((cpu_s - cpu0) / spans * 1e6, 2),
                            "bytes_written_per_span": round((written - written0) / spans)}
    # Threads that ended before the count (fjall's flush workers live only while they flush).
    ended = used - sum(cpu_s - threads_before.get(name, (0.0, 0))[0] for name, (cpu_s, _) in threads_after.items())
    per_thread["threads that ended"] = {"cpu_us_per_span": round(ended / spans * 1e6, 2)}
    return {"spans": spans, "spans_per_s": round(r["spans_per_s"]), "connections": connections, "cpu_s": round(used, 2),
            "cpu_us_per_span": round(used / spans * 1e6, 2), "wrk_cpu_us_per_span": round(r["wrk_cpu_s"] / spans * 1e6, 2),
            "load": round(os.getloadavg()[0], 1),
            # Counted over the load only: they move much less than time with other work on the machine.
            "page_faults_per_request": round((counts_after[0] - counts_before[0]) / spans * bench.SPANS_PER_BATCH, 1),
            "context_switches_per_request": round((counts_after[1] - counts_before[1]) / spans * bench.SPANS_PER_BATCH, 1),
            "threads": dict(sorted(per_thread.items(), key=lambda kv: -kv[1]["cpu_us_per_span"]))}


def search(spans=10_000_000, rounds=3, per_round=30):
    """Fills a fresh collector with the benchmark's load to `spans` spans, then times the benchmark's
    search (`collector.SEARCH_PATH`) `rounds` times `per_round` in a row: each round's latencies in ms, in
    the order taken (the first queries after the fill meet a cold block cache), and the bytes on disk per
    stored span of each partition."""
    with warm_collector("meshtrace-search-") as (tmp, batch_dir, ports, coll):
        stored = bench.fill(ports["http"], batch_dir, 300, spans)
        time.sleep(3)
        out = {"stored_spans": stored, "rounds": []}
        for _ in range(rounds):
            lat = []
            for _ in range(per_round):
                t0 = time.perf_counter()
                request(ports["query"], bench.SEARCH_PATH)
                lat.append(round((time.perf_counter() - t0) * 1000, 1))
            out["rounds"].append({"median_ms": sorted(lat)[len(lat) // 2], "max_ms": max(lat), "ms": lat})
        partitions = tmp / "data" / "db" / "partitions"
        out["bytes_per_span"] = {p.name: round(bench.tree_bytes(p) / max(stored, 1), 1)
                                 for p in sorted(partitions.iterdir())} if partitions.is_dir() else {}
    return out


def peer(seconds=15, connections=CONNECTIONS):
    """rotel (receive only, as bench/collector.py runs it) under the same load: its CPU per span and
    wrk's, the budget the collector is measured against."""
    tmp = Path(tempfile.mkdtemp(prefix="meshtrace-peer-"))
    batch_dir = tmp / "batches"
    batch_dir.mkdir()
    bench.write_batches(batch_dir, 300)
    rot, port = bench.rotel(tmp)
    try:
        bench.wrk_ingest(port, batch_dir, 300, 2, connections=connections)
        time.sleep(1)
        before = cpu_seconds(rot.proc.pid)
        r = bench.wrk_ingest(port, batch_dir, 300, seconds, connections=connections)
        time.sleep(2)
        used = cpu_seconds(rot.proc.pid) - before
    finally:
        rot.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    spans = max(r["spans"], 1)
    return {"spans_per_s": round(r["spans_per_s"]), "connections": connections,
            "rotel_cpu_us_per_span": round(used / spans * 1e6, 2), "wrk_cpu_us_per_span": round(r["wrk_cpu_s"] / spans * 1e6, 2),
            "load": round(os.getloadavg()[0], 1)}


def thread_work(pid):
    """Per thread name (threads of one name summed): (CPU seconds, bytes handed to write calls), from
    /proc/<pid>/task/*/stat and io."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, KeyError):
            name = task.joinpath("comm").read_text().strip()
            stat = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
            io = dict(line.split(": ") for line in task.joinpath("io").read_text().splitlines())
            cpu_s, written = out.get(name, (0.0, 0))
            out[name] = (cpu_s + (int(stat[11]) + int(stat[12])) / tick, written + int(io["wchar"]))
    return out


def faults_and_switches(pid):
    """(minor page faults of the whole process, threads that ended included; context switches of its live
    threads, voluntary and not), from /proc/<pid>/stat and /proc/<pid>/task/*/status."""
    faults = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in task.joinpath("status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    switches += int(line.split()[1])
    return faults, switches


def thread_times(pid):
    """Per thread id: (name, seconds on a core, seconds runnable but waiting for a core), from
    /proc/<pid>/task/*/schedstat."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = task.joinpath("comm").read_text().strip()
            run_ns, wait_ns, _ = task.joinpath("schedstat").read_text().split()
            out[task.name] = (name, int(run_ns) / 1e9, int(wait_ns) / 1e9)
    return out


def machine_ticks():
    """(busy, total) ticks of all cores since boot, from /proc/stat."""
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = cpu[3] + cpu[4]
    return sum(cpu) - idle, sum(cpu)


def commit_metrics(query_port):
    """The writer's commit counters from /metrics: commits, seconds in commits, spans committed, seconds
    groups were held open for submissions due."""
    text = request(query_port, "/metrics")[2]
    text = text.decode() if isinstance(text, bytes) else text
    out = {}
    for name in ("store_commits_total", "store_commit_seconds_sum", "store_commit_spans_sum",
                 "store_commit_wait_seconds_sum"):
        m = re.search(rf"^\S*{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else float("nan")
    return out


def threads(seconds=10, connections=8):
    with warm_collector("meshtrace-threads-") as (tmp, batch_dir, ports, coll):
        time.sleep(3)
        pid = coll.proc.pid
        before, mbefore, cbefore = thread_times(pid), machine_ticks(), os.times()
        wbefore = commit_metrics(ports["query"])
        t0 = time.monotonic()
        r = bench.wrk_ingest(ports["http"], batch_dir, 300, seconds, connections=connections)
        wall = time.monotonic() - t0
        after, mafter, cafter = thread_times(pid), machine_ticks(), os.times()
        wafter = commit_metrics(ports["query"])
        status = Path(f"/proc/{pid}/status").read_text()
        rss = {k: int(re.search(rf"^{k}:\s+(\d+) kB", status, re.M).group(1)) // 1024 for k in ("VmRSS", "VmHWM")}
    rows = {}
    for tid, (name, run, wait) in after.items():
        _, run0, wait0 = before.get(tid, (name, 0.0, 0.0))
        rows.setdefault(name, []).append(((run - run0) / wall * 100, (wait - wait0) / wall * 100))
    print(f"{r['spans_per_s']:.0f} spans/s over {wall:.1f} s from {connections} connections, {r['refused']} refused; "
          f"load {os.getloadavg()[0]:.1f}; collector RSS {rss['VmRSS']} MiB, at most {rss['VmHWM']} MiB")
    busy, total = mafter[0] - mbefore[0], mafter[1] - mbefore[1]
    wrk = (cafter.children_user + cafter.children_system - cbefore.children_user - cbefore.children_system) / wall * 100
    total_pct = sum(run for v in rows.values() for run, _ in v)
    cores = os.cpu_count()
    print(f"machine: {busy / total * cores * 100:.0f}% of a core busy of {cores * 100}% (collector {total_pct:.0f}%, wrk {wrk:.0f}%, "
          f"other processes {busy / total * cores * 100 - total_pct - wrk:.0f}%)")
    commits = wafter["store_commits_total"] - wbefore["store_commits_total"]
    print(f"writer: in group commits (inserts, journal writes, fsync) "
          f"{(wafter['store_commit_seconds_sum'] - wbefore['store_commit_seconds_sum']) / wall * 100:.0f}% of the time; "
          f"{commits:.0f} commits, {(wafter['store_commit_spans_sum'] - wbefore['store_commit_spans_sum']) / max(commits, 1):.0f} spans each, "
          f"held open {(wafter['store_commit_wait_seconds_sum'] - wbefore['store_commit_wait_seconds_sum']) / max(commits, 1) * 1e6:.0f} us each")
    print(f"collector threads: per thread, % of the time on a core / runnable waiting for one:")
    for name, pcts in sorted(rows.items(), key=lambda kv: -sum(run for run, _ in kv[1])):
        shown = [f"{run:5.1f} / {wait:4.1f}" for run, wait in sorted(pcts, reverse=True) if run >= 0.5]
        if shown:
            print(f"  {name:18} x{len(pcts):<3} " + "   ".join(shown))


def perf(seconds=20, connections=CONNECTIONS):
    with warm_collector("meshtrace-perf-") as (tmp, batch_dir, ports, coll):
        rec = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", str(tmp / "perf.data"),
                                "-p", str(coll.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = bench.wrk_ingest(ports["http"], batch_dir, 300, seconds, connections=connections)
        rec.send_signal(2)
        rec.wait()
        coll.stop()
        print(f"{r['spans_per_s']:.0f} spans/s, {r['refused']} refused (load {os.getloadavg()[0]:.1f})")
        report = subprocess.run(["perf", "report", "-i", str(tmp / "perf.data"), "--no-children", "--stdio",
                                 "--percent-limit", "0.7", "-g", "none", "--sort", "comm,dso,symbol"],
                                capture_output=True, text=True).stdout
        print(report)
        keep = os.environ.get("KEEP_PERF")
        if keep:
            shutil.copy(tmp / "perf.data", keep)


def pair(rounds=4, seconds=10, connections=CONNECTIONS):
    extra = dict(kv.split("=", 1) for kv in os.environ.get("PAIR_ENV", "").split())
    sides = [("a", COLLECTOR, None), ("b", Path(os.environ.get("PAIR_BIN", COLLECTOR)), extra)]
    totals = {name: [] for name, _, _ in sides}
    for n in range(rounds):
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meshtrace-pair-")))
            batch_dir = tmp / "batches"
            batch_dir.mkdir()
            bench.write_batches(batch_dir, 300)
            running = []
            for name, binary, extra_env in sides:
                ports = {k: free_port() for k in ("http", "grpc", "query")}
                proc = start(tmp / name, ports, binary, extra_env)
                stack.callback(proc.stop)
                running.append((name, proc.proc.pid, ports["http"]))
            results = {}

            def load(name, port, secs):
                results[name] = bench.wrk_ingest(port, batch_dir, 300, secs, connections=connections)

            def both(secs):
                threads = [threading.Thread(target=load, args=(name, port, secs)) for name, _, port in running]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()

            both(2)  # warm-up, as `warm_collector`
            time.sleep(3)
            before = {name: cpu_seconds(pid) for name, pid, _ in running}
            both(seconds)
            line = []
            for name, pid, _ in running:
                used = bench.settle(pid, cap=60, step=1, idle=0.02) - before[name]
                per_span = used / max(results[name]["spans"], 1) * 1e6
                totals[name].append(per_span)
                line.append(f"{name} {per_span:.2f} us/span {results[name]['spans_per_s'] / 1000:.1f}k spans/s")
            print(f"round {n + 1}: " + "   ".join(line), flush=True)
    for name, values in totals.items():
        print(f"{name}: mean {sum(values) / len(values):.3f} us/span, rounds {[round(v, 2) for v in values]}")


def fsync_cost(directory=".", rounds=300):
    rows = []
    for size in (20_000, 40_000, 80_000, 160_000):
        for file, sync in (("sparse", os.fsync), ("sparse", os.fdatasync), ("written", os.fdatasync)):
            with tempfile.NamedTemporaryFile(dir=directory, prefix="meshtrace-fsync-") as f:
                fd = f.fileno()
                if file == "sparse":
                    os.ftruncate(fd, 128 << 20)
                else:
                    zeros = bytes(1 << 20)
                    for _ in range(size * rounds // len(zeros) + 1):
                        os.write(fd, zeros)
                    os.fsync(fd)
                    os.lseek(fd, 0, os.SEEK_SET)
                block = os.urandom(size)
                write_s = sync_s = 0.0
                latencies = []
                for _ in range(rounds):
                    t0 = time.thread_time()
                    os.write(fd, block)
                    t1, w1 = time.thread_time(), time.perf_counter()
                    sync(fd)
                    t2, w2 = time.thread_time(), time.perf_counter()
                    write_s, sync_s = write_s + t1 - t0, sync_s + t2 - t1
                    latencies.append(w2 - w1)
                latencies.sort()
            rows.append({"bytes": size, "file": file, "sync": sync.__name__,
                         "write_cpu_us": round(write_s / rounds * 1e6, 1),
                         "sync_cpu_us": round(sync_s / rounds * 1e6, 1),
                         "sync_p50_us": round(latencies[len(latencies) // 2] * 1e6)})
    return rows


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "instructions"
    if mode == "fsync":
        for row in fsync_cost(sys.argv[2] if len(sys.argv) > 2 else "."):
            print(row)
    elif mode == "perf":
        perf(int(sys.argv[2]) if len(sys.argv) > 2 else 20, int(sys.argv[3]) if len(sys.argv) > 3 else CONNECTIONS)
    elif mode == "pair":
        pair(*(int(a) for a in sys.argv[2:5]))
    elif mode == "threads":
        threads(int(sys.argv[2]) if len(sys.argv) > 2 else 10, int(sys.argv[3]) if len(sys.argv) > 3 else 8)
    elif mode == "peer":
        print(peer(int(sys.argv[2]) if len(sys.argv) > 2 else 15, int(sys.argv[3]) if len(sys.argv) > 3 else CONNECTIONS))
    elif mode == "search":
        result = search(int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000, int(sys.argv[3]) if len(sys.argv) > 3 else 3)
        print("stored spans", result["stored_spans"], "bytes per span by partition", result["bytes_per_span"])
        for r in result["rounds"]:
            print(f"  median {r['median_ms']} ms, max {r['max_ms']} ms: {r['ms']}")
    elif mode == "cpu":
        report = cpu(int(sys.argv[2]) if len(sys.argv) > 2 else 20, int(sys.argv[3]) if len(sys.argv) > 3 else CONNECTIONS)
        threads_report = report.pop("threads")
        print(report)
        for name, row in threads_report.items():
            print(f"  {name:18} {row['cpu_us_per_span']:5.2f} us of CPU per span"
                  + (f", {row['bytes_written_per_span']} bytes written per span" if row.get("bytes_written_per_span") else ""))
    else:
        print(instructions())
