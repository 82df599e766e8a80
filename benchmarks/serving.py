"""Serving figures (issue "Serving"): our API against the obvious baseline, in the same run.

On the local stack (or the services given by HOMELOOP_* URLs), with isolated settings:
provision (Feast applied), train the first model on simulated history, write ``--listings``
simulated listings into the online store, then start two servers as their own processes:

- ours: ``homeloop serve`` (whatever server settings it chooses; printed below);
- the baseline: ``benchmarks/baseline_api.py``, the same endpoint built the obvious way
  (Feast ``get_online_features`` + XGBoost ``predict`` in FastAPI under uvicorn defaults;
  ``--baseline-threadpool`` for its slower ``def`` variant).

Every figure comes from ``benchmarks/loadgen.py`` (HTTP/1.1 keep-alive, one process of its
own) over loopback, on the same 2 cores as the servers, Redis, the broker and PostgreSQL:

  (a) ``GET /healthz``, ours and the baseline's, 32 connections (the bare framework);
  (b) baseline ``POST /v1/predictions``, 32 connections;
  (c) ours ``POST /v1/predictions``, 32 connections;
  (d) ours at a steady ``--rate`` requests/s (open loop, latency from each request's due
      time, so a stall is charged to every request it delays);
  (e) ours ``POST /v1/predictions/batch`` with 100 listings a request, 1 and 4 connections;
  (f) ours ``POST /v1/predictions?explain=true``, 32 connections.

Routes that do not exist (404/405) or ignore the request are reported and skipped. Prints a
table, the ratios ours/baseline, the CPU each process used during each run, ours' own
latency histograms (where the time goes inside the server), and the goals met or not:
32 connections at least 3x the baseline's requests/s with p99 <= 25 ms; at 1,000 requests/s
p99 <= 5 ms; a batch of 100 p99 <= 10 ms. No assertions.

    .venv/bin/python benchmarks/serving.py [--seconds 10] [--open-seconds 20] [--rate 1000]
        [--connections 32] [--listings 2000] [--workers N] [--serve-arg=--some-option ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.first_model import train_on_simulated_history  # noqa: E402
from benchmarks.loadgen import spawn  # noqa: E402
from benchmarks.machine import CLK_TCK, CpuTimes, steal_note  # noqa: E402
from homeloop.market import Market  # noqa: E402
from homeloop.settings import Settings  # noqa: E402
from homeloop.stack import LocalStack, provision  # noqa: E402
from homeloop.stack.ports import free_port  # noqa: E402
from homeloop.stack.process import terminate_all  # noqa: E402

START_TIMEOUT_S = 180.0
# Cores taken by the hypervisor during a run, above which the goals mention it.
STEAL_WORTH_SAYING = 0.02
# Native modules whose presence in a server's memory map tells its event loop, HTTP parser
# and JSON library (imported is not always used: see the notes printed with them).
LIBRARIES = {
    "uvloop": "uvloop/loop.",
    "httptools": "httptools/parser/",
    "orjson": "orjson/orjson.",
    "msgspec": "msgspec/_core.",
    "ujson": "/ujson.",
}


# --- processes and their CPU ---------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants."""
    total = 0
    for p in descendants(pid):
        if fields := _stat(p):
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


