"""Disclosure control: what a key may learn from heatmaps, audience counts and promotions.

- :mod:`~geotarget.disclosure.counts`: audience counts for keys without
  ``admin`` (refused requests and results, sticky noise, rounding);
- :mod:`~geotarget.disclosure.dp`: differential privacy through OpenDP, with
  a per-key budget kept in the database;
- :mod:`~geotarget.disclosure.guard`: :class:`Disclosure`, the one object the
  HTTP service asks (``Engine.disclosure``).

The policy itself lives in the database (:mod:`geotarget.store.policy`), the
heatmap suppression in :mod:`geotarget.maps.suppression`. docs/privacy.md
holds the threat model.
"""

from geotarget.disclosure.guard import PRIVACY_MODES, Disclosure

__all__ = ["PRIVACY_MODES", "Disclosure"]
