"""Feature figures of issue 4, each next to its baseline (Feast's Python SDK) in the same run.

- stream throughput into the online store (and the offline log), one worker: listing
  events pre-produced, then drained by the feature agents; baseline: Feast ``push``
  one row at a time and in batches of 1,000;
- worker start-up: from start to both agents holding their partitions;
- freshness at a steady rate: Kafka produce time to written online (the worker's own
  histogram), with a separate producer process sending at ``--rate`` events/s, on topics
  of its own (see :func:`stream_figures`) and as updates newer than what is stored;
- online read of one listing's full vector and of 100 listings (one round trip);
  baseline: ``FeatureStore.get_online_features`` for the same features.

Runs on the local stack (or the services given by HOMELOOP_* URLs). Prints; no asserts.

    .venv/bin/python benchmarks/features.py [--events 200000] [--rate 20000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import uvloop
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.market import run_market_job  # noqa: E402
from benchmarks.machine import CpuTimes, steal_note  # noqa: E402
from homeloop.features import ENGAGEMENT_FEATURES, LISTING_FEATURES  # noqa: E402
from homeloop.featurestore import (  # noqa: E402
    ENGAGEMENT_VIEW,
    LISTING_VIEW,
    MARKET_VIEWS,
    apply_repo,
    feature_store,
)
from homeloop.market import Market  # noqa: E402
from homeloop.market.history import deal_history, lease_history  # noqa: E402
from homeloop.model_store import alias_version  # noqa: E402
from homeloop.price_levels import LEVEL_FEATURES  # noqa: E402
from homeloop.settings import Settings  # noqa: E402
from homeloop.stack import LocalStack, provision  # noqa: E402
from homeloop.stack.provision import create_topics  # noqa: E402
from streams.app import FeatureStreams  # noqa: E402
from streams.metrics import EVENTS  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def events_ok(topic: str) -> float:
    """The worker's own counter, read directly: ``REGISTRY.get_sample_value`` collects every
    metric (the process collector reads /proc), which at 100 polls a second took ~7% of the
    worker's CPU in this same process."""
    return float(EVENTS.labels(topic=topic, outcome="ok")._value.get())


def listing_payloads(
    market: Market, n: int, listings: int, since: timedelta = timedelta(0)
) -> list[tuple[bytes, bytes]]:
    """``n`` listing events over ``listings`` distinct listings (updates of the same ones),
    a second apart from ``market.start + since``.

    The market simulates up to 2,000 listings (~0.3 ms each); listing ``j`` has the
    attributes of simulated listing ``j mod 2000`` under its own id. Each event is its
    listing's with a new id and time, substituted in the encoded bytes."""
    at = market.start + since
    simulated = [market.new_listing(at) for _ in range(min(listings, 2_000))]
    stamp = f'"event_time":"{at.isoformat().replace("+00:00", "Z")}"'.encode()
    template = []
    for j in range(listings):
        event = simulated[j % len(simulated)]
        listing_id = f"L{j:07d}"
        raw = event.model_copy(update={"listing_id": listing_id}).to_bytes()
        template.append(
            (listing_id.encode(), raw.replace(str(event.event_id).encode(), b"{id}", 1))
        )
    out = []
    for i in range(n):
        key, raw = template[i % listings]
        when = f'"event_time":"{(at + timedelta(seconds=i)).isoformat()}"'.replace("+00:00", "Z")
        value = raw.replace(b"{id}", str(uuid.uuid4()).encode(), 1).replace(stamp, when.encode())
        out.append((key, value))
    return out


async def produce(settings: Settings, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.require().kafka_bootstrap_servers, linger_ms=5
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in payloads]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def paced_producer(settings: Settings, rate: int, seconds: float) -> None:
    """Sends listing events at ``rate``/s for ``seconds`` (run in its own process).

    Records are appended to per-partition batches (aiokafka's C batch builder) and sent
    200 times a second; partitions are computed with the payloads, before the clock
    starts, so the load generator costs a few µs an event and leaves the cores to the
    worker and the stores. Each record's timestamp is taken when its burst is built,
    which is when it is produced.
    """
    from aiokafka.partitioner import DefaultPartitioner

    # The same listings as the throughput phase, a month later: updates that are written
    # (the online store keeps each listing's newest values), not older events it refuses.
    market = Market(seed=Settings().simulator_seed)
    payloads = listing_payloads(market, int(rate * seconds), 20_000, timedelta(days=30))
    producer = AIOKafkaProducer(bootstrap_servers=settings.require().kafka_bootstrap_servers)
    await producer.start()
    topic = settings.topic("listings")
    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    routed = [(partitioner(key, partitions, partitions), key, value) for key, value in payloads]
    started = time.perf_counter()
    step = max(1, rate // 200)
    try:
        for i in range(0, len(routed), step):
            due = started + i / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            now_ms = int(time.time() * 1000)
            batches = {p: producer.create_batch() for p in partitions}
            for part, key, value in routed[i : i + step]:
                batches[part].append(key=key, value=value, timestamp=now_ms)
            sends = []
            for part, batch in batches.items():
                if batch.record_count():
                    batch.close()
                    sends.append(await producer.send_batch(batch, topic, partition=part))
            await asyncio.gather(*sends)
    finally:
        await producer.stop()
    print(f"producer: {len(routed)} events in {time.perf_counter() - started:.2f} s")


async def stream_figures(settings: Settings, n: int, rate: int, seconds: float) -> None:
    await throughput_figures(settings, n)
    # Freshness on topics of its own. The local broker's in-memory storage costs more per
    # request the longer a topic is (measured here at 3,700 events/s: 13% of a core on an
    # empty topic, 63% after 200,000 records, 92% after 400,000; a new topic beside the long
    # one: 17%), which Kafka's offset index does not; on the throughput phase's topic the
    # broker would take the worker's CPU instead of measuring it.
    fresh = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}fresh."})
    await create_topics(fresh)
    await freshness_figures(fresh, rate, seconds)


