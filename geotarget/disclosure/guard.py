"""The rules the HTTP service enforces, as one library object: :class:`Disclosure`.

``eng.disclosure(key_id=..., admin=False)`` answers heatmaps, audience counts
and promotions exactly as the service answers a key: the policy stored in the
database (:mod:`geotarget.store.policy`) is always applied; the count rules
of :mod:`geotarget.disclosure.counts` apply unless ``admin=True``;
``privacy="dp"`` charges the key's budget (:mod:`geotarget.disclosure.dp`).
Library callers who own the data use the engine directly, where the policy's
floors hold unless they pass an explicit override (``allow_no_floor``,
``allow_small``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from geotarget.audience.audience import Audience
from geotarget.audience.membership import _radius_members
from geotarget.audience.privacy import email_column, phone_column
from geotarget.disclosure.counts import check_request, member_hashes, noisy_count, refuse, set_seed
from geotarget.disclosure.dp import laplace_counts
from geotarget.errors import InvalidInputError, PrivacyError
from geotarget.maps.heatmap import aggregate_cells, aggregate_regions, parse_metric
from geotarget.maps.suppression import check_published_res, published_heatmap
from geotarget.store.policy import load_policy, noise_salt, spend_budget

__all__ = ["PRIVACY_MODES", "Disclosure"]

#: ``None`` (the consistent suppression and, for counts, sticky noise) or ``"dp"``.
PRIVACY_MODES = (None, "dp")

_GEOGRAPHY = ("stores", "points", "region_layer", "ring_cell", "ring_point")


def _check_mode(privacy, epsilon) -> None:
    if privacy not in PRIVACY_MODES:
        raise InvalidInputError(f"privacy must be 'dp' or left out, got {privacy!r}")
    if privacy is None and epsilon is not None:
        raise InvalidInputError("epsilon is given only with privacy='dp'")
    if privacy == "dp" and epsilon is None:
        raise InvalidInputError("privacy='dp' needs epsilon, e.g. epsilon=0.5")


#: Row columns that place a customer on the map: only ``pii`` keys get them in files.
LOCATION_COLUMNS = ("lat", "lng", "distance_m")


class _UnlocatedAudience(Audience):
    """An audience whose rows carry no coordinates (for files given to keys without ``pii``)."""

    def to_pandas(self, columns: list[str] | None = None):
        return super().to_pandas(columns).drop(columns=list(LOCATION_COLUMNS), errors="ignore")

    def to_geodataframe(self, columns: list[str] | None = None):
        raise PrivacyError("a GeoJSON file places each customer on the map and needs a key with the pii scope; "
                           "ask for csv or parquet")


def _without_location(aud):
    out = object.__new__(_UnlocatedAudience)
    out.__dict__.update(aud.__dict__)
    return out


class Disclosure:
    """What one API key may learn: heatmaps, audience counts and files, promotions.

    Parameters
    ----------
    engine : Engine
    key_id : str, default "library"
        Whose differential-privacy budget is charged.
    admin : bool, default False
        An ``admin`` key: audience counts are exact and their request rules
        are not applied (heatmaps keep the policy's suppression for every key).
    pii : bool, default False
        A ``pii`` key: audience files may carry email, phone and sensitive columns.
    """

    def __init__(self, engine, *, key_id: str = "library", admin: bool = False, pii: bool = False):
        self.engine = engine
        self.key_id = str(key_id)
        self.admin = bool(admin)
        self.pii = bool(pii)

    @property
    def policy(self):
        """The database's privacy policy, read now."""
        return load_policy(self.engine.store)

    # -- heatmaps -------------------------------------------------------------------------------------------
    def heatmap(self, res: int = 8, metric="count", *, region_layer: str | None = None, k_min: int | None = None,
                privacy: str | None = None, epsilon: float | None = None):
        """A heatmap as it may be published (see :mod:`geotarget.maps.suppression` and, for ``dp``, ``dp``)."""
        _check_mode(privacy, epsilon)
        eng, policy = self.engine, self.policy
        if privacy == "dp":
            return self._dp_heatmap(policy, res, metric, region_layer)(epsilon)
        return eng.store.read_consistent(
            lambda: published_heatmap(eng, policy, res, metric, region_layer=region_layer, k_min=k_min))

    def _dp_heatmap(self, policy, res, metric, region_layer):
        metric = parse_metric(metric)
        if metric.kind != "count":
            raise InvalidInputError(f"privacy='dp' heatmaps measure count only, not {metric}")
        if region_layer is None:
            res = check_published_res(policy, res)
        elif region_layer not in self.engine.layers():
            self.engine.regions(region_layer)  # raises NotFoundError naming the layers

        def answer(epsilon):
            spend_budget(self.engine.store, self.key_id, epsilon, policy.dp_budget)
            eng = self.engine
            raw = eng.store.read_consistent(
                lambda: aggregate_regions(eng, region_layer, metric, k_min=1) if region_layer is not None
                else aggregate_cells(eng, res, metric, k_min=1))
            noisy = np.round(laplace_counts(raw.frame["customers"], epsilon))
            keep = noisy >= policy.k_min
            frame = raw.frame.loc[keep].copy().reset_index(drop=True)
            frame["customers"] = noisy[keep].astype("int64")
            frame["value"] = frame["customers"].astype("float64")
            geometry = None if raw.geometry is None else np.asarray(raw.geometry, dtype=object)[keep]
            return replace(raw, frame=frame, k_min=policy.k_min, suppressed_cells=0, suppressed_regions=0,
                           suppressed_customers=0, total_customers=int(frame["customers"].sum()),
                           unassigned_customers=0, geometry=geometry)

        return answer

    # -- audiences ------------------------------------------------------------------------------------------
    def _build(self, of_campaign: str | None, options: dict, min_size: int):
        if of_campaign is not None:
            return self.engine.campaign_audience(of_campaign, min_size=min_size, **options)
        return self.engine.audience(**options, min_size=min_size)

    def _rules(self, options: dict) -> tuple[object, dict]:
        """The policy (its minimum raised by a ``min_size`` option) and the options left to build with."""
        options = dict(options)
        policy = self.policy
        floor = max(policy.min_audience, options.pop("min_size", None) or 0)
        if not self.admin:
            check_request(options, policy)
        return replace(policy, min_audience=floor), options

    def audience(self, *, of_campaign: str | None = None, **options):
        """The audience for a file: the request rules (unless admin), the policy's minimum, the PII columns.

        For a key without ``pii`` the rows carry no coordinates (``lat``,
        ``lng``, ``distance_m``): customer ids, their nearest store, their group.

        ``of_campaign`` names a campaign whose audience is narrowed by ``options``.
        """
        self.check_columns(options.get("columns"))
        policy, options = self._rules(options)
        aud = self._build(of_campaign, options, policy.min_audience)
        if len(aud) < policy.min_audience:
            refuse("the audience", policy.min_audience)
        if not self.admin:
            self._check_differences(aud, options, policy, of_campaign)
        return aud if self.pii else _without_location(aud)

    def check_columns(self, columns) -> None:
        """Refuse raw email, phone and the policy's sensitive columns to a key without ``pii``."""
        if self.pii or not columns:
            return
        have = self.engine.store.columns("customers")
        raw = {c for c in (email_column(have), phone_column(have)) if c} | set(self.policy.sensitive_columns)
        asked = sorted(set(columns) & raw)
        if asked:
            raise PrivacyError(f"columns: {', '.join(asked)} hold raw personal data and need a key with the pii "
                               "scope; leave them out (customer_match formats carry them hashed)")

    def audience_counts(self, *, privacy: str | None = None, epsilon: float | None = None,
                        of_campaign: str | None = None, **options) -> dict:
        """An audience's size and per-store counts, as they may be released to this key.

        Admin keys get the exact :meth:`Audience.summary`. Other keys get the
        rules of :mod:`geotarget.disclosure.counts` (or, with ``privacy="dp"``,
        noisy counts paid from the key's budget).

        Raises
        ------
        PrivacyError
            A refused request or result (403 over HTTP); no size is told.
        """
        _check_mode(privacy, epsilon)
        policy, options = self._rules({k: v for k, v in options.items() if k not in ("columns", "format")})
        eng = self.engine
        if privacy == "dp":
            spend_budget(eng.store, self.key_id, epsilon, policy.dp_budget)
        aud = self._build(of_campaign, options, policy.min_audience)
        if privacy == "dp":
            return self._dp_counts(aud, policy, epsilon)
        if self.admin:
            if len(aud) < policy.min_audience:
                refuse("the audience", policy.min_audience)
            return aud.summary()
        self._check_differences(aud, options, policy, of_campaign)
        return self._sticky_counts(aud, policy)

    def _members(self, aud) -> list[np.ndarray]:
        """Per centre, the positions of the audience within its radius."""
        out = []
        for clat, clng in zip(aud.centers["lat"], aud.centers["lng"]):
            pos = _radius_members(aud._index, clat, clng, aud.radius_m)[0]
            out.append(pos[np.isin(pos, aud.positions, assume_unique=True)] if pos.size else pos)
        return out

    def _check_differences(self, aud, options: dict, policy, of_campaign: str | None = None) -> None:
        """Refuse when dropping one part of the request would change the answer by 1 to min - 1 customers."""
        n, floor = len(aud), policy.min_audience
        parts = [("exclude_within", i) for i in range(len(options.get("exclude_within") or []))]
        parts += [("exclude_regions", i) for i in range(len(options.get("exclude_regions") or []))]
        named = options.get("regions")
        if isinstance(named, (list, tuple)) and len(named) > 1:
            parts += [("regions", i) for i in range(len(named))]
        from geotarget.audience.filters import parse_filters

        conditions = parse_filters(options.get("where"))
        parts += [("where", i) for i in range(len(conditions))]
        for field, i in parts:
            reduced = dict(options)
            if field == "where":
                reduced["where"] = [(c.column, c.op, c.value) for j, c in enumerate(conditions) if j != i] or None
            else:
                reduced[field] = [z for j, z in enumerate(options[field]) if j != i] or None
            diff = len(self._build(of_campaign, reduced, floor)) - n
            if 0 < abs(diff) < floor:
                raise PrivacyError(f"{field}: this part of the request changes the audience by fewer than "
                                   f"{floor:,} customers, which would single people out; drop it or widen it")
        if aud.centers is not None and aud.radius_m is not None and len(aud.centers) > 1:
            members = self._members(aud)
            cover = np.bincount(np.concatenate(members), minlength=len(aud._index)) if members else None
            for label, pos in zip(aud.centers[aud.center_label], members):
                only = int((cover[pos] == 1).sum()) if pos.size else 0
                if 0 < only < floor:
                    raise PrivacyError(f"stores/points: {label!r} adds fewer than {floor:,} customers of its own "
                                       "to the audience, which would single people out; drop it or widen the radius")

    def _sticky_counts(self, aud, policy) -> dict:
        step, floor = policy.count_step, policy.min_audience
        hashes = member_hashes(aud._index, noise_salt(self.engine.store))

        def release(positions, label, what):
            value = noisy_count(int(positions.size), set_seed(hashes, positions, label), step)
            if value < floor:
                refuse(what, floor)
            return value

        out = {"description": aud.description, "customers": release(aud.positions, "total", "the audience")}
        if aud.groups is not None:
            out["treatment"] = release(aud.positions[aud.groups == "treatment"], "treatment", "the treatment group")
            out["control"] = release(aud.positions[aud.groups == "control"], "control", "the control group")
        else:
            out["treatment"], out["control"] = out["customers"], 0
        if aud.centers is not None:
            label = aud.center_label
            rows = []
            members = self._members(aud) if aud.radius_m is not None else [None] * len(aud.centers)
            for k, (cid, pos) in enumerate(zip(aud.centers[label].astype(str), members)):
                assigned = aud.positions[np.asarray(aud.center_ids).astype(str) == cid]
                row = {label: cid, "assigned": release(assigned, f"assigned:{cid}", f"the count for {cid!r}")}
                if pos is not None:
                    row["within"] = release(pos, f"within:{cid}", f"the count for {cid!r}")
                if "name" in aud.centers.columns:
                    row["name"] = aud.centers["name"].iloc[k]
                rows.append(row)
            out["per_store"] = rows
        out["rounded_to"] = step
        return out

    def _dp_counts(self, aud, policy, epsilon: float) -> dict:
        members = self._members(aud) if aud.centers is not None and aud.radius_m is not None else []
        sizes = [len(aud)] + [int(p.size) for p in members]
        noisy = np.maximum(0, np.round(laplace_counts(sizes, epsilon / len(sizes)) if len(sizes) == 1 else
                                       [laplace_counts([s], epsilon / len(sizes))[0] for s in sizes])).astype(int)
        if noisy[0] < policy.min_audience:
            refuse("the audience", policy.min_audience)
        out = {"description": aud.description, "customers": int(noisy[0]), "privacy": "dp", "epsilon": epsilon,
               "treatment": int(noisy[0]), "control": 0}
        if members:
            label = aud.center_label
            out["per_store"] = [{label: str(cid), "within": int(v)}
                                for cid, v in zip(aud.centers[label], noisy[1:])]
        return out

    # -- promotions -----------------------------------------------------------------------------------------
    def promotions(self, lat: float, lng: float, *, at=None, customer_id: str | None = None):
        """Promotions at a point (see :meth:`geotarget.Engine.promotions_at`); an opted-out id reads as unknown."""
        return self.engine.promotions_at(lat, lng, at=at, customer_id=customer_id)