class CpuMeter:
    """Cores used by named process trees (and the whole machine) over a stretch of time."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots

    def sample(self) -> tuple[dict[str, float], CpuTimes]:
        return {name: tree_seconds(pid) for name, pid in self.roots.items()}, CpuTimes.now()

    def measure(self, seconds: float) -> dict[str, float]:
        before, t0 = self.sample()
        time.sleep(seconds)
        after, t1 = self.sample()
        wall = t1.wall - t0.wall
        cores = {name: (after[name] - before[name]) / wall for name in self.roots}
        cores["machine"], cores["steal"] = t1.cores_since(t0)
        # Everything else on the machine: the kernel's share of the loopback traffic, and
        # any process not started by this benchmark (the generator is added by the caller).
        cores["other"] = max(0.0, cores["machine"] - sum(cores[n] for n in self.roots))
        return cores


def libraries(pid: int) -> dict[str, bool]:
    maps = ""
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            maps += Path(f"/proc/{p}/maps").read_text()
    return {name: marker in maps for name, marker in LIBRARIES.items()}


def server_settings(popen: subprocess.Popen[bytes], url: str) -> list[str]:
    """What the launched server runs with: command, processes, loop, parser, JSON library."""
    pids = descendants(popen.pid)
    python_pids = [
        p
        for p in pids
        if "python" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode()
    ]
    libs = libraries(popen.pid)
    response = httpx.get(f"{url}/healthz", timeout=5)
    lines = [
        "command: " + " ".join(str(a) for a in popen.args),  # type: ignore[union-attr]
        f"processes: {len(python_pids)} python ({len(pids)} in all)"
        + (" (a supervisor and its workers)" if len(python_pids) > 1 else " (one worker)"),
        "event loop: " + ("uvloop" if libs["uvloop"] else "asyncio (uvloop not loaded)"),
        "HTTP parser: " + ("httptools" if libs["httptools"] else "h11 (httptools not loaded)"),
        "JSON libraries loaded: "
        + (", ".join(n for n in ("orjson", "msgspec", "ujson") if libs[n]) or "none")
        + " (plus the standard library's json; loaded is not necessarily used)",
        f"server header: {response.headers.get('server', '-')}",
    ]
    env = {k: v for k, v in os.environ.items() if k.startswith(("HOMELOOP_API", "WEB_CONC"))}
    if env:
        lines.append(f"environment: {env}")
    return lines


def metric_sums(url: str) -> dict[str, tuple[float, float]]:
    """Every histogram's (sum, count) on ``url/metrics``, keyed by name and labels."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for s in family.samples:
            if s.name.endswith(("_sum", "_count")):
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "le")
                key = family.name + (f"{{{labels}}}" if labels else "")
                pair = out.setdefault(key, [0.0, 0.0])
                pair[0 if s.name.endswith("_sum") else 1] = s.value
    return {k: (v[0], v[1]) for k, v in out.items()}


