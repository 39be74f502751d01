"""Hypothesis strategies for the z-score conditions of the volume anomaly detector
(``seasonal_zscore`` and ``anomaly``), shared by the screen's and the timeline's
property tests: configs with short windows and histories, so a test's few hours of
samples exercise warm-up, floors and holding."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["ANOMALY_LEAVES"]

ANOMALY_LEAVES: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(
        lambda m, w, s, h, t, v, d, warm: {
            "type": "seasonal_zscore",
            "metric": m,
            "window": f"{w}m",
            "period": "1d",
            "seasons": s,
            "history": h,
            "threshold": t,
            "min_volume": v,
            "direction": d,
            "warmup": warm,
        },
        st.sampled_from(["total", "negative"]),
        st.integers(1, 30),
        st.integers(1, 3),
        st.integers(2, 12),
        st.sampled_from([1, 3, 7]),
        st.integers(1, 5),
        st.sampled_from(["up", "down"]),
        st.booleans(),
    ),
    st.builds(
        lambda m, ws, t, rate, seasonal, warm: {
            "type": "anomaly",
            "metric": m,
            "windows": ws,
            "history": "30m",
            "threshold": t,
            "min_volume_per_hour": rate,
            "seasonal": seasonal,
            "warmup": warm,
        },
        st.sampled_from(["total", "negative"]),
        st.sampled_from([["2m", "5m"], ["1m", "3m", "10m"]]),
        st.sampled_from([1, 2, 5]),
        st.sampled_from([20, 120]),
        st.one_of(
            st.none(),
            st.builds(
                lambda s, t: {"window": "5m", "seasons": s, "history": "30m", "threshold": t},
                st.integers(1, 2),
                st.sampled_from([1, 3, 7]),
            ),
        ),
        st.booleans(),
    ),
)
"""A ``seasonal_zscore`` or an ``anomaly`` condition config."""
