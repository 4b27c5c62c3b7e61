"""The frozen assignment: who was in treatment and who in control when a campaign launched.

A campaign's audience moves as customers are ingested, move or opt out; a
readout must compare the groups as they were. :func:`freeze_assignment`
writes the campaign's audience (consent, suppression, segment, holdout
applied, as :meth:`geotarget.Engine.campaign_audience` gives it) into
``campaign_assignments`` once; later calls leave it as it is, so later
ingests never rewrite that history. Only erasure removes a person from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from geotarget.errors import InvalidInputError, NotFoundError
from geotarget.measure.tables import ensure_tables, has_tables

__all__ = ["Launch"]


@dataclass(frozen=True)
class Launch:
    """A campaign's frozen assignment: when, with which holdout, and how many in each group."""

    campaign_id: str
    campaign_name: str
    launched_at: pd.Timestamp
    holdout: float | None
    treatment_n: int
    control_n: int

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"campaign_id": self.campaign_id, "campaign_name": self.campaign_name,
                "launched_at": self.launched_at.isoformat(), "holdout": self.holdout,
                "treatment_n": self.treatment_n, "control_n": self.control_n}


def load_launch(store, campaign_id: str) -> Launch | None:
    """The launch of a campaign, or None when it was never launched."""
    if not has_tables(store):
        return None
    rows = store.con.execute(
        "SELECT campaign_id, campaign_name, launched_at, holdout, treatment_n, control_n "
        "FROM campaign_launches WHERE campaign_id = $c", {"c": campaign_id}).fetchall()
    if not rows:
        return None
    cid, name, at, holdout, nt, nc = rows[0]
    return Launch(cid, name, pd.Timestamp(at).tz_convert("UTC"), holdout, int(nt), int(nc))


def freeze_assignment(engine, campaign, *, at=None) -> Launch:
    """Freeze the campaign's current audience and groups; return the existing launch if already frozen.

    ``at`` (timezone-aware) is the launch time recorded; default: the
    campaign's start when it has one, else now.
    """
    store = engine.store
    ensure_tables(store)
    existing = load_launch(store, campaign.id)
    if existing is not None:
        return existing
    if not campaign.holdout:
        raise InvalidInputError(
            f"campaign {campaign.name!r} has no holdout, so there is no control group to measure against; "
            "set one first, e.g. update_campaign(name, holdout=0.1) (CLI: campaign update NAME --holdout 0.1)")
    if at is None:
        at = campaign.start if campaign.start is not None else pd.Timestamp.now(tz="UTC")
    launched_at = parse_instant(at, "launch time")
    aud = engine.campaign_audience(campaign.id)
    frame = aud.to_pandas()
    store_col = aud.center_label if aud.center_label in frame.columns else None
    rows = pd.DataFrame({
        "campaign_id": campaign.id,
        "customer_id": frame["customer_id"].astype("string").to_numpy(dtype=object),
        "grp": np.asarray(frame["group"], dtype=object),
        "store_id": frame[store_col].astype("string").to_numpy(dtype=object) if store_col else None,
        "lat": frame["lat"].to_numpy(dtype="float64"),
        "lng": frame["lng"].to_numpy(dtype="float64"),
    })
    nt, nc = int(aud.treatment_count), int(aud.control_count)
    with store.transaction() as con:
        if con.execute("SELECT count(*) FROM campaign_launches WHERE campaign_id = $c",
                       {"c": campaign.id}).fetchall()[0][0]:
            pass  # frozen meanwhile by another thread: keep that one
        else:
            con.execute("INSERT INTO campaign_assignments SELECT * FROM rows")
            con.execute("INSERT INTO campaign_launches VALUES ($c, $n, $at, $h, $nt, $nc)",
                        {"c": campaign.id, "n": campaign.name, "at": launched_at.to_pydatetime(),
                         "h": campaign.holdout, "nt": nt, "nc": nc})
    return load_launch(store, campaign.id)


def parse_instant(value, what: str) -> pd.Timestamp | None:
    """A timezone-aware instant in UTC (None stays None); naive or unreadable values are refused."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(f"{what} {value!r} is not a date and time; use ISO 8601 with an offset, "
                                "e.g. 2026-05-01T00:00:00Z") from None
    if ts.tzinfo is None:
        raise InvalidInputError(f"{what} {value!r} has no timezone; add an offset or Z, e.g. 2026-05-01T00:00:00Z")
    return ts.tz_convert("UTC")


def require_launch(store, campaign) -> Launch:
    """The campaign's launch, or a NotFoundError saying how to freeze it."""
    launch = load_launch(store, campaign.id)
    if launch is None:
        raise NotFoundError(
            f"campaign {campaign.name!r} has no frozen assignment yet; launch it first with "
            f"eng.launch_campaign({campaign.name!r}) (CLI: geotarget campaign launch {campaign.name!r})")
    return launch
