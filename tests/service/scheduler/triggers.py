"""A retrain trigger for tests (`EARSHOT_RETRAIN_TRIGGER=tests.service.scheduler.triggers:
every_second`): every crontab fires each wall-clock second, so slots are aligned across
processes exactly as real cron slots are."""

from __future__ import annotations

from datetime import UTC

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from service.scheduler.cron import crontab_trigger


def every_second(cron: str) -> BaseTrigger:
    crontab_trigger(cron)  # still refuse what production would refuse
    return CronTrigger(second="*", timezone=UTC)
