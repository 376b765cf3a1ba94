"""One settings object for every Earshot process, read from `EARSHOT_*` variables."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.codec import BatchLimits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{32,256}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EARSHOT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = PROJECT_ROOT / ".data"
    database_url: str | None = None
    # A streaming replica for the heavy reads (scores, timeline, predictions, classes,
    # events): stale by the replica's lag, which /readyz reports. Unset: the primary.
    database_read_url: str | None = None
    db_port: int = Field(54329, ge=1, le=65535)
    db_name: str = "earshot"
    db_pool_min: int = Field(2, ge=1)
    db_pool_max: int = Field(16, ge=1)
    db_timeout_s: float = Field(5.0, gt=0)
    migrations_dir: Path = PROJECT_ROOT / "migrations"
    admin_key: SecretStr | None = None
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_topic: str = "earshot/sensors/+/embeddings"
    # Audio over MQTT (`earshot audio-bridge`, service.mqtt_audio): one file per message.
    mqtt_audio_topic: str = "earshot/sensors/+/audio"
    webhook_allow_private: bool = False
    log_level: str = "INFO"
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_batch_windows: int = Field(10_000, ge=1)
    max_past_days: float = Field(366.0, gt=0)
    max_future_s: float = Field(300.0, ge=0)
    max_audio_seconds: float = Field(3600.0, gt=0)
    embeddings_retention_days: float = Field(30.0, gt=0)
    scores_retention_days: float = Field(90.0, gt=0)
    rate_limit_per_s: float = Field(200.0, gt=0)
    rate_limit_burst: int = Field(400, ge=1)
    # How long an API process trusts a token it has looked up (ingest routes): the bound
    # on a revocation made through another API process. 0 looks every token up.
    auth_cache_s: float = Field(5.0, ge=0, le=300)
    # Fixed so the broker keeps the bridge's session (and unacked messages) across restarts.
    # One stable id per bridge (earshot-bridge-1, -2, ...): a restarted bridge resumes its
    # session and gets the messages it had not acknowledged.
    mqtt_client_id: str = Field(default="earshot-bridge", min_length=1, max_length=64)
    # Bridges share the stream through `$share/<group>/<topic>`; empty: a plain
    # subscription (every bridge would get every message).
    mqtt_share_group: str = Field(default="", pattern=r"^[^/+#\s]*$", max_length=64)
    # Webhook delivery (service.alerting.delivery). The lease must outlast one request, so
    # the worker uses max(lease, timeout + 1): an in-flight send is never claimed twice.
    webhook_timeout_s: float = Field(15.0, gt=0, le=120)
    webhook_lease_s: float = Field(30.0, gt=0)
    webhook_retry_base_s: float = Field(5.0, gt=0)
    webhook_retry_max_s: float = Field(3600.0, gt=0)
    webhook_retry_window_s: float = Field(86400.0, gt=0)
    webhook_workers: int = Field(8, ge=1, le=64)
    # Absolute base of the links in webhook payloads (e.g. https://earshot.example.com).
    public_url: str | None = None
    # Training jobs and the scheduler process (service.training, service.scheduler).
    train_max_windows: int = Field(200_000, ge=100)  # newest windows kept: bounds memory
    train_concurrency: int = Field(1, ge=1, le=16)  # fits are CPU-heavy
    train_heartbeat_s: float = Field(5.0, gt=0)
    # A running job whose heartbeat is older than this lost its process: re-queued (or
    # failed after train_max_attempts claims, so a job that kills its process cannot loop).
    train_stale_s: float = Field(60.0, gt=0)
    train_max_attempts: int = Field(3, ge=1)
    # tcp://host:8786: fits run on this Dask distributed cluster (service.training.compute);
    # unset: in the worker process.
    # The fleet embedding (service.fleet): retrained when the newest version is this old
    # (checked hourly by the leader; 0: only on POST /v1/fleet/embedding/train).
    fleet_retrain_hours: float = Field(24.0, ge=0)
    dask_scheduler: str | None = Field(None, pattern=r"^(tcp|tls)://[^\s/]+:\d+$")
    scheduler_sync_s: float = Field(5.0, gt=0)  # re-read retrain crons this often
    scheduler_poll_s: float = Field(1.0, gt=0)  # job-queue poll when no NOTIFY arrives
    scheduler_shutdown_s: float = Field(3.0, gt=0)
    # Followers try the leader lock this often: the periodic duties of a dead leader
    # resume within about this long (service.scheduler.leader).
    leader_poll_s: float = Field(1.0, gt=0, le=60)
    # "module:function" turning a retrain_cron string into an APScheduler trigger.
    retrain_trigger: str = "service.scheduler.cron:crontab_trigger"
    # Scoring worker and timelines (service.scoring). A chunk bounds the windows (and
    # memory) of one scoring transaction; a 24 h backfill is committed chunk by chunk.
    scoring_chunk_windows: int = Field(5000, ge=1, le=200_000)
    scoring_claim_rows: int = Field(5000, ge=1, le=100_000)
    scoring_poll_s: float = Field(1.0, gt=0, le=1.0)  # fallback when no NOTIFY arrives
    # Machines whose active detector (and, apart, classifier) one scorer keeps loaded;
    # beyond it the least recently used are dropped and reloaded when next needed, so a
    # worker's memory stays bounded however many machines it serves.
    scoring_model_cache: int = Field(2000, ge=1, le=1_000_000)
    health_no_data_s: float = Field(300.0, gt=0)  # no scored window this long: no_data
    rollups_retention_days: float | None = Field(None, gt=0)  # None: keep rollups forever
    ingest_errors_retention_days: float = Field(30.0, gt=0)
    # Dashboard (service.ui): signed-in sessions last this long; the CSRF tokens are signed
    # with ui_secret (default: derived from the admin key, so every API process agrees).
    ui_session_ttl_s: float = Field(43200.0, gt=0, le=30 * 86400)
    ui_secret: SecretStr | None = None
    # The audio store (docs/audio.md). Live audio is kept this long after it *arrived*;
    # audio overlapping a baseline, a label or an alert (its span +- the margin) is pinned
    # for as long as that exists.
    audio_retention_hours: float = Field(72.0, gt=0)
    audio_pin_margin_s: float = Field(60.0, ge=0, le=3600)
    audio_max_read_s: float = Field(600.0, gt=0, le=7200)  # one WAV / spectrogram of audio
    spectrogram_max_embedding_s: float = Field(7 * 86400.0, gt=0)  # coarse, from windows
    # Tables that grow with traffic (service.scoring.retention.prune_rows): finished webhook
    # messages (with deliveries and attempts) and finished training jobs (kept while a model
    # they produced exists), deleted in batches of at most `retention_batch_rows` rows per
    # transaction and `retention_max_batches` batches per table per hourly run.
    webhook_retention_days: float = Field(30.0, gt=0)
    jobs_retention_days: float = Field(90.0, gt=0)
    # Resolved alerts (firing ones always stay): None keeps the alert history forever.
    alerts_retention_days: float | None = Field(None, gt=0)
    # How often the leader enforces every retention (service.scoring.retention.enforce).
    retention_interval_s: float = Field(3600.0, gt=0)
    retention_batch_rows: int = Field(5000, ge=1, le=100_000)
    retention_max_batches: int = Field(200, ge=1)

    @field_validator("admin_key")
    @classmethod
    def _admin_key_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not ADMIN_KEY_PATTERN.match(value.get_secret_value()):
            raise ValueError(
                "EARSHOT_ADMIN_KEY must be 32-256 characters of A-Z, a-z, 0-9, '_' or '-' "
                "(unset it and `make run` generates one)"
            )
        return value

    def batch_limits(self) -> BatchLimits:
        """The count and time rules every ingest path applies to windows."""
        return BatchLimits(max_windows=self.max_batch_windows,
                           max_past_s=self.max_past_days * 86400.0,
                           max_future_s=self.max_future_s)

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def embedded_db(self) -> bool:
        return self.database_url is None

    def resolved_database_url(self) -> str:
        """The URL of the configured external database, or of the embedded cluster."""
        if self.database_url is not None:
            return self.database_url
        password_file = self.data_dir / "db-password"
        password = password_file.read_text().strip() if password_file.exists() else ""
        auth = f"earshot:{password}@" if password else "earshot@"
        return f"postgresql://{auth}127.0.0.1:{self.db_port}/{self.db_name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
