"""The ``homeloop`` command: one entry point with a subcommand for every job an operator runs.

Heavy imports (faust, feast, mlflow) happen inside the commands, so ``homeloop --help``
is instant and each process loads only what it runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console

from homeloop.settings import Settings, load_settings

if TYPE_CHECKING:
    from batch.ingest.listings import ListingLoad
    from batch.training_data import Source

app = typer.Typer(
    help="homeloop: apartment price prediction that improves itself from what users do.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)
logger = logging.getLogger("homeloop")
SHOCK_HELP = "Region code (e.g. 41135) whose prices fall 10% over three simulated months"


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("aiokafka", "faust", "mode", "feast", "mlflow", "urllib3", "alembic", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings)
    return settings


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


@app.command()
def up() -> None:
    """Start every service not given by a HOMELOOP_* URL, provision it, wait for Ctrl-C."""
    from homeloop.stack import LocalStack, provision

    settings = _settings()
    with LocalStack(settings, settings.data_dir / "stack") as resolved:
        provision(resolved)
        console.print("[bold green]homeloop stack is up.[/] Export these to use it:")
        for name, value in resolved.as_env().items():
            if name.endswith(("_URL", "_SERVERS", "_URI")):
                typer.echo(f"export {name}={value}")
        console.print("Ctrl-C stops and removes the local services.")
        _wait_for_signal()


@app.command()
def provision() -> None:
    """Create topics and the database schema and apply the Feast repo on the given services."""
    from homeloop.stack import provision as run_provision

    run_provision(_settings())
    console.print("[green]provisioned[/]")


@app.command()
def schemas(
    check: Annotated[bool, typer.Option(help="Fail if checked-in schemas are stale")] = False,
) -> None:
    """Write the JSON Schema of every event into schemas/ (or check they are current)."""
    from homeloop.schemas import stale_schemas, write_schemas

    if check:
        stale = stale_schemas()
        if stale:
            console.print(f"[red]stale schemas:[/] {', '.join(stale)}; run `homeloop schemas`")
            raise typer.Exit(1)
        console.print("[green]schemas are current[/]")
        return
    for path in write_schemas():
        typer.echo(str(path))


@app.command()
def train(
    if_missing: Annotated[
        bool, typer.Option(help="Only train when no model holds the champion alias")
    ] = False,
    source: Annotated[
        str,
        typer.Option(
            help="auto (the deals table if it holds enough, else simulated), database or simulated"
        ),
    ] = "auto",
    deals: Annotated[int, typer.Option(min=500, help="Simulated deals to train on")] = 20_000,
) -> None:
    """Train the candidate grid, gate the best and register it (the run is recorded in MLflow
    and in the registry history)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from batch import trainer

    settings = _settings()
    if source not in ("auto", "database", "simulated"):
        raise typer.BadParameter(f"unknown source {source!r}", param_hint="--source")
    source_name = cast("Source", source)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("loading the training data", total=None)

        def say(step: str) -> None:
            progress.update(task, description=step)

        try:
            outcome = trainer.train_by_hand(
                settings,
                source=source_name,
                n_deals=deals,
                if_missing=if_missing,
                progress=say,
            )
        except (ValueError, RuntimeError) as exc:
            console.print(f"[red]training refused:[/] {exc}")
            raise typer.Exit(2) from exc
    if outcome is None:
        console.print("a champion exists already; nothing to train")
        return
    console.print(training_table(outcome))
    if outcome.status == "registered":
        console.print(
            f"[green]registered {outcome.model_name} v{outcome.version}[/] as "
            f"[bold]{outcome.alias}[/] ({outcome.chosen}); run {outcome.run_id}"
        )
    else:
        console.print(f"[yellow]rejected[/] (run {outcome.run_id}):")
        for reason in outcome.reasons:
            console.print(f"  - {reason}")


def training_table(outcome: object) -> object:
    """The candidates side by side: validation and test figures, checks, the choice."""
    from rich.table import Table

    from batch.train import TrainingOutcome

    assert isinstance(outcome, TrainingOutcome)
    table = Table(title=f"training run {outcome.run_id[:8]} ({outcome.rows['train']:,} / "
                  f"{outcome.rows['validation']:,} / {outcome.rows['test']:,} rows)")  # fmt: skip
    for column in ("candidate", "trees", "fit s", "val MAE", "test MAE", "MAPE %", "R²", "checks"):
        table.add_column(column, justify="left" if column in ("candidate", "checks") else "right")
    for r in outcome.candidates:
        failed = [c.name for c in r.checks if not c.passed]
        table.add_row(
            r.name, str(r.trees), f"{r.seconds:.1f}", f"{r.validation_mae:,.0f}",
            f"{r.metrics['test_mae']:,.0f}", f"{r.metrics['test_mape']:.2f}",
            f"{r.metrics['test_r2']:.3f}", "ok" if not failed else "[red]" + ", ".join(failed),
            style="bold green" if r.name == outcome.chosen else None,
        )  # fmt: skip
    extra = [f"chosen (bold): {outcome.chosen or 'none'}"]
    if "noise_floor_mae" in outcome.metrics:
        extra.append(f"noise floor MAE {outcome.metrics['noise_floor_mae']:,.0f}")
    if outcome.champion and "test_mae" in outcome.champion:
        extra.append(
            f"champion v{outcome.champion['version']} test MAE {outcome.champion['test_mae']:,.0f}"
        )
    table.caption = "; ".join(extra)
    return table


