"""The feature store's edges: build it from telemetry, read training frames and online features from it.

    build = build_feature_store(settings, telemetry, events)       # compute, write Parquet, apply, materialise
    frame, report = training_frame(settings, entity_df)            # point-in-time join, TTL drops counted
    latest = online_features(settings, ["payment", "auth"])        # what a model sees at serving time

The transforms are :func:`features.transforms.compute_features` (pure pandas); this module does the I/O.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import repo
from features.transforms import (
    CREATED,
    ENTITY,
    TIMESTAMP,
    compute_features,
    feature_names,
    metrics_of,
    view_columns,
)

if TYPE_CHECKING:  # pragma: no cover
    from configs.settings import Settings

KEY_ID = "__cerebro_key"  # carried through Feast's join so that rows it drops can be counted
# Minutes of entity time per join key in training_frame: each entity row meets about chunk + 1 candidate feature
# rows. Measured on 262,080 entity rows (14 days x 13 services, detection_v1, 2 cores, thread scheduler, with the
# 7 s Feast import): chunks of 1 min 48 s, 2 min 47 s, 5 min 56 s, 10 min 89 s. With the in-process scheduler and
# Feast already imported, 2 min: 39 s for detection_v1 (84 features), 7 s for failure_v1 (9 features).
DEFAULT_CHUNK_MINUTES = 2
_NS_PER_MINUTE = 60_000_000_000


# ----------------------------------------------------------------------------------------------- build
@dataclass
class FeatureBuild:
    """What :func:`build_feature_store` did."""

    parquet: Path
    rows_computed: int  # feature rows computed from this batch of telemetry
    rows_appended: int  # of those, rows newer than what the source already held per service (appended)
    rows_kept_existing: int  # computed rows at or before a service's newest stored row: the stored row stays
    rows_in_source: int  # rows of the Parquet source after the build
    services: list[str]
    start: pd.Timestamp  # time range of the source after the build
    end: pd.Timestamp
    metrics: list[str]
    window: int
    feature_names: list[str]
    views: dict[str, list[str]]
    materialized: dict[str, Any]  # mode (backfill | incremental), start, end
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["parquet"] = str(self.parquet)
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        return out


def _read_source(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    return pq.read_table(path, columns=list(columns) if columns else None).to_pandas()


def _write_source(frame: pd.DataFrame, path: Path, row_group_size: int = 64_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)
    tmp.replace(path)


def _append_only(existing: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Append the rows of ``new`` newer than each service's newest stored row; returns (source, rows appended).

    The source is a log: a row already materialised is never rewritten, so the offline store and the online
    store keep telling the same story. Rows of ``new`` at or before the stored end are reported, not written.
    """
    newest = existing.groupby(ENTITY)[TIMESTAMP].max()
    cutoff = new[ENTITY].map(newest)
    fresh = new[cutoff.isna() | (new[TIMESTAMP] > cutoff)]
    merged = pd.concat([existing, fresh[existing.columns]], ignore_index=True)
    return merged.sort_values([ENTITY, TIMESTAMP], kind="stable").reset_index(drop=True), len(fresh)


def build_feature_store(
    settings: Settings,
    telemetry: pd.DataFrame,
    events: pd.DataFrame | None = None,
    window: int | None = None,
    replace: bool = False,
) -> FeatureBuild:
    """Compute features from telemetry (and deploy events), then :func:`publish_features` them.

    Pass the telemetry of at least the last ``window`` minutes and the last week before the new rows too, or
    their rolling and week-over-week features start blank.
    """
    window = window or settings.feast.window_minutes
    t0 = time.perf_counter()
    features = compute_features(telemetry, events, window=window)
    elapsed = time.perf_counter() - t0
    build = publish_features(settings, features, window=window, replace=replace)
    build.timings = {"compute_features_s": elapsed, **build.timings}
    return build


