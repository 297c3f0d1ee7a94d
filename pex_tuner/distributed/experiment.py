"""DistributedExperiment: a validated logged experiment held as a Dask DataFrame.

The rows stay where they are (Parquet files on a local disk or any fsspec URL, or a Dask
DataFrame a user built); what the client holds is small: the arms, outcomes, feature schema
(categories found across all partitions), arm counts and missing-value counts. Every
partition can be turned into an in-memory :class:`~pex_tuner.data.ExperimentData` with that
shared schema (:meth:`DistributedExperiment.to_local`), so per-partition work reuses the
in-memory code and gives the same numbers.

Three columns are added to the raw ones, all pure functions of the unit hash (see
:mod:`pex_tuner.distributed.hashing`): ``_unit_hash`` (uint64), ``_split`` (``"train"`` /
``"validation"`` / ``"test"``) and ``_fold`` (int64 in ``0 .. n_folds - 1``). The hash is that
of the unit id column when one is given, else of the row's feature and treatment values; so
membership never depends on partitioning or row order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.data import ExperimentData
from pex_tuner.data import validation as checks
from pex_tuner.distributed import hashing
from pex_tuner.distributed import validation as dval
from pex_tuner.distributed.reduce import compute, tree_reduce
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.schema import CATEGORICAL, FeatureSchema

__all__ = ["DistributedExperiment", "LocalEncoder"]

HASH, SPLIT, FOLD = "_unit_hash", "_split", "_fold"
SPLIT_DTYPE = pd.CategoricalDtype(list(hashing.SPLITS))


@dataclass(frozen=True)
class LocalEncoder:
    """What a worker needs to turn a pandas partition into an ExperimentData (picklable).

    Attributes:
        schema: the feature schema shared by every partition.
        arms: arm labels, control first; outcomes, directions: as in the experiment.
        treatment, propensity, unit_id: column names (propensity / unit_id may be None).
        shares: arm shares over the whole experiment, shape (n_arms,): the empirical
            propensities when no propensity column is given.
    """

    schema: FeatureSchema
    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    directions: tuple[str, ...]
    treatment: str
    propensity: str | None
    unit_id: str | None
    shares: np.ndarray

    @property
    def required_columns(self) -> list[str]:
        """The columns every unit needs besides its features: arm, outcomes, propensity."""
        cols = [self.treatment, *self.outcomes]
        return cols if self.propensity is None else [*cols, self.propensity]

    def arm_codes(self, col: pd.Series) -> np.ndarray:
        """Arm index of each row (labels compared as strings), int64 shape (n_rows,)."""
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        lookup = {a: i for i, a in enumerate(self.arms)}
        try:
            table = np.array([lookup[str(u)] for u in uniques], dtype=np.int64)
        except KeyError as exc:
            raise InputDataError(
                f"treatment column '{self.treatment}' holds arm {exc.args[0]!r}; expected one "
                f"of {list(self.arms)}"
            ) from None
        return table[codes] if len(table) else np.zeros(len(col), dtype=np.int64)

    def to_local(self, pdf: pd.DataFrame, *, features: bool = True) -> ExperimentData:
        """One partition (already validated) as an in-memory ExperimentData of its rows.

        ``features=False`` skips the features (``features`` then has no columns and ``X``
        shape (n, 0)): for passes that need only arms, outcomes and propensities (OPE of
        linear policies), which then do not pay for encoding.
        """
        names = list(self.schema.names) if features else []
        feats = pdf[names].reset_index(drop=True)
        treat = self.arm_codes(pdf[self.treatment])
        Y = pdf[list(self.outcomes)].to_numpy(dtype=np.float64, na_value=np.nan)
        if self.propensity is not None:
            p = pdf[self.propensity].to_numpy(dtype=np.float64, na_value=np.nan)
            source = "logged"
        else:
            p, source = self.shares[treat], "empirical"
        ids = None if self.unit_id is None else pdf[self.unit_id].to_numpy()
        return ExperimentData(
            features=feats,
            schema=self.schema,
            X=_readonly(
                self.schema.encode(feats, validate=False) if features else np.zeros((len(pdf), 0))
            ),
            treatment=_readonly(treat),
            arms=self.arms,
            outcomes=self.outcomes,
            directions=self.directions,
            Y=_readonly(np.ascontiguousarray(Y)),
            propensity=_readonly(np.ascontiguousarray(p)),
            propensity_source=source,
            unit_ids=None if ids is None else _readonly(ids),
            treatment_column=self.treatment,
        )


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _add_hash_columns(
    pdf: pd.DataFrame,
    hash_columns: tuple[str, ...],
    test_size: float,
    validation_size: float,
    n_folds: int,
) -> pd.DataFrame:
    h = hashing.unit_hash(pdf, hash_columns)
    out = pdf.copy(deep=False)
    out[HASH] = h
    out[SPLIT] = pd.Categorical(hashing.split_of(h, test_size, validation_size), dtype=SPLIT_DTYPE)
    out[FOLD] = hashing.fold_of(h, n_folds)
    return out


def _check_options(test_size: float, validation_size: float, n_folds: int) -> None:
    for name, v in (("test_size", test_size), ("validation_size", validation_size)):
        if not 0.0 <= v < 1.0:
            raise ConfigurationError(f"'{name}' must be in [0, 1); got {v!r}")
    if int(n_folds) != n_folds or n_folds < 2:
        raise ConfigurationError(f"'n_folds' must be an integer >= 2; got {n_folds!r}")


class DistributedExperiment:
    """A validated logged experiment partitioned over a Dask cluster.

    Build it with :meth:`from_parquet` or :meth:`from_dask` (the arguments and messages of
    ``ExperimentData.from_frame``).

    Attributes:
        ddf: dask DataFrame of the named raw columns (unit id, features, treatment, outcomes,
            propensity; other columns are not read) plus ``_unit_hash`` (uint64), ``_split``
            (categorical: train / validation / test) and ``_fold`` (int64).
        arms: arm labels, control first; outcomes; directions (``"max"`` / ``"min"``);
        features: feature column names; schema: the FeatureSchema every partition is encoded
            with; npartitions: number of partitions.
        n_units: rows over all partitions; arm_counts: units per arm (whole experiment);
        missing_counts: missing values per feature.
        test_size, validation_size, n_folds: how splits and folds are drawn from the hash.
        encoder: the picklable :class:`LocalEncoder` behind :meth:`to_local`.
    """

    def __init__(
        self,
        ddf: Any,
        encoder: LocalEncoder,
        *,
        arm_counts: Mapping[str, int],
        missing_counts: Mapping[str, int],
        test_size: float,
        validation_size: float,
        n_folds: int,
        source: tuple | None = None,
    ) -> None:
        self.ddf = ddf
        self._source = source  # (files, meta, storage options) when read from Parquet
        self.encoder = encoder
        self.arm_counts = dict(arm_counts)
        self.missing_counts = dict(missing_counts)
        self.test_size = test_size
        self.validation_size = validation_size
        self.n_folds = n_folds

    # ------------------------------------------------------------------ facts
    arms = property(lambda self: self.encoder.arms)
    outcomes = property(lambda self: self.encoder.outcomes)
    directions = property(lambda self: self.encoder.directions)
    schema = property(lambda self: self.encoder.schema)
    features = property(lambda self: self.encoder.schema.names)
    treatment_column = property(lambda self: self.encoder.treatment)

    @property
    def npartitions(self) -> int:
        return int(self.ddf.npartitions)

    @property
    def n_units(self) -> int:
        return int(sum(self.arm_counts.values()))

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def n_outcomes(self) -> int:
        return len(self.outcomes)

    @property
    def propensity_source(self) -> str:
        return "empirical" if self.encoder.propensity is None else "logged"

    def __repr__(self) -> str:
        outs = ", ".join(f"{o}:{d}" for o, d in zip(self.outcomes, self.directions, strict=True))
        return (
            f"DistributedExperiment(n_units={self.n_units}, npartitions={self.npartitions}, "
            f"arms={list(self.arms)} (control '{self.arms[0]}'), outcomes=[{outs}], "
            f"features={len(self.features)}, propensity={self.propensity_source})"
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_parquet(cls, path: str | Sequence[str], **kwargs: Any) -> DistributedExperiment:
        """Read a Parquet dataset (a directory, a glob or a list of files; any fsspec URL
        Dask can read, ``storage_options=`` passed on) and validate it.

        Keyword arguments as in :meth:`from_dask`.
        """
        from pex_tuner.distributed.parquet import expand_files, read_files, read_meta

        storage = kwargs.pop("storage_options", None)
        files = expand_files(path, storage)
        meta = read_meta(files[0], storage)
        ddf = read_files(files, meta=meta, storage_options=storage)
        return cls.from_dask(ddf, _source=(files, meta, storage), **kwargs)

    @classmethod
    def from_dask(
        cls,
        ddf: Any,
        *,
        treatment: str,
        control: Any,
        outcomes: Mapping[str, str],
        features: Sequence[str] | None = None,
        propensity: str | None = None,
        unit_id: str | None = None,
        arms: Sequence[Any] | None = None,
        test_size: float = 0.4,
        validation_size: float = 0.3,
        n_folds: int = 5,
        progress: bool = False,
        _source: tuple | None = None,
    ) -> DistributedExperiment:
        """Validate a logged experiment held in a Dask DataFrame (one pass over the data).

        Args:
            ddf: dask DataFrame, one row per unit.
            treatment, control, outcomes, features, propensity, unit_id, arms: as in
                ``ExperimentData.from_frame``.
            test_size, validation_size: split shares (as ``ExperimentData.split``), drawn
                from the unit hash.
            n_folds: cross-fitting folds, drawn from the unit hash.
            progress: Dask's progress bar during the validation pass.

        Raises:
            InputDataError, ConfigurationError: the messages of ``from_frame``, with counts
                summed over every partition.
        """
        import dask
        import dask.dataframe as dd

        if not isinstance(ddf, dd.DataFrame):
            raise InputDataError(f"expected a dask DataFrame, got {type(ddf).__name__}")
        _check_options(test_size, validation_size, n_folds)
        meta = ddf._meta
        checks.check_arguments(pd.DataFrame(index=[0]), outcomes)
        roles, names = checks.column_roles(meta, treatment, outcomes, features, propensity, unit_id)
        checks.check_columns_present(meta, roles, names)
        kinds = FeatureSchema.infer(meta, names).kinds
        # only the named columns are read from now on
        used = [c for c in meta.columns if c in roles or c in set(names)]
        ddf = ddf[used] if _source is None else _read(_source, used)
        spec = dval.ColumnSpec(
            treatment, tuple(outcomes), propensity, unit_id, tuple(names), tuple(kinds)
        )
        parts = [dask.delayed(dval.summarize, pure=True)(p, spec) for p in ddf.to_delayed()]
        summary = compute(tree_reduce(parts, dval.combine), progress=progress)
        dval.raise_incomplete(summary, spec)
        arm_tuple = _arms(meta[treatment], summary, treatment, control, arms)
        dval.raise_invalid(summary, spec, meta)
        encoder = _encoder(summary, spec, arm_tuple, outcomes)
        counts = {a: int(summary.arm_counts[a]) for a in arm_tuple}
        hash_cols = (unit_id,) if unit_id is not None else (*names, treatment)
        new_meta = _add_hash_columns(ddf._meta, hash_cols, test_size, validation_size, n_folds)
        full = ddf.map_partitions(
            _add_hash_columns, hash_cols, test_size, validation_size, n_folds, meta=new_meta
        )
        return cls(
            full,
            encoder,
            arm_counts=counts,
            missing_counts={n: int(summary.feature_missing[n]) for n in names},
            test_size=test_size,
            validation_size=validation_size,
            n_folds=int(n_folds),
            source=_source,
        )

    # ------------------------------------------------------------------ partitions
    def to_local(self, pdf: pd.DataFrame) -> ExperimentData:
        """One pandas partition (or any frame of this experiment's rows) as an in-memory
        ExperimentData with the shared schema, arm order and encoding."""
        return self.encoder.to_local(pdf)

    def partitions(self, columns: Sequence[str] | None = None) -> list[Any]:
        """The partitions as a list of ``dask.delayed`` pandas DataFrames (with the hash,
        split and fold columns), in order; pair them with predictions partitions.

        Args:
            columns: read only these raw columns (and the unit id), when the experiment was
                read from Parquet and the unit hash comes from a unit id column (a pass that
                needs no features then reads none); None reads every named column.
        """
        unit_id = self.encoder.unit_id
        if columns is None or self._source is None or unit_id is None:
            return list(self.ddf.to_delayed())
        wanted = {*columns, unit_id}
        raw = _read(self._source, [c for c in self._source[1].columns if c in wanted])
        args = ((unit_id,), self.test_size, self.validation_size, self.n_folds)
        meta = _add_hash_columns(raw._meta, *args)
        return list(raw.map_partitions(_add_hash_columns, *args, meta=meta).to_delayed())

    def split_counts(self) -> dict[str, int]:
        """Units per split (one pass over the hash column)."""
        counts = compute(self.ddf[SPLIT].value_counts())
        return {s: int(counts.get(s, 0)) for s in hashing.SPLITS}

    def sample_frame(
        self,
        n: int,
        random_state: int = 0,
        *,
        stratify_by_arm: bool = True,
        split: str | None = None,
    ) -> pd.DataFrame:
        """The raw rows of a sample of ``n`` units (hash, split and fold columns included).

        The units with the smallest sampling keys (a seeded function of the unit hash), per
        arm in proportion to the arm's share when ``stratify_by_arm``: the same units whatever
        the partitioning. One pass over the data (two if the split is unexpectedly small);
        about 1.2 n rows reach the client.

        Args:
            n: sample size (every unit of the split if larger).
            random_state: seed of the sampling keys.
            stratify_by_arm: give each arm its share of the whole experiment (up to rounding).
            split: sample only from this split, or None for every unit.

        Returns:
            DataFrame of about ``n`` rows, ordered by sampling key.
        """
        if int(n) < 1:
            raise ConfigurationError(f"'n' must be a positive integer; got {n!r}")
        if split is not None and split not in hashing.SPLITS:
            raise ConfigurationError(
                f"'split' must be one of {list(hashing.SPLITS)} or None; got {split!r}"
            )
        ddf = self.ddf if split is None else self.ddf[self.ddf[SPLIT] == split]
        share = {
            None: 1.0,
            "test": self.test_size,
            "validation": (1.0 - self.test_size) * self.validation_size,
            "train": (1.0 - self.test_size) * (1.0 - self.validation_size),
        }[split]
        # the expected split size (hash splits are binomial), with room to spare
        frac = min(1.0, (1.2 * n + 50.0) / max(share * self.n_units, 1.0))
        meta = self.ddf._meta.assign(_key=np.float64(0.0))
        cand = compute(ddf.map_partitions(_candidates, random_state, frac, meta=meta))
        if len(cand) < n and frac < 1.0:  # a rare short draw: take every unit of the split
            cand = compute(ddf.map_partitions(_candidates, random_state, 1.0, meta=meta))
        cand = cand.sort_values(["_key", HASH], kind="stable").reset_index(drop=True)
        n = min(int(n), len(cand))
        if stratify_by_arm:
            codes = self.encoder.arm_codes(cand[self.treatment_column])
            quota = np.floor(self.encoder.shares * n + 0.5).astype(np.int64)
            rank = pd.Series(codes).groupby(codes).cumcount().to_numpy()
            cand = cand.loc[rank < quota[codes]]
        else:
            cand = cand.iloc[:n]
        return cand.drop(columns="_key").reset_index(drop=True)

    def sample(
        self,
        n: int,
        random_state: int = 0,
        stratify_by_arm: bool = True,
        *,
        split: str | None = None,
    ) -> ExperimentData:
        """A sample of about ``n`` units as an in-memory ExperimentData (see
        :meth:`sample_frame`); its propensities are the whole experiment's."""
        frame = self.sample_frame(n, random_state, stratify_by_arm=stratify_by_arm, split=split)
        return self.to_local(frame)


def _candidates(pdf: pd.DataFrame, random_state: int, frac: float) -> pd.DataFrame:
    """Rows whose sampling key is below ``frac``, with the key in column ``_key``."""
    key = hashing.sample_key(pdf[HASH].to_numpy(), random_state)
    return pdf.assign(_key=key).loc[key < frac]


def _read(source: tuple, columns: list[str]) -> Any:
    """The Parquet files of ``source`` (files, meta, storage options), one partition each."""
    from pex_tuner.distributed.parquet import read_files

    files, meta, storage = source
    return read_files(files, columns, meta=meta, storage_options=storage)


def _encoder(
    summary: dval.Summary,
    spec: dval.ColumnSpec,
    arm_tuple: tuple[str, ...],
    outcomes: Mapping[str, str],
) -> LocalEncoder:
    """The shared schema (categories found in every partition) and arm order."""
    schema = FeatureSchema(
        names=spec.features,
        kinds=spec.kinds,
        categories=tuple(
            (n, tuple(sorted(summary.categories.get(n, set()))))
            for n, k in zip(spec.features, spec.kinds, strict=True)
            if k == CATEGORICAL
        ),
    )
    counts = {a: int(summary.arm_counts[a]) for a in arm_tuple}
    return LocalEncoder(
        schema=schema,
        arms=arm_tuple,
        outcomes=tuple(str(o) for o in outcomes),
        directions=tuple(outcomes.values()),
        treatment=str(spec.treatment),
        propensity=spec.propensity,
        unit_id=spec.unit_id,
        shares=dval.arm_shares(arm_tuple, counts),
    )


def _arms(
    tmeta: pd.Series,
    summary: dval.Summary,
    treatment: str,
    control: Any,
    arms: Sequence[Any] | None,
) -> tuple[str, ...]:
    """The arm labels (control first), checked as ``validation.treatment_arms`` checks them,
    from the labels found in every partition."""
    present = sorted(summary.arm_counts)
    declared = arms
    if declared is None and isinstance(tmeta.dtype, pd.CategoricalDtype):
        cats = tmeta.cat.categories
        if not (len(cats) == 1 and str(cats[0]) == "__UNKNOWN_CATEGORIES__"):
            declared = [str(c) for c in cats]
    # one unit per label found: the same checks and messages, without the data
    arm_tuple, _ = checks.treatment_arms(
        pd.Series(present, dtype=object), treatment, control, declared
    )
    return arm_tuple
