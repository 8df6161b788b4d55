"""Thin tasks: each takes ids and makes one call into distributor."""

from __future__ import annotations

from distributor import dispatch

from .app import app, queue, settings


@app.task(name="distributor.distribute_release")
def distribute_release(release_id: int) -> int:
    return dispatch.distribute_release(settings, queue, release_id)


@app.task(name="distributor.send_batch")
def send_batch(release_id: int) -> dict[str, int]:
    report = dispatch.send_batch(settings, release_id)
    return {"claimed": report.claimed, **report.outcomes}


@app.task(name="distributor.regenerate_feeds")
def regenerate_feeds() -> int:
    return dispatch.regenerate_feeds(settings)


@app.task(name="distributor.sweep")
def sweep() -> dict[str, int]:
    report = dispatch.sweep(settings, queue)
    return {"published": len(report.published), "batches": report.batches}


@app.task(name="distributor.send_confirmation")
def send_confirmation(subscriber_id: int) -> str:
    return dispatch.send_confirmation(settings, subscriber_id)