def publisher_figures(url: str) -> str:
    """Our server's publishing counters and gauges (names containing publish or drop)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return ""
    found = []
    for family in text_string_to_metric_families(text):
        if family.type in ("counter", "gauge") and re.search("publish|drop", family.name):
            for s in family.samples:
                if not s.name.endswith("_created"):
                    found.append(f"{s.name} {s.value:,.0f}")
    return ", ".join(found)


def metric_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> list[str]:
    """Mean per observation over a run, for each histogram in seconds that moved."""
    lines = []
    for key, (total, count) in after.items():
        base_total, base_count = before.get(key, (0.0, 0.0))
        n = count - base_count
        if n > 0 and "seconds" in key:
            lines.append(f"{key}: mean {(total - base_total) / n * 1000:.3f} ms over {n:,.0f}")
    return lines


# --- the runs -------------------------------------------------------------------------------


@dataclass
class Run:
    key: str
    label: str
    load: str
    result: dict[str, Any] | None = None
    note: str = ""
    cpu: dict[str, float] = field(default_factory=dict)

    def latency(self, q: str) -> float | None:
        if not self.result or not self.result["latency_ms"]:
            return None
        return float(self.result["latency_ms"][q])

    @property
    def rps(self) -> float | None:
        return float(self.result["rps"]) if self.result else None

    @property
    def clean(self) -> bool:
        """Every answer a 200 and no transport errors."""
        r = self.result
        return r is not None and set(r["status"]) == {"200"} and not r["errors"]


class Bench:
    def __init__(self, args: argparse.Namespace, meter: CpuMeter) -> None:
        self.args = args
        self.meter = meter
        self.runs: dict[str, Run] = {}

    def run(
        self,
        key: str,
        label: str,
        url: str,
        *,
        method: str = "GET",
        bodies: list[Any] | None = None,
        connections: int | None = None,
        rate: float = 0.0,
        seconds: float | None = None,
        on_metrics: str | None = None,
    ) -> Run:
        connections = connections or self.args.connections
        seconds = seconds or self.args.seconds
        load = f"{rate:,.0f}/s open" if rate else f"{connections} conn"
        run = Run(key, label, load)
        self.runs[key] = run
        print(f"  {key}: {label}, {load}, {seconds:.0f} s ...", end="", flush=True)
        before = metric_sums(on_metrics) if on_metrics else {}

        def during() -> None:
            run.cpu = self.meter.measure(seconds * 0.9)

        try:
            run.result = spawn(
                url,
                method=method,
                bodies=bodies,
                connections=self.args.open_connections if rate else connections,
                max_connections=self.args.open_max_connections if rate else connections,
                rate=rate,
                duration=seconds,
                warmup=self.args.warmup,
                during=during,
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            run.note = f"load generator failed: {exc}"
            print(f" {run.note}")
            return run
        run.cpu["loadgen"] = run.result["loadgen_cpu"]
        run.cpu["other"] = max(0.0, run.cpu.get("other", 0.0) - run.cpu["loadgen"])
        if on_metrics:
            run.note = "; ".join(metric_means(before, metric_sums(on_metrics)))
        r = run.result
        print(
            f" {r['rps']:,.0f} req/s, p50 {r['latency_ms'].get('p50', float('nan')):.2f} ms, "
            f"p99 {r['latency_ms'].get('p99', float('nan')):.2f} ms, status {r['status']}"
            + (f", errors {r['errors']}" if r["errors"] else "")
        )
        return run

    def skip(self, key: str, label: str, load: str, why: str) -> None:
        self.runs[key] = Run(key, label, load, note=why)
        print(f"  {key}: {label}: {why}")


def probe(url: str, body: Any) -> tuple[int, Any]:
    try:
        r = httpx.post(url, json=body, timeout=30)
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text[:300]


# --- set-up ---------------------------------------------------------------------------------


def write_listings(settings: Settings, n: int) -> list[str]:
    """``n`` simulated listings straight into the online store, as the listing agent writes."""
    import redis.asyncio as aioredis

    from streams.listing_agent import listing_rows
    from streams.online_writer import ListingWriter

    market = Market(seed=settings.simulator_seed)
    events = [market.new_listing(market.start) for _ in range(n)]
    rows, _ = listing_rows(events)

    async def put() -> int:
        client = aioredis.from_url(settings.require().redis_url)
        try:
            return await ListingWriter(client, settings.feast_project).write(rows)
        finally:
            await client.aclose()

    written = asyncio.run(put())
    assert written == n, f"{written} of {n} listings written"
    return [e.listing_id for e in events]


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_ready(popen: subprocess.Popen[bytes], url: str, log: Path) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < START_TIMEOUT_S:
        if popen.poll() is not None:
            raise SystemExit(f"{url} exited ({popen.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def compare_prices(ours: str, baseline: str, ids: list[str]) -> str:
    diffs, failed = [], []
    for listing_id in ids:
        a = probe(f"{ours}/v1/predictions", {"listing_id": listing_id})
        b = probe(f"{baseline}/v1/predictions", {"listing_id": listing_id})
        if a[0] != 200 or b[0] != 200:
            failed.append(f"{listing_id}: ours {a[0]}, baseline {b[0]}")
            continue
        diffs.append(abs(float(a[1]["price"]) - float(b[1]["price"])))
    out = f"same price from both on {sum(d <= 1 for d in diffs)}/{len(ids)} listings"
    if diffs:
        out += f" (largest difference {max(diffs):,.0f}만원)"
    if failed:
        out += f"; failed: {failed[:3]}"
    return out


# --- report ---------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(runs: list[Run], cpu_names: list[str]) -> str:
    head = ["run", "load", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "status / errors"]
    head += [f"{n} CPU" for n in cpu_names]
    rows = [head]
    for r in runs:
        if r.result is None:
            rows.append([f"{r.key} {r.label}", r.load, r.note] + [""] * (len(head) - 3))
            continue
        status = " ".join(f"{k}:{v}" for k, v in r.result["status"].items())
        if r.result["errors"]:
            status += " err " + json.dumps(r.result["errors"])
        row = [
            f"{r.key} {r.label}",
            r.load,
            fmt(r.rps, ",.0f"),
            fmt(r.latency("p50")),
            fmt(r.latency("p90")),
            fmt(r.latency("p99")),
            fmt(r.latency("max")),
            status,
        ]
        row += [fmt(r.cpu.get(n), ".2f") for n in cpu_names]
        rows.append(row)
    widths = [max(len(str(row[i])) for row in rows if i < len(row)) for i in range(len(head))]
    lines = []
    for i, row in enumerate(rows):
        cells = [
            str(c).ljust(w) if j < 2 or j == 7 else str(c).rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return {True: "MET", False: "NOT MET", None: "n/a"}[ok]


def goals(runs: dict[str, Run], rate: float) -> list[str]:
    out: dict[str, str] = {}  # the run each line is about -> the line
    base, ours = runs.get("b"), runs.get("c")
    if base and ours and base.rps and ours.rps:
        ratio = ours.rps / base.rps
        p99 = ours.latency("p99")
        ok = ratio >= 3 and p99 is not None and p99 <= 25 and ours.clean
        out["c"] = (
            f"[{verdict(ok)}] {ours.load}: >= 3x the baseline's req/s with p99 <= 25 ms "
            f"(ours {ours.rps:,.0f} req/s = {ratio:.2f}x, p99 {fmt(p99)} ms)"
        )
    steady = runs.get("d")
    if steady and steady.result:
        p99 = steady.latency("p99")
        achieved = steady.rps or 0.0
        ok = p99 is not None and p99 <= 5 and achieved >= 0.99 * rate and steady.clean
        lag = steady.result.get("send_lag_ms", {}).get("p99")
        line = (
            f"[{verdict(ok)}] steady {rate:,.0f} req/s open loop: p99 <= 5 ms, features and "
            f"publishing included (p99 {fmt(p99)} ms, {achieved:,.0f} req/s answered in the "
            f"window; send lag p99 {fmt(lag)} ms is inside the p99)"
        )
        if achieved < 0.99 * rate or (lag or 0) > 5:
            line += (
                "; the server did not keep up with the offered rate, so requests queued "
                "(on the connections, then in the generator) and latency is queueing"
            )
        out["d"] = line
    batch = runs.get("e1")
    if batch and batch.result:
        p99 = batch.latency("p99")
        ok = p99 is not None and p99 <= 10 and batch.clean
        out["e1"] = (
            f"[{verdict(ok)}] batch of 100 listings p99 <= 10 ms (p99 {fmt(p99)} ms, 1 connection)"
        )
    elif batch:
        out["e1"] = f"[n/a] batch of 100 listings p99 <= 10 ms: {batch.note}"
    # A latency figure from a stretch when the host ran other guests on these cores is
    # partly theirs: say so beside the verdict rather than hide or drop the run.
    for key in out:
        if (stolen := runs[key].cpu.get("steal", 0.0)) >= STEAL_WORTH_SAYING:
            out[key] += f"; during it, {steal_note(stolen)}"
    return list(out.values())


def ratios(runs: dict[str, Run]) -> list[str]:
    out = []
    for ours_key, base_key, what in (("c", "b", "POST /v1/predictions"), ("a", "a2", "healthz")):
        ours, base = runs.get(ours_key), runs.get(base_key)
        if not (ours and base and ours.rps and base.rps):
            continue
        p99o, p99b = ours.latency("p99"), base.latency("p99")
        p50o, p50b = ours.latency("p50"), base.latency("p50")
        line = f"{what}: req/s {ours.rps / base.rps:.2f}x"
        if p99o and p99b and p50o and p50b:
            line += f", p50 {p50o / p50b:.2f}x, p99 {p99o / p99b:.2f}x (ours / baseline)"
        out.append(line)
    return out


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds a run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds a run")
    parser.add_argument("--open-seconds", type=float, default=20.0, help="the open-loop run")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--open-connections", type=int, default=64, help="open loop: connections opened first"
    )
    parser.add_argument(
        "--open-max-connections",
        type=int,
        default=512,
        help="open loop: more are opened while all are busy, up to this many; then requests "
        "wait in the generator (their latency still counts from their due time)",
    )
    parser.add_argument("--listings", type=int, default=2_000)
    parser.add_argument("--deals", type=int, default=20_000, help="first model's history")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="extra argument of `homeloop serve`"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="our server's HOMELOOP_SERVING_WORKERS (default: the settings' default)",
    )
    parser.add_argument(
        "--baseline-threadpool",
        action="store_true",
        help="the baseline's endpoint as def, in the thread pool (default: async def)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()

    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="homeloop-bench-serving-"))
    base = Settings(environment="test", data_dir=work, topic_prefix="bench.", feast_project="bench")
    stack = LocalStack(base, work / "stack")
    children: list[subprocess.Popen[bytes]] = []
    with stack as settings:
        try:
            provision(settings)
            print(f"stack up and provisioned in {time.perf_counter() - began:.1f} s")
            t0 = time.perf_counter()
            outcome = train_on_simulated_history(settings, n_deals=args.deals)
            chosen = getattr(outcome, "chosen", None)
            print(
                f"first model trained on {args.deals:,} simulated deals in "
                f"{time.perf_counter() - t0:.1f} s"
                + (f" ({getattr(chosen, 'name', chosen)})" if chosen else "")
            )
            t0 = time.perf_counter()
            ids = write_listings(settings, args.listings)
            print(f"{len(ids):,} listings in the online store in {time.perf_counter() - t0:.2f} s")

            ours_port, base_port = free_port(), free_port()
            env = {**os.environ, **settings.as_env(), "HOMELOOP_API_PORT": str(ours_port)}
            if args.workers is not None:
                env["HOMELOOP_SERVING_WORKERS"] = str(args.workers)
            ours_argv = [sys.executable, "-m", "homeloop.cli", "serve", *args.serve_arg]
            base_argv = [sys.executable, str(ROOT / "benchmarks" / "baseline_api.py")]
            base_argv += ["--port", str(base_port)]
            base_argv += ["--threadpool"] if args.baseline_threadpool else []
            ours = start(ours_argv, env, work / "serve.log")
            children.append(ours)
            baseline = start(base_argv, env, work / "baseline.log")
            children.append(baseline)
            ours_url = f"http://127.0.0.1:{ours_port}"
            base_url = f"http://127.0.0.1:{base_port}"
            ready_ours = wait_ready(ours, f"{ours_url}/readyz", work / "serve.log")
            ready_base = wait_ready(baseline, f"{base_url}/healthz", work / "baseline.log")
            print(f"ours ready in {ready_ours:.1f} s; baseline {ready_base:.1f} s after that")

            rng = random.Random(0)
            print(compare_prices(ours_url, base_url, rng.sample(ids, 20)))
            print("\nour server (homeloop serve):")
            for line in server_settings(ours, ours_url):
                print(f"  {line}")
            endpoint = "def (thread pool)" if args.baseline_threadpool else "async def"
            print(
                "baseline server: uvicorn defaults (1 worker, loop/http auto, access log on), "
                f"{endpoint} endpoint"
            )
            for line in server_settings(baseline, base_url)[1:]:
                print(f"  {line}")

            roots = {"ours": ours.pid, "baseline": baseline.pid}
            for service in stack.services:
                roots[service.name] = service.process.popen.pid
            meter = CpuMeter(roots)
            idle = meter.measure(2.0)
            print(
                f"\nbefore the runs, servers idle: {idle['machine']:.2f} cores busy, "
                f"{idle['other']:.2f} of them by processes this benchmark did not start"
            )
            if idle["other"] > 0.25:
                print(
                    "  WARNING: something else is using the CPU; figures below share the "
                    "2 cores with it (see the 'other CPU' column)"
                )
            bench = Bench(args, meter)
            singles = [{"listing_id": i} for i in rng.sample(ids, len(ids))]
            print(f"\nruns ({args.warmup:.0f} s warm-up each, not counted):")
            bench.run("a", "ours GET /healthz", f"{ours_url}/healthz")
            bench.run("a2", "baseline GET /healthz", f"{base_url}/healthz")
            bench.run(
                "b",
                "baseline POST /v1/predictions",
                f"{base_url}/v1/predictions",
                method="POST",
                bodies=singles,
            )
            bench.run(
                "c",
                "ours POST /v1/predictions",
                f"{ours_url}/v1/predictions",
                method="POST",
                bodies=singles,
                on_metrics=ours_url,
            )
            bench.run(
                "d",
                "ours POST /v1/predictions",
                f"{ours_url}/v1/predictions",
                method="POST",
                bodies=singles,
                rate=args.rate,
                seconds=args.open_seconds,
                on_metrics=ours_url,
            )
            batch_runs(bench, ours_url, ids, rng)
            explain_run(bench, ours_url, singles)

            runs = list(bench.runs.values())
            cpu_names = ["ours", "baseline", *(s.name for s in stack.services)]
            cpu_names += ["loadgen", "other", "machine", "steal"]
            print(
                "\nFigures (loopback, load generator on the same 2 cores; CPU in cores used "
                "during the run, 'machine' = all processes, 'steal' = taken by the "
                f"hypervisor for other guests, of {os.cpu_count()}):\n"
            )
            print(table(runs, cpu_names))
            print()
            for line in ratios(bench.runs):
                print(line)
            for r in runs:
                if r.result and r.result.get("send_lag_ms"):
                    lag = r.result["send_lag_ms"]
                    print(
                        f"{r.key}: generator send lag (due -> sent) p50 {lag['p50']:.3f} ms, "
                        f"p99 {lag['p99']:.3f} ms, max {lag['max']:.3f} ms; "
                        f"{r.result['connections_opened']} connections used"
                    )
            print("\nInside our server (its own histograms over each run):")
            for r in runs:
                if r.note and r.result:
                    print(f"  {r.key}: " + r.note.replace("; ", "\n      "))
            print("\nGoals:")
            for line in goals(bench.runs, args.rate):
                print(f"  {line}")
            if published := publisher_figures(ours_url):
                print(f"\nour publisher at the end: {published}")
            kept = f"logs in {work}" if args.keep else "--keep keeps the logs"
            print(f"\ntotal {time.perf_counter() - began:.0f} s; {kept}")
        finally:
            terminate_all(children)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def batch_runs(bench: Bench, url: str, ids: list[str], rng: random.Random) -> None:
    size = bench.args.batch_size
    label = f"ours POST /v1/predictions/batch x{size}"
    bodies = [{"items": [{"listing_id": i} for i in rng.sample(ids, size)]} for _ in range(64)]
    status, reply = probe(f"{url}/v1/predictions/batch", bodies[0])
    if status in (404, 405):
        bench.skip("e1", label, "1 conn", f"batch route not available (HTTP {status})")
        return
    if status != 200:
        bench.skip("e1", label, "1 conn", f"batch route answered {status}: {str(reply)[:200]}")
        return
    for connections in (1, 4):
        bench.run(
            f"e{connections}",
            label,
            f"{url}/v1/predictions/batch",
            method="POST",
            bodies=bodies,
            connections=connections,
            on_metrics=url,
        )


def explain_run(bench: Bench, url: str, singles: list[dict[str, str]]) -> None:
    label = "ours POST /v1/predictions?explain=true"
    plain = probe(f"{url}/v1/predictions", singles[0])
    status, reply = probe(f"{url}/v1/predictions?explain=true", singles[0])
    if status in (404, 405):
        bench.skip("f", label, f"{bench.args.connections} conn", f"not available (HTTP {status})")
        return
    extra = (
        sorted(set(reply) - set(plain[1]))
        if isinstance(reply, dict) and isinstance(plain[1], dict)
        else []
    )
    if status != 200 or not extra:
        why = f"answered {status}" if status != 200 else "the response carries no explanation"
        bench.skip("f", label, f"{bench.args.connections} conn", f"explain not available ({why})")
        return
    run = bench.run("f", label, f"{url}/v1/predictions?explain=true", method="POST", bodies=singles)
    run.note = "; ".join(n for n in (run.note, f"explain fields: {', '.join(extra)}") if n)


if __name__ == "__main__":
    main()