def publish_features(
    settings: Settings, features: pd.DataFrame, window: int | None = None, replace: bool = False
) -> FeatureBuild:
    """Write a feature frame to the Parquet source, apply the repo and load the online store.

    The first publication backfills the online store with ``materialize(start, end)`` (a first
    ``materialize_incremental`` would start at now - TTL and load nothing for a past history). Later ones
    append the rows newer than each service's newest stored row and call ``materialize_incremental(end)``,
    which continues from the saved watermark; rows at or before it are kept as stored and counted
    (``rows_kept_existing``). ``replace=True`` rewrites the source and backfills again.
    """
    timings: dict[str, float] = {}
    window = window or settings.feast.window_minutes
    metrics = metrics_of(features)
    expected = [ENTITY, TIMESTAMP, CREATED] + feature_names(metrics, window)
    if list(features.columns) != expected:
        raise ValueError(
            f"the feature frame's columns are not those of compute_features(window={window}) for the metrics "
            f"{metrics}: missing {sorted(set(expected) - set(features.columns))}, "
            f"unexpected {sorted(set(features.columns) - set(expected))}"
        )
    path = repo.source_path(settings)

    t0 = time.perf_counter()
    first = replace or not path.exists()
    if first:
        source, appended = features, len(features)
    else:
        existing = _read_source(path)
        if list(existing.columns) != list(features.columns):
            raise ValueError(
                f"{path}: the stored feature columns differ from this batch's ({len(existing.columns)} vs "
                f"{len(features.columns)} columns: other metrics or window?); publish with replace=True"
            )
        source, appended = _append_only(existing, features)
    _write_source(source, path)
    timings["write_parquet_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    store = repo.feature_store(settings)
    objects = repo.definitions(settings, metrics, window)
    store.apply(list(objects.values()))
    timings["apply_s"] = time.perf_counter() - t0

    start, end = source[TIMESTAMP].min(), source[TIMESTAMP].max()
    names = list(repo.VIEWS)
    views = [store.get_feature_view(name) for name in names]
    t0 = time.perf_counter()
    if first or any(not v.materialization_intervals for v in views):
        # Dask's pull is inclusive at both ends, so end = the newest row loads it.
        store.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime(), feature_views=names)
        materialized = {"mode": "backfill", "start": start.isoformat(), "end": end.isoformat()}
    else:
        previous = min(v.most_recent_end_time for v in views)
        store.materialize_incremental(end_date=end.to_pydatetime(), feature_views=names)
        materialized = {"mode": "incremental", "start": pd.Timestamp(previous).isoformat(), "end": end.isoformat()}
    timings["materialize_s"] = time.perf_counter() - t0

    return FeatureBuild(
        parquet=path,
        rows_computed=len(features),
        rows_appended=appended,
        rows_kept_existing=len(features) - appended,
        rows_in_source=len(source),
        services=sorted(source[ENTITY].unique().tolist()),
        start=start,
        end=end,
        metrics=metrics,
        window=window,
        feature_names=expected[3:],
        views=view_columns(metrics, window),
        materialized=materialized,
        timings=timings,
    )


# ----------------------------------------------------------------------------------------------- training
@dataclass
class TrainingReport:
    """Row accounting of :func:`training_frame`: rows in = rows out + rows dropped by the TTL."""

    feature_service: str
    rows_in: int
    rows_out: int
    rows_dropped_ttl: int  # entity rows with no feature row within the TTL at or before their time
    rows_without_features: int  # kept, but every feature is NaN (a service the store has never seen)
    dropped_index: list  # the entity_df index labels of the dropped rows
    ttl_minutes: float
    chunks: int  # (service, time chunk) join keys Feast joined; 1 for the plain call
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.feature_service}: {self.rows_in} entity rows in, {self.rows_out} out, "
            f"{self.rows_dropped_ttl} dropped (no feature row within the {self.ttl_minutes:g}-minute TTL), "
            f"{self.rows_without_features} without features"
        )


def _service_projections(store: Any, feature_service: str) -> tuple[list[Any], list[str], list[str]]:
    """The feature service's views (with their projections), its feature refs and its output columns."""
    service = store.get_feature_service(feature_service)
    views, refs, columns = [], [], []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name).__copy__()
        view.projection = projection
        views.append(view)
        for f in projection.features:
            refs.append(f"{projection.name_to_use()}:{f.name}")
            columns.append(f.name)
    return views, refs, columns


