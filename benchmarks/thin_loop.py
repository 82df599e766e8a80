"""Thin-loop figures: events/s through the listing agent, prediction latency and throughput.

Runs on the local stack (or the services given by HOMELOOP_* URLs), with the worker and
the API as their own processes, as deployed. Prints its numbers; no assertions.

    .venv/bin/python benchmarks/thin_loop.py [--events 20000] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.first_model import train_on_simulated_history  # noqa: E402
from homeloop.market import Market  # noqa: E402
from homeloop.settings import Settings  # noqa: E402
from homeloop.stack import LocalStack, provision  # noqa: E402
from homeloop.stack.ports import free_port  # noqa: E402


def worker_ok_count(worker_url: str, topic: str) -> float:
    text = httpx.get(f"{worker_url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if (
                s.name == "homeloop_worker_events_total"
                and s.labels.get("topic") == topic
                and s.labels.get("outcome") == "ok"
            ):
                return s.value
    return 0.0


async def produce(settings: Settings, payloads: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.require().kafka_bootstrap_servers, linger_ms=5
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [
            await producer.send(settings.topic("listings"), value, key=key)
            for key, value in payloads
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def latency(
    api_url: str, ids: list[str], n: int, concurrency: int
) -> tuple[list[float], float]:
    """Per-request latencies (ms) and requests/s for ``n`` requests at ``concurrency``."""
    latencies: list[float] = []
    rng = np.random.default_rng(0)
    picks = [ids[i] for i in rng.integers(0, len(ids), n)]

    async def client_loop(chunk: list[str]) -> None:
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as client:
            for listing_id in chunk:
                t0 = time.perf_counter()
                r = await client.post("/v1/predictions", json={"listing_id": listing_id})
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(picks[i::concurrency]) for i in range(concurrency)))
    return latencies, n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="homeloop-bench-"))
    base = Settings(environment="test", data_dir=work, topic_prefix="bench.", feast_project="bench")
    with LocalStack(base, work / "stack") as settings:
        settings = settings.model_copy(
            update={"api_port": free_port(), "worker_web_port": free_port()}
        )
        provision(settings)
        train_on_simulated_history(settings, n_deals=20_000)
        env = {**os.environ, **settings.as_env()}
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "homeloop.cli", cmd],
                env=env,
                stdout=open(work / f"{cmd}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            for cmd in ("worker", "serve")
        ]
        api_url = f"http://127.0.0.1:{settings.api_port}"
        worker_url = f"http://127.0.0.1:{settings.worker_web_port}"
        try:
            started = time.perf_counter()
            market = Market(seed=settings.simulator_seed)
            warm = market.new_listing(market.start)
            asyncio.run(produce(settings, [(warm.listing_id.encode(), warm.to_bytes())]))
            while True:
                try:
                    r = httpx.post(
                        f"{api_url}/v1/predictions", json={"listing_id": warm.listing_id}
                    )
                    if r.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            print(f"worker+API start to first prediction: {time.perf_counter() - started:.1f} s")

            events = [market.new_listing(market.start) for _ in range(args.events)]
            payloads = [(e.listing_id.encode(), e.to_bytes()) for e in events]
            topic = settings.topic("listings")
            before = worker_ok_count(worker_url, topic)
            t0 = time.perf_counter()
            produce_s = asyncio.run(produce(settings, payloads))
            while worker_ok_count(worker_url, topic) < before + args.events:
                time.sleep(0.05)
            agent_s = time.perf_counter() - t0
            print(
                f"agent: {args.events:,} listing events into the online store in {agent_s:.2f} s "
                f"= {args.events / agent_s:,.0f} events/s (producing alone: "
                f"{args.events / produce_s:,.0f} events/s)"
            )

            ids = [e.listing_id for e in events]
            for concurrency in (1, 32):
                lat, rps = asyncio.run(latency(api_url, ids, args.requests, concurrency))
                p50, p99 = np.percentile(lat, [50, 99])
                print(
                    f"POST /v1/predictions, {concurrency:>2} connection(s): {rps:,.0f} req/s, "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (client included)"
                )
        finally:
            for child in children:
                child.terminate()
                child.wait(15)


if __name__ == "__main__":
    main()