@app.command()
def market(
    days: Annotated[int, typer.Option(min=1, help="Days to (re)compute, ending now")] = 7,
) -> None:
    """Compute the market views (complex, dong, region) offline and materialize them."""
    from datetime import UTC, datetime, timedelta

    from batch.market import run_market_job

    settings = _settings()
    until = datetime.now(UTC)
    run = run_market_job(settings, until - timedelta(days=days), until)
    console.print(
        f"[green]market[/] {run.days} day(s) from {run.source} deals: "
        + ", ".join(f"{level} {rows:,} rows" for level, rows in run.rows.items())
    )


@app.command()
def worker() -> None:
    """Run the stream worker (the feature agents)."""
    from streams.worker import run_worker

    run_worker(_settings())


def _server_options(settings: Settings) -> dict[str, Any]:
    return {
        "loop": "uvloop",  # libuv's event loop: about twice asyncio's for small requests
        # the C HTTP parser, with a response's head and body in one send (see the module)
        "http": "serving.http_protocol:CoalescingHttpToolsProtocol",
        "log_level": settings.log_level.lower(),
        "access_log": False,  # a line per request costs more than the request
    }


@app.command()
def serve() -> None:
    """Run the prediction API."""
    import uvicorn

    from serving.app import create_app
    from serving.workers import supervise, worker_command

    settings = _settings()
    if settings.serving_workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            **_server_options(settings),
        )
        return
    # Several workers, each on its own SO_REUSEPORT socket (serving.workers says why); each
    # imports the app, loads the models and publishes on its own; metrics go through files
    # that /metrics sums (set before the workers start).
    metrics_dir = settings.data_dir.resolve() / "metrics" / f"serve-{os.getpid()}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    raise typer.Exit(supervise(worker_command("serve-worker"), settings.serving_workers))


@app.command("serve-worker", hidden=True)
def serve_worker() -> None:
    """One worker of ``homeloop serve`` (started by it)."""
    from serving.workers import run_worker

    settings = _settings()
    run_worker(
        "serving.app:app_from_env",
        settings.api_host,
        settings.api_port,
        _server_options(settings),
    )


@app.command()
def simulate(
    api_url: Annotated[str, typer.Option(help="Prediction API base URL")] = "",
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 runs until Ctrl-C")] = 0.0,
    rate: Annotated[float, typer.Option(help="Listing events per second")] = 20.0,
    shock: Annotated[str | None, typer.Option(help=SHOCK_HELP)] = None,
) -> None:
    """Run the market simulator against the topics and the prediction API."""
    from homeloop.simulate import run_simulator

    settings = _settings()
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    run_simulator(settings, api_url=url, duration=duration or None, rate=rate, shock=shock)


@app.command()
def history(
    out: Annotated[Path, typer.Option(help="Parquet file to write")],
    deals: Annotated[int, typer.Option(min=1, help="Number of deals")] = 100_000,
    days: Annotated[int, typer.Option(min=1, help="Days of history before the start")] = 365,
) -> None:
    """Write a simulated deal history (with the true prices) for training and analysis."""
    from datetime import timedelta

    from homeloop.market import Market, deal_history

    settings = _settings()
    market = Market(seed=settings.simulator_seed)
    frame = deal_history(
        market, deals, market.start - timedelta(days=days), market.start, settings.simulator_seed
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    console.print(f"[green]{len(frame):,} deals[/] → {out}")


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 runs until Ctrl-C")] = 0.0,
    rate: Annotated[float, typer.Option(help="Listing events per second")] = 20.0,
    shock: Annotated[str | None, typer.Option(help=SHOCK_HELP)] = None,
) -> None:
    """Start everything locally and run the live loop: simulator → streams → serving → Kafka."""
    from homeloop.demo import run_demo

    run_demo(_settings(), duration=duration or None, rate=rate, shock=shock)


@app.command()
def trainer() -> None:
    """Run the trainer: consume retrain requests, debounce bursts, one training at a time."""
    from batch.trainer import run_trainer

    run_trainer(_settings())


@app.command()
def scheduler() -> None:
    """Publish a retrain request every Monday 09:00 (Asia/Seoul), the design's weekly schedule."""
    from batch.scheduler import run_scheduler

    run_scheduler(_settings())