async def start_worker(settings: Settings) -> tuple[FeatureStreams, float]:
    """A started worker, and when it had finished starting (the feedback loop's registry
    lookups and monitors included, which share the CPU for a few seconds)."""
    streams = FeatureStreams(settings)
    started = time.perf_counter()
    await streams.start()
    await asyncio.gather(*(agent.assigned.wait() for agent in streams.agents))
    print(f"worker start-up to partitions assigned: {time.perf_counter() - started:.2f} s")
    assert streams.feedback is not None
    await streams.feedback.ready()
    await asyncio.sleep(0)  # the worker settles its heap right after
    return streams, time.perf_counter()


async def throughput_figures(settings: Settings, n: int) -> None:
    market = Market(seed=settings.simulator_seed)
    topic = settings.topic("listings")
    payloads = listing_payloads(market, n, 50_000)
    t0 = time.perf_counter()
    await produce(settings, topic, payloads)
    print(f"pre-produced {n:,} listing events in {time.perf_counter() - t0:.1f} s")

    base = events_ok(topic)
    streams, ready = await start_worker(settings)
    early = events_ok(topic) - base  # the steady state is counted from here
    cpu0, machine0 = time.process_time(), CpuTimes.now()
    while events_ok(topic) - base < n:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - ready
    cpu = (time.process_time() - cpu0) / elapsed
    counted = n - early
    print(
        f"stream throughput: {counted:,.0f} events in {elapsed:.2f} s = "
        f"{counted / elapsed:,.0f} events/s (worker process CPU {cpu:.0%} of a core; "
        f"{early:,.0f} events were in before it had finished starting; "
        f"{steal_note(CpuTimes.now().cores_since(machine0)[1])})"
    )
    await streams.stop()


async def freshness_figures(settings: Settings, rate: int, seconds: float) -> None:
    """Produce time to readable online at a steady rate, a separate process producing."""
    topic = settings.topic("listings")
    streams, _ = await start_worker(settings)
    child = subprocess.Popen(
        [sys.executable, __file__, "--produce", str(rate), "--seconds", str(seconds)],
        env={**os.environ, **settings.as_env()},
    )
    before, machine0 = _histogram("listing_features"), CpuTimes.now()
    target = events_ok(topic) + int(rate * seconds)
    while events_ok(topic) < target:
        if child.poll() not in (None, 0):
            print(f"freshness: the producer failed (exit {child.returncode}); no figure")
            await streams.stop()
            return
        await asyncio.sleep(0.05)
    child.wait()
    after = _histogram("listing_features")
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    print(
        f"freshness at {rate:,}/s for {seconds:.0f} s ({int(counts[-1]):,} events sampled): "
        f"p50 {quantile(bounds, counts, 0.5) * 1000:.0f} ms, "
        f"p99 {quantile(bounds, counts, 0.99) * 1000:.0f} ms (histogram_quantile: linear "
        f"within the bucket), p99 <= {bound(bounds, counts, 0.99) * 1000:.0f} ms (bucket bound; "
        f"{steal_note(CpuTimes.now().cores_since(machine0)[1])})"
    )
    await streams.stop()


def bound(bounds: list[float], counts: list[float], q: float) -> float:
    """The upper bound of the bucket that holds the ``q`` quantile."""
    return next(b for b, c in zip(bounds, counts, strict=True) if c >= q * counts[-1])