def _chunked_candidates(
    source: pd.DataFrame, keys: pd.DataFrame, chunk_minutes: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Relabel entity keys and feature rows by (service, time chunk) so that Feast joins each chunk on its own.

    The point-in-time winner for (service, t) is the newest feature row at or before t (within the TTL). For t
    in the chunk [b, b + chunk) that is a row inside the chunk or, when there is none at or before t, the newest
    row before b; every older row is dominated. So each (service, chunk) gets the service's rows inside the chunk
    plus its newest row before it, under the join key ``service|chunk``; Feast's join on those keys gives exactly
    the answer it gives on the whole source (it still applies the TTL and the created-timestamp tie-break
    itself), at a cost of about chunk + 1 candidate rows per entity row instead of the whole history. A service
    with no row before the chunk's end keeps its first row, so that Feast drops its entity rows (it has rows, none
    at or before t) as it would on the whole source, instead of treating the service as unknown.

    Returns (entity keys with the chunk join key, candidate feature rows with the chunk join key).
    """
    step = np.int64(chunk_minutes) * _NS_PER_MINUTE
    t_ns = keys[TIMESTAMP].astype("datetime64[ns, UTC]").array.asi8
    origin = t_ns.min() - t_ns.min() % step
    chunk = (t_ns - origin) // step
    entity = keys.copy()
    entity[ENTITY] = keys[ENTITY].astype(str) + "|" + chunk.astype(str)

    # Feast's tie-break between rows of one (service, time) is the newest created; keep only that row.
    source = source.sort_values([ENTITY, TIMESTAMP, CREATED], kind="stable")
    source = source.drop_duplicates([ENTITY, TIMESTAMP], keep="last").reset_index(drop=True)
    src_ns = source[TIMESTAMP].astype("datetime64[ns, UTC]").array.asi8
    pairs = pd.DataFrame({ENTITY: keys[ENTITY].astype(str).to_numpy(), "chunk": chunk}).drop_duplicates()
    take, labels = [], []
    bounds = source.groupby(ENTITY, sort=False).indices
    for service, group in pairs.groupby(ENTITY, sort=False):
        rows = bounds.get(service)
        if rows is None:
            continue  # unknown service: Feast keeps its entity rows with NaN features
        first, stop = rows[0], rows[-1] + 1
        ts = src_ns[first:stop]
        c = group["chunk"].to_numpy()
        lo = first + np.searchsorted(ts, origin + c * step, side="left")
        hi = first + np.searchsorted(ts, origin + (c + 1) * step, side="left")
        start = np.where(lo > first, lo - 1, lo)  # the newest row before the chunk, when there is one
        end = np.where(hi > start, hi, start + 1)  # nothing at or before the chunk's end: the first row
        counts = end - start
        idx = np.repeat(start - np.cumsum(np.r_[0, counts[:-1]]), counts) + np.arange(counts.sum())
        take.append(idx)
        labels.append(np.repeat([f"{service}|{k}" for k in c], counts))
    if take:
        candidates = source.iloc[np.concatenate(take)].reset_index(drop=True)
        candidates[ENTITY] = np.concatenate(labels)
    else:
        candidates = source.iloc[:0]
    return entity, candidates


def _feast_join(store: Any, views: list[Any], refs: list[str], entity: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Feast's own point-in-time join (the configured offline store) over the feature rows written to ``path``."""
    from feast import FileSource
    from feast.infra.provider import get_provider

    chunk_views = []
    for view in views:
        source = view.batch_source
        copy = view.__copy__()
        copy.batch_source = FileSource(
            name=source.name, path=str(path), timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column,
        )
        chunk_views.append(copy)
    provider = get_provider(store.config)
    import dask

    job = provider.get_historical_features(
        store.config, chunk_views, refs, entity, store.registry, store.project, False
    )
    # In-process: measured a little faster than Dask's thread pool here, and it never ships the frames to a
    # distributed cluster that a flow's Dask task runner may have made the default scheduler.
    with dask.config.set(scheduler="synchronous"):
        return job.to_df()