@app.command()
def check(
    heartbeat: Annotated[str, typer.Option(help="Name of the process whose heartbeat to check")],
    max_age: Annotated[float, typer.Option(help="Seconds a heartbeat may be old")] = 120.0,
) -> None:
    """Health check for processes without an HTTP port: exit 1 when the heartbeat is stale."""
    from homeloop.heartbeat import age_seconds

    age = age_seconds(load_settings(), heartbeat)
    if age is None or age > max_age:
        typer.echo(f"{heartbeat}: no heartbeat within {max_age:.0f}s (last: {age})", err=True)
        raise typer.Exit(1)
    typer.echo(f"{heartbeat}: alive ({age:.0f}s ago)")


ingest_app = typer.Typer(
    help="Collect, validate, clean and load source data.", no_args_is_help=True
)
app.add_typer(ingest_app, name="ingest")


def _run_ingest(run: object) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from batch.ingest.report import summary_table

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console) as progress:  # fmt: skip
        task = progress.add_task("starting")
        summary = run(lambda text: progress.update(task, description=text))  # type: ignore[operator]
    console.print(summary_table(summary))
    for failure in summary.failures:
        console.print(f"[red]failed[/] {failure}")
    if summary.failures or any(r.status != "loaded" for r in summary.results):
        raise typer.Exit(1)


@ingest_app.command("csv")
def ingest_csv(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Load MOLIT CSV exports (apt_trade_*.csv, apt_rent_*.csv)."""
    from batch.ingest.run import ingest_csv as run

    settings = _settings()
    _run_ingest(lambda progress: run(settings, paths, progress))


@ingest_app.command("api")
def ingest_api(
    lawd: Annotated[list[str], typer.Option(help="5-digit 시군구 code(s), LAWD_CD")],
    month: Annotated[list[str], typer.Option(help="Month(s) as YYYYMM, DEAL_YMD")],
    kind: Annotated[str, typer.Option(help="trade (sales) or rent (leases)")] = "trade",
    backup: Annotated[
        Path | None, typer.Option(help="Folder of crawled files to fall back to", file_okay=False)
    ] = None,
) -> None:
    """Fetch months from the MOLIT open API (retried, cached) and load them."""
    from batch.ingest.run import ingest_api as run

    if kind not in ("trade", "rent"):
        raise typer.BadParameter("kind must be trade or rent", param_hint="--kind")
    settings = _settings()
    _run_ingest(
        lambda progress: run(settings, kind, lawd, month, progress, backup)  # type: ignore[arg-type]
    )


def _report_listings(loads: list[ListingLoad], failures: list[str]) -> None:
    for load in loads:
        console.print(
            f"{load.source}: {load.rows:,} listings, {len(load.new):,} new, "
            f"{len(load.changed):,} changed → published {len(load.new) + len(load.changed):,}"
        )
    for failure in failures:
        console.print(f"[red]failed[/] {failure}")
    if failures:
        raise typer.Exit(1)


@ingest_app.command("crawl")
def ingest_crawl(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
) -> None:
    """Load a folder of crawled files: *listing* files to properties (new or changed ones
    published to listings), *trade*/*rent* deal files to deals and leases."""
    from batch.ingest.run import ingest_crawled_deals, ingest_listings

    settings = _settings()
    _report_listings(*ingest_listings(settings, folder, False, console.print))
    if any(p.suffix in (".csv", ".jsonl") and ("trade" in p.name or "rent" in p.name)
           for p in folder.iterdir()):  # fmt: skip
        _run_ingest(lambda progress: ingest_crawled_deals(settings, folder, progress))


@ingest_app.command("db")
def ingest_db() -> None:
    """Load the platform's own listings (the in-house table) and publish new or changed ones."""
    from batch.ingest.run import ingest_listings

    settings = _settings()
    _report_listings(*ingest_listings(settings, None, True, console.print))


@ingest_app.command("daily")
def ingest_daily() -> None:
    """The whole phase for the configured regions: last and this month from the API (crawled
    files as backup), then crawled and in-house listings."""
    from datetime import date, timedelta

    from batch.ingest.run import ingest_api as run_api
    from batch.ingest.run import ingest_listings as run_listings

    settings = _settings()
    today = date.today()
    months = [f"{(today.replace(day=1) - timedelta(days=1)):%Y%m}", f"{today:%Y%m}"]
    failed = False
    if settings.molit_service_key is None:
        console.print("[yellow]HOMELOOP_MOLIT_SERVICE_KEY not set: skipping the MOLIT API[/]")
    else:
        for kind in ("trade", "rent"):
            try:
                _run_ingest(
                    lambda progress, kind=kind: run_api(
                        settings, kind, settings.ingest_lawd_codes, months, progress,
                        settings.ingest_crawl_dir,
                    )
                )  # fmt: skip
            except typer.Exit:
                failed = True
    try:
        _report_listings(*run_listings(settings, settings.ingest_crawl_dir, True, console.print))
    except typer.Exit:
        failed = True
    if failed:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