def quantile(bounds: list[float], counts: list[float], q: float) -> float:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket."""
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for b, c in zip(bounds, counts, strict=True):
        if c >= rank:
            if b == float("inf"):
                return lower
            return lower + (b - lower) * (rank - below) / max(c - below, 1e-12)
        lower, below = b, c
    return lower


def _histogram(view: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "homeloop_feature_freshness_seconds":
            continue
        for s in metric.samples:
            if s.name.endswith("_bucket") and s.labels.get("view") == view:
                out[float(s.labels["le"])] = s.value
    return out


def sdk_push(settings: Settings) -> None:
    store = feature_store(settings)
    market = Market(seed=3)
    rows = [market.new_listing(market.start) for _ in range(1_000)]
    from streams.listing_agent import listing_rows

    frame = listing_rows(rows)[0].push_frame()
    from feast.data_source import PushMode

    t0 = time.perf_counter()
    for i in range(200):
        store.push("listing_push", frame.iloc[[i]], to=PushMode.ONLINE)
    one = 200 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(10):
        store.push("listing_push", frame, to=PushMode.ONLINE)
    batched = 10_000 / (time.perf_counter() - t0)
    print(
        f"baseline Feast push: one by one {one:,.0f} rows/s, batches of 1,000 {batched:,.0f} rows/s"
    )


async def read_figures(settings: Settings, repeats: int) -> None:
    """Reads as the API makes them: on uvloop, in a process whose heap is settled (this one
    ran the worker, and a collection of its leftovers would be charged to a read)."""
    import redis.asyncio as aioredis

    from homeloop import heap
    from homeloop.db import connect
    from homeloop.online_reader import OnlineReader
    from homeloop.redis_wire import WireConnection

    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT DISTINCT listing_id, complex_id, dong_id, region_code "
            f'FROM "{settings.db_schema}".listing_features_log LIMIT 1000'
        ).fetchall()
    known = [r[0] for r in rows]
    entity = {
        r[0]: {"listing_id": r[0], "complex_id": r[1], "dong_id": r[2], "region_code": r[3]}
        for r in rows
    }
    rng = np.random.default_rng(0)
    heap.settle(heap.API_YOUNG)
    client = aioredis.from_url(settings.require().redis_url)
    wire = WireConnection(settings.require().redis_url)
    # As the API reads (its lean connection), and over redis-py's client for comparison.
    readers = {
        "lean connection, as served": OnlineReader(client, settings.feast_project, wire),
        "redis-py client": OnlineReader(client, settings.feast_project),
    }
    for how, reader in readers.items():
        for size in (1, 100):
            times, machine0 = [], CpuTimes.now()
            for _ in range(repeats):
                batch = [known[i] for i in rng.integers(0, len(known), size)]
                t0 = time.perf_counter()
                result = await reader.read(batch)
                times.append((time.perf_counter() - t0) * 1000)
            assert result.found.all()
            print(
                f"one-round-trip reader ({how}), {size:>3} listing(s), full vector: "
                f"p50 {pct(times, 50):.3f} ms, p99 {pct(times, 99):.3f} ms "
                f"({steal_note(CpuTimes.now().cores_since(machine0)[1])})"
            )
    await wire.close()
    await client.aclose()

    store = feature_store(settings)
    refs = [f"{LISTING_VIEW}:{n}" for n in LISTING_FEATURES]
    refs += [f"{ENGAGEMENT_VIEW}:{n}" for n in ENGAGEMENT_FEATURES]
    refs += [f"{view}:{n}" for view in MARKET_VIEWS for n in LEVEL_FEATURES]
    store.get_online_features(
        features=refs, entity_rows=[entity[known[0]]], full_feature_names=True
    )
    for size in (1, 100):
        times = []
        for _ in range(max(50, repeats // 10)):
            batch = [entity[known[i]] for i in rng.integers(0, len(known), size)]
            t0 = time.perf_counter()
            store.get_online_features(features=refs, entity_rows=batch, full_feature_names=True)
            times.append((time.perf_counter() - t0) * 1000)
        print(
            f"baseline Feast get_online_features, {size:>3} listing(s), the same features: "
            f"p50 {pct(times, 50):.3f} ms, p99 {pct(times, 99):.3f} ms"
        )


def prepare(settings: Settings) -> None:
    provision(settings)
    market = Market(seed=settings.simulator_seed)
    since, until = market.start - timedelta(days=120), market.start
    deals = deal_history(market, 8_000, since, until, seed=1)
    leases = lease_history(market, 4_000, since, until, seed=1)
    run_market_job(settings, until - timedelta(days=3), until, deals=deals, leases=leases)
    # A deployed worker finds its registry in place: create MLflow's tables here, not
    # inside the measured start.
    alias_version(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reads", type=int, default=2_000)
    parser.add_argument("--produce", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.produce:
        asyncio.run(paced_producer(Settings(), args.produce, args.seconds))
        return
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Settings(environment="test", data_dir=Path(tmp)), Path(tmp)) as settings,
    ):
        settings = settings.model_copy(update={"topic_prefix": "bench.", "feast_project": "bench"})
        prepare(settings)
        apply_repo(settings)
        asyncio.run(stream_figures(settings, args.events, args.rate, args.seconds))
        uvloop.run(read_figures(settings, args.reads))
        sdk_push(settings)


if __name__ == "__main__":
    main()
