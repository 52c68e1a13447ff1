"""How big each scenario runs: `full` (the real figures), `medium` (a quick look at a new
scenario: minutes, figures rough) or `smoke` (seconds: checks the harness, not the figures)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    """Every knob that changes between a real run and a smoke run."""

    name: str
    warmup: float  # seconds of load before measuring (not counted)
    duration: float  # seconds measured per closed-loop run
    single_connections: int  # POST /queue, as the issue asks: 64
    single_bodies: int  # distinct emails sent round (more than any address cache holds)
    single_rounds: int  # turns of bare endpoint then Mailer; the median ratio is reported
    api_workers: int  # API processes, as the issue asks: 2
    batch_connections: int  # concurrent POST /queue/batch
    batch_bodies: int  # distinct batches of 500 sent round
    copy_emails: int  # rows COPYed for the batch baseline
    delivery_jobs: int  # backlog drained through the simulator
    peer_jobs: int  # no-op jobs queued for each PgQueuer setting (and procrastinate)
    peer_cap: float  # seconds after which a peer's drain is cut short (each setting)
    peer_settings: int  # how many settings of each peer's sweep are tried (the first N)
    post_office_emails: int  # emails queued for each post_office setting
    simulator_probe: float  # seconds of the simulator's own ceiling probe
    known_messages: int  # messages the event bodies refer to
    latency_probe: float  # seconds of the peak probe before the latency run
    latency_duration: float  # seconds of the open-loop latency run
    backlog_small: int
    backlog_large: int
    claims: int  # claims timed per backlog size (and stats reads timed)
    jobs_small: int  # GET /jobs: the baseline's table
    jobs_large: int  # GET /jobs: the 10 million
    page_runs: int  # times each page is read (the median is reported)
    stats_events: int  # events stored (and rolled up) under GET /stats
    soak_emails: int  # --long only
    soak_checkpoint: int  # the RSS reference point
    sizing_seconds: float  # each enqueue phase of the sizing scenario
    sizing_batches: int  # distinct batches of 500 its batch phase sends round
    stack_seconds: float  # the whole stack's sustained run, measured
    stack_backlog: int  # queued jobs above which the stack run's clients hold back
    webhook_events: int  # events fanned out to the local receiver
    retention_jobs: int  # the jobs kept at their retention: the 10 million
    retention_sends: int  # emails sent in each phase of the retention scenario


FULL = Size(
    name="full",
    warmup=3.0,
    duration=10.0,
    single_connections=64,
    single_bodies=150_000,
    single_rounds=3,
    api_workers=2,
    batch_connections=8,
    batch_bodies=600,
    copy_emails=200_000,
    delivery_jobs=100_000,
    peer_jobs=30_000,
    peer_cap=15.0,
    peer_settings=5,
    post_office_emails=6_000,
    simulator_probe=5.0,
    known_messages=20_000,
    latency_probe=5.0,
    latency_duration=15.0,
    backlog_small=10_000,
    backlog_large=1_000_000,
    claims=40,
    jobs_small=100_000,
    jobs_large=10_000_000,
    page_runs=21,
    stats_events=10_000_000,
    soak_emails=200_000,
    soak_checkpoint=100_000,
    sizing_seconds=5.0,
    sizing_batches=200,
    stack_seconds=60.0,
    stack_backlog=5_000,
    webhook_events=10_000,
    retention_jobs=10_000_000,
    retention_sends=50_000,
)

MEDIUM = Size(
    name="medium",
    warmup=3.0,
    duration=5.0,
    single_connections=64,
    single_bodies=50_000,
    single_rounds=1,
    api_workers=2,
    batch_connections=8,
    batch_bodies=200,
    copy_emails=50_000,
    delivery_jobs=20_000,
    peer_jobs=10_000,
    peer_cap=6.0,
    peer_settings=5,
    post_office_emails=2_000,
    simulator_probe=2.0,
    known_messages=5_000,
    latency_probe=3.0,
    latency_duration=5.0,
    backlog_small=10_000,
    backlog_large=100_000,
    claims=10,
    jobs_small=100_000,
    jobs_large=200_000,
    page_runs=5,
    stats_events=200_000,
    soak_emails=20_000,
    soak_checkpoint=10_000,
    sizing_seconds=3.0,
    sizing_batches=50,
    stack_seconds=15.0,
    stack_backlog=2_000,
    webhook_events=5_000,
    retention_jobs=1_000_000,
    retention_sends=20_000,
)

SMOKE = Size(
    name="smoke",
    warmup=0.3,
    duration=1.0,
    single_connections=16,
    single_bodies=5_000,
    single_rounds=1,
    api_workers=2,
    batch_connections=2,
    batch_bodies=8,
    copy_emails=2_000,
    delivery_jobs=1_000,
    peer_jobs=300,
    peer_cap=3.0,
    peer_settings=1,
    post_office_emails=100,
    simulator_probe=0.5,
    known_messages=500,
    latency_probe=1.0,
    latency_duration=1.5,
    backlog_small=1_000,
    backlog_large=5_000,
    claims=3,
    jobs_small=2_000,
    jobs_large=20_000,
    page_runs=3,
    stats_events=20_000,
    soak_emails=4_000,
    soak_checkpoint=1_000,
    sizing_seconds=1.0,
    sizing_batches=4,
    stack_seconds=2.0,
    stack_backlog=500,
    webhook_events=300,
    retention_jobs=20_000,
    retention_sends=500,
)

SIZES = {s.name: s for s in (FULL, MEDIUM, SMOKE)}
