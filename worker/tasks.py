"""Thin tasks: each takes ids and makes one call into distributor."""

from __future__ import annotations

from distributor.outbox import advance, retention, sending
from distributor.outbox import sweep as outbox_sweep
from distributor.reporting.stats_flush import flush_statistics as flush_counts
from distributor.site import builder
from distributor.site.websub import HubUnavailable, ping_hub

from .app import app, queue, settings


@app.task(name="distributor.distribute_release")
def distribute_release(release_id: int) -> int:
    return sending.distribute_release(settings, queue, release_id)


@app.task(name="distributor.distribute_advance")
def distribute_advance(release_id: int) -> int:
    return advance.distribute_advance(settings, queue, release_id)


@app.task(name="distributor.send_batch")
def send_batch(release_id: int) -> dict[str, int]:
    report = sending.send_batch(settings, release_id)
    sending.wake_for_held(queue, "send_batch", release_id, report)
    return report.summary()


@app.task(name="distributor.send_correction_notices")
def send_correction_notices(release_id: int) -> dict[str, int]:
    report = sending.send_correction_notices(settings, release_id)
    sending.wake_for_held(queue, "send_correction_notices", release_id, report)
    return report.summary()


@app.task(name="distributor.send_digests")
def send_digests(period_id: int) -> dict[str, int]:
    report = sending.send_digests(settings, period_id)
    sending.wake_for_held(queue, "send_digests", period_id, report)
    return report.summary()


@app.task(name="distributor.regenerate_site")
def regenerate_site() -> int:
    return len(builder.regenerate_site(settings, queue).written)


# The name releases before the static site enqueued; kept so their messages still run.
app.task(name="distributor.regenerate_feeds")(regenerate_site.run)


@app.task(
    name="distributor.websub_publish",
    autoretry_for=(HubUnavailable,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
)
def websub_publish(feed_urls: list[str]) -> bool:
    return ping_hub(settings, feed_urls)


@app.task(name="distributor.sweep")
def sweep() -> dict[str, int]:
    report = outbox_sweep.sweep(settings, queue)
    return {"published": len(report.published), "batches": report.batches}


@app.task(name="distributor.ledger_fold")
def ledger_fold() -> int:
    return retention.fold(settings).rows


@app.task(name="distributor.flush_statistics")
def flush_statistics() -> int:
    return flush_counts(settings)


@app.task(name="distributor.send_confirmation")
def send_confirmation(request_id: int) -> str:
    report = sending.send_confirmations(settings, request_id)
    sending.wake_for_held(queue, "send_confirmation", request_id, report)
    return sending.outcome(report)


@app.task(name="distributor.send_invitation")
def send_invitation(invitation_id: int) -> str:
    report = sending.send_invitation(settings, invitation_id)
    sending.wake_for_held(queue, "send_invitation", invitation_id, report)
    return sending.outcome(report)