def training_frame(
    settings: Settings,
    entity_df: pd.DataFrame,
    feature_service: str = "detection_v1",
    chunk_minutes: int | None = DEFAULT_CHUNK_MINUTES,
) -> tuple[pd.DataFrame, TrainingReport]:
    """Point-in-time join of ``entity_df`` (``service``, ``event_timestamp``, any label columns) with the store.

    Every entity row gets, per feature view, the newest feature row of its service at or before its time and
    not older than the TTL; never a later one. Feast's file offline store *drops* an entity row whose service
    has rows but none within the TTL; those rows are counted in the report (``rows_dropped_ttl``,
    ``dropped_index``) instead of vanishing. An unknown service is kept with NaN features
    (``rows_without_features``). The frame keeps the input's order and index labels, minus the dropped rows,
    with the entity columns first and the feature service's features after them.

    Speed: the file (Dask) offline store merges each entity row with *every* feature row of its service before
    it filters by time, so its cost grows with entity rows x history: on the 14-day fleet (262,080 feature rows)
    a plain ``get_historical_features`` with 130 entity rows took 49 s and one with 1,300 rows (ten minutes of
    the fleet) ran out of 23 GB of memory; 262,080 rows would need about 5 billion merged rows. So the entity
    rows are keyed by (service, ``chunk_minutes`` of time) and each key meets only the feature rows that can
    win for it (:func:`_chunked_candidates`); one Feast call then joins everything and gives exactly the answer
    of the whole source (tests/features/test_features.py checks this against the plain call). 262,080 entity rows take
    about 40 s on 2 cores, most of it Dask hashing its intermediate frames. ``chunk_minutes=None`` makes the
    plain ``FeatureStore.get_historical_features`` call instead (small sources only).
    """
    t_start = time.perf_counter()
    missing = {ENTITY, TIMESTAMP} - set(entity_df.columns)
    if missing:
        raise ValueError(f"entity_df needs the columns {sorted(missing)}")
    if KEY_ID in entity_df.columns:
        raise ValueError(f"entity_df must not have a column named {KEY_ID}")
    import pytz

    store = repo.feature_store(settings)
    views, refs, columns = _service_projections(store, feature_service)

    # Feast keeps one row per (service, event_timestamp): join the distinct keys, then spread them back.
    stamps = pd.to_datetime(entity_df[TIMESTAMP], utc=True).dt.tz_convert(pytz.UTC)
    keys_all = pd.DataFrame({ENTITY: entity_df[ENTITY].astype(str).to_numpy(), TIMESTAMP: stamps.array})
    key_codes, uniques = pd.factorize(pd.MultiIndex.from_frame(keys_all))
    keys = pd.DataFrame(
        {
            ENTITY: uniques.get_level_values(0).astype(str),
            TIMESTAMP: uniques.get_level_values(1),
            KEY_ID: np.arange(len(uniques)),
        }
    )
    keys[TIMESTAMP] = keys[TIMESTAMP].dt.tz_convert(pytz.UTC)

    chunks = 0
    if keys.empty:
        joined = pd.DataFrame(columns=[KEY_ID] + columns)
    elif chunk_minutes is None:
        job = store.get_historical_features(entity_df=keys, features=store.get_feature_service(feature_service))
        joined = job.to_df()
        chunks = 1
    else:
        source = _read_source(repo.source_path(settings), [ENTITY, TIMESTAMP, CREATED] + columns)
        entity, candidates = _chunked_candidates(source, keys, int(chunk_minutes))
        scratch = settings.feast_dir / "tmp"
        path = scratch / f"candidates-{os.getpid()}-{time.time_ns()}.parquet"
        _write_source(candidates, path, row_group_size=max(1, len(candidates)))  # one partition for Dask
        try:
            joined = _feast_join(store, views, refs, entity, path)
        finally:
            path.unlink(missing_ok=True)
        chunks = int(entity[ENTITY].nunique())

    joined = joined[[KEY_ID] + columns].set_index(KEY_ID)
    kept = np.isin(key_codes, joined.index.to_numpy())
    frame = entity_df.loc[kept].copy()
    values = joined.reindex(key_codes[kept])
    for c in columns:
        frame[c] = values[c].to_numpy()
    dropped_index = entity_df.index[~kept].tolist()
    report = TrainingReport(
        feature_service=feature_service,
        rows_in=len(entity_df),
        rows_out=len(frame),
        rows_dropped_ttl=len(dropped_index),
        rows_without_features=int(frame[columns].isna().all(axis=1).sum()) if columns else 0,
        dropped_index=dropped_index,
        ttl_minutes=settings.feast.ttl_minutes,
        chunks=chunks,
        seconds=time.perf_counter() - t_start,
    )
    return frame, report


# ----------------------------------------------------------------------------------------------- online
def online_features(
    settings: Settings, services: Sequence[str], feature_service: str = "detection_v1"
) -> pd.DataFrame:
    """The latest materialised features of each service, one row per service in the order given.

    An unknown service comes back with NaN features. Feast does not apply the TTL to online reads.
    """
    store = repo.feature_store(settings)
    _, _, columns = _service_projections(store, feature_service)
    response = store.get_online_features(
        features=store.get_feature_service(feature_service),
        entity_rows=[{ENTITY: str(s)} for s in services],
    )
    return response.to_df()[[ENTITY] + columns]

