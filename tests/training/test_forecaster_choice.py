"""`auto` (training.forecasting.auto): seasons found in the data, the choice by rolling-origin backtest
with a median combination, conformal intervals; forecast_series runs it or a named model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.forecasting import ForecastInputError
from training.forecasting.auto import AutoForecaster, _calendar_position, conformal_bands, weekpart_median
from training.forecasting.choice import forecast_series
from training.forecasting.seasons import Decomposition, decompose, detect_seasons

T0 = pd.Timestamp("2026-10-01T00:00Z")


def _series(values, freq="h") -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.date_range(T0, periods=len(values), freq=freq))


def test_seasons_are_found_in_the_data_at_any_step():
    rng = np.random.default_rng(0)
    i = np.arange(3 * 1440)
    minutes = 50 + 10 * np.sin(2 * np.pi * i / 1440) + rng.normal(0, 1, len(i))
    assert detect_seasons(minutes, pd.Timedelta(minutes=1)) == [1440]
    j = np.arange(24 * 21)
    hours = 50 + 10 * np.sin(2 * np.pi * j / 24) + 8 * (j % 168 < 48) + rng.normal(0, 1, len(j))
    assert detect_seasons(hours, pd.Timedelta(hours=1)) == [24, 168]
    assert detect_seasons(rng.normal(0, 1, 24 * 21), pd.Timedelta(hours=1)) == []
    assert detect_seasons(np.cumsum(rng.normal(0, 1, 24 * 21)), pd.Timedelta(hours=1)) == []


def test_the_decomposition_on_an_aggregated_grid_recovers_a_minute_level_day():
    i = np.arange(3 * 1440)
    day = 10 * np.sin(2 * np.pi * i / 1440)
    dec = decompose(50 + day + 0.001 * i, [1440, 10080])  # a week needs two cycles: dropped
    assert isinstance(dec, Decomposition) and dec.periods == [1440]
    assert np.max(np.abs(dec.seasonal[1440:] - day[1440:])) < 0.5
    assert np.max(np.abs(dec.future(60) - day[:60])) < 0.5


def test_the_decomposition_interpolates_its_smoothers_and_stays_with_the_full_one():
    # half-hourly, a day and a week: no aggregation, so loess at every point would cost seconds; with the
    # jumps (loess every ceil(48 / 10) = 5th point, interpolated) the components stay close to the full fit
    from statsmodels.tsa.seasonal import MSTL

    rng = np.random.default_rng(4)
    t = np.arange(48 * 7 * 6)
    y = 50 + 10 * np.sin(2 * np.pi * t / 48) + 4 * np.sin(2 * np.pi * t / 336) + rng.normal(0, 1, len(t))
    fast = decompose(y, [48, 336])
    full = MSTL(y, periods=[48, 336], stl_kwargs={"robust": True, "seasonal_deg": 0, "outer_iter": 3}).fit()
    reference = np.asarray(full.seasonal).sum(axis=1)
    assert fast.periods == [48, 336]
    assert np.abs(fast.seasonal - reference).max() < 0.01 * np.ptp(reference)


def test_a_noisy_daily_cycle_beats_both_naives_and_the_choice_is_the_lowest_backtest_error():
    rng = np.random.default_rng(1)
    i = np.arange(24 * 14 + 24)
    y = _series(50 + 10 * np.sin(2 * np.pi * i / 24) + rng.normal(0, 2, len(i)))
    model = AutoForecaster(horizon=24).fit(y.iloc[:-24])
    assert model.periods_ == [24]
    scores = model.scores_
    assert {"naive", "seasonal_naive", "ets", "theta", "arima", "median"} <= set(scores)
    assert model.chosen_ == min(scores, key=scores.get)
    assert scores[model.chosen_] < min(scores["naive"], scores["seasonal_naive"])
    f = model.predict(24)
    truth = 50 + 10 * np.sin(2 * np.pi * i[-24:] / 24)  # the cycle without its noise (sd 2)
    assert np.mean(np.abs(truth - f["yhat"].to_numpy())) < 1.0


def test_the_seasonal_median_ignores_yesterdays_noise_and_incident_and_needs_three_seasons():
    rng = np.random.default_rng(3)
    i = np.arange(24 * 10)
    cycle = 50 + 10 * np.sin(2 * np.pi * i / 24)
    values = cycle + rng.normal(0, 3, len(i))
    values[-20:-14] += 40  # an incident yesterday, which seasonal naive would repeat tomorrow
    model = AutoForecaster(horizon=24).fit(_series(values))
    fcs = model._candidates(values, 24, 24)
    truth = cycle[-24:]  # tomorrow's cycle has the same phase as the last day's
    assert np.mean(np.abs(fcs["seasonal_median"] - truth)) < 0.5 * np.mean(np.abs(fcs["seasonal_naive"] - truth))
    assert model.scores_["seasonal_median"] < model.scores_["seasonal_naive"]
    assert "seasonal_median" not in model._candidates(values[-60:], 24, 24)  # two and a half days: no median


def _weekly_shop(days: int, start: str, seed: int = 4) -> tuple[pd.Series, np.ndarray]:
    """Hourly traffic whose weekends are quieter and flatter than its weekdays, and the noiseless truth."""
    idx = pd.date_range(pd.Timestamp(start), periods=24 * days, freq="h")
    hour, weekend = idx.hour.to_numpy(), idx.dayofweek.to_numpy() >= 5
    truth = np.where(weekend, 20 + 4 * np.sin(2 * np.pi * hour / 24), 60 + 25 * np.sin(2 * np.pi * hour / 24))
    rng = np.random.default_rng(seed)
    return pd.Series(truth + rng.normal(0, 2, len(idx)), index=idx), truth


def test_weekends_unlike_weekdays_get_their_own_profile_and_intervals_a_weekday_needs():
    y, truth = _weekly_shop(21, "2026-10-05T00:00Z")  # Monday 5 October to Sunday 25 October
    history = y.iloc[: -24 * 6]  # to Monday 19 October, 23:00: the backtest days include a weekend
    model = AutoForecaster(horizon=24).fit(history)
    assert model.scores_["weekpart_median"] < 0.5 * model.scores_["seasonal_median"]
    assert "weekpart_median" in model.members_
    f = model.predict(24)  # Tuesday
    tuesday = truth[len(history): len(history) + 24]
    assert np.mean(np.abs(f["yhat"].to_numpy() - tuesday)) < 2.0
    # calibrated on the week-part median's backtest errors, not on a weekday profile's misses on Saturday
    assert np.mean(f["yhat_upper"] - f["yhat"]) < 8.0
    saturday = y.iloc[: -24 * 2]  # to Friday 23 October: the next day is a Saturday
    g = AutoForecaster(horizon=24).fit(saturday).predict(24)["yhat"].to_numpy()
    assert np.mean(np.abs(g - truth[len(saturday): len(saturday) + 24])) < 2.0


def test_the_week_part_median_reads_the_calendar_and_needs_two_weekend_days():
    step = pd.Timedelta(hours=1)
    y, _ = _weekly_shop(10, "2026-10-07T05:00Z")  # starts on a Wednesday at 05:00
    first = _calendar_position(y.index[0], step)
    assert first % 24 == 5 and (first // 24) % 7 == 2  # Wednesday (Monday is 0)
    fc = weekpart_median(y.to_numpy(), first, 48, 24)  # Saturday 17 and Sunday 18 October, 05:00 on
    ahead = _weekly_shop(12, "2026-10-07T05:00Z")[1][len(y): len(y) + 48]
    assert np.mean(np.abs(fc - ahead)) < 1.5 and np.all(np.abs(fc - ahead) < 6.0)
    assert weekpart_median(y.to_numpy()[: 24 * 4], first, 24, 24) is None  # whole days Thursday to Saturday: one weekend day
    assert _calendar_position(pd.Timestamp("2026-10-07T05:30Z"), step) is None  # grid not on the hour
    assert _calendar_position(pd.Timestamp("2026-10-07"), pd.Timedelta(days=1)) is None  # daily: no day profile


def test_a_steady_trend_is_not_left_to_a_naive_forecast():
    rng = np.random.default_rng(0)
    i = np.arange(24 * 10)
    model = AutoForecaster(horizon=12).fit(_series(10 + 0.5 * i + rng.normal(0, 0.1, len(i))))
    assert model.chosen_ not in ("naive", "seasonal_naive")
    f = model.predict(12)["yhat"].to_numpy()
    assert np.allclose(f, 10 + 0.5 * np.arange(240, 252), atol=1.0)


def test_conformal_intervals_cover_what_they_say_per_step():
    rng = np.random.default_rng(2)
    H = 20
    widths = 1 + np.arange(H) / 5  # errors that grow with the step
    errors = rng.normal(0, 1, (10, H)) * widths
    bands = conformal_bands(np.zeros(H), errors, [80.0, 95.0])
    fresh = rng.normal(0, 1, (4000, H)) * widths
    for level, (lo, hi) in bands.items():
        covered = ((fresh >= lo) & (fresh <= hi)).mean()
        assert abs(covered - level / 100) < 0.05, (level, covered)
    lo, hi = bands[95.0]
    assert hi[-1] - lo[-1] > 2 * (hi[0] - lo[0])  # wider further ahead
    longer = conformal_bands(np.zeros(2 * H), errors, [95.0])[95.0]
    assert np.all(np.diff(longer[1][H - 1:]) > 0)  # past the backtest, still widening


def test_the_conformal_quantile_is_the_kth_smallest_score_with_k_from_n_plus_one():
    """Split conformal: of n scores, the ceil((n + 1) L)-th smallest; one rank higher over-covers, and
    with few origins (three of 60 steps) a rank is a visible width."""
    errors = np.arange(1.0, 40.0).reshape(39, 1)  # 39 origins of one step: scores are |e| / mean |e|
    bands = conformal_bands(np.zeros(1), errors, [80.0, 95.0])
    assert bands[80.0][1][0] == pytest.approx(32.0)  # ceil(40 * 0.80) = 32
    assert bands[95.0][1][0] == pytest.approx(38.0)  # ceil(40 * 0.95) = 38
    assert conformal_bands(np.zeros(1), errors[:10], [95.0])[95.0][1][0] == pytest.approx(10.0)  # k > n: the largest


def test_too_short_to_backtest_is_the_last_value():
    model = AutoForecaster(horizon=12).fit(_series(np.arange(24.0) % 5))
    assert model.chosen_ == "naive" and any("too short" in n for n in model.notes_)
    f = model.predict(3)
    assert (f["yhat"] == 23 % 5).all() and (f["yhat_lower_95"] < f["yhat"]).all()


def test_forecast_series_named_model_prepares_and_notes():
    i = np.arange(24 * 5)
    values = _series(50 + 10 * np.sin(2 * np.pi * i / 24)).iloc[::-1]  # newest first: preparation sorts it
    fc = forecast_series(values, 6, "seasonal_naive")
    assert fc.model == "seasonal_naive" and fc.comparison is None
    assert len(fc.forecast) == 6 and fc.forecast.index[0] == values.index.max() + pd.Timedelta(hours=1)
    assert np.allclose(fc.forecast["yhat"], values.sort_index().iloc[-24:-18])  # the last day repeated
    assert fc.prepared.step == pd.Timedelta(hours=1) and any("sorted" in n for n in fc.notes)


@pytest.mark.parametrize("name", ["ets", "theta", "autoarima", "naive"])
def test_statsforecast_members_follow_the_contract(name):
    rng = np.random.default_rng(3)
    i = np.arange(24 * 8)
    fc = forecast_series(_series(50 + 10 * np.sin(2 * np.pi * i / 24) + rng.normal(0, 1, len(i))), 12, name)
    f = fc.forecast
    assert len(f) == 12 and f["yhat"].notna().all()
    assert (f["yhat_lower_95"] <= f["yhat_lower_80"] + 1e-9).all() and (f["yhat_lower_80"] <= f["yhat"] + 1e-9).all()
    if name != "naive":
        assert np.corrcoef(f["yhat"], np.sin(2 * np.pi * np.arange(len(i), len(i) + 12) / 24))[0, 1] > 0.9


def test_forecast_series_auto_says_what_it_compared_and_refuses_long_horizons():
    i = np.arange(24 * 10)
    fc = forecast_series(_series(50 + 10 * np.sin(2 * np.pi * i / 24)), 12)
    assert fc.model.startswith("auto: ") and "seasonal_naive" in fc.comparison
    with pytest.raises(ForecastInputError, match="horizon 500 is too long"):
        forecast_series(_series(np.arange(48.0)), 500, "seasonal_naive")


def _calendar(values, freq) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.date_range("2010-01-01", periods=len(values),
                                                                          freq=freq, tz="UTC"))


def test_calendar_stamps_stay_on_their_calendar_grid():
    from training.forecasting.prepare import prepare_series

    for freq in ("MS", "ME", "QS", "QE", "YS", "W-SUN"):
        s = _calendar(np.arange(40.0), freq)
        prep = prepare_series(s)
        assert prep.calendar is not None and not prep.resampled, freq
        assert prep.series.index.equals(s.index) and np.array_equal(prep.series.to_numpy(), np.arange(40.0))
    daily = prepare_series(_calendar(np.arange(40.0), "D"))
    assert daily.calendar is None and daily.step == pd.Timedelta(days=1)


@pytest.mark.parametrize("freq,period,cycles", [("MS", 12, 8), ("QS", 4, 10)])
def test_a_calendar_season_is_found_and_beats_the_last_value(freq, period, cycles):
    rng = np.random.default_rng(4)
    i = np.arange(period * cycles + period)
    shape = np.array([0, 3, 7, 12, 9, 4, 1, -2, -6, -9, -5, -2])[:period] if period == 12 else np.array([-8, 4, 9, -5])
    y = _calendar(100 + 0.3 * i + shape[i % period] + rng.normal(0, 1, len(i)), freq)
    history, truth = y.iloc[:-period], y.iloc[-period:].to_numpy()
    model = AutoForecaster(horizon=period).fit(history)
    assert model.periods_ == [period] and model.day_ == period
    f = model.predict(period)
    assert f.index.equals(y.index[-period:])  # the next months/quarters, not 31-day steps
    mae = np.mean(np.abs(truth - f["yhat"].to_numpy()))
    assert mae < 0.5 * np.mean(np.abs(truth - history.iloc[-1]))
    assert detect_seasons(rng.normal(0, 1, len(i)), model.step_) == []  # noise: not assumed


def test_incident_spikes_are_cleaned_before_the_fit_and_a_change_at_the_end_is_kept():
    from training.forecasting.statsforecast_models import adjusted_forecast, clean_outliers

    rng = np.random.default_rng(3)
    level = 20 + rng.normal(0, 0.5, 300)
    spiked = level.copy()
    spiked[150:153] += 40  # an incident in the middle of the history
    cleaned, n = clean_outliers(spiked, 24)
    assert n == 3 and np.max(np.abs(cleaned[150:153] - 20)) < 2
    assert np.array_equal(cleaned[:150], spiked[:150])
    shifted = level.copy()
    shifted[-5:] += 40  # the last points: news, not an outlier
    assert clean_outliers(shifted, 24)[1] == 0
    # the models' level is not pulled by a spike in the last week
    spiked[-40:-37] += 400
    _, fcs = adjusted_forecast(spiked, [], ["ets", "arima"], 12, 500)
    _, kept = adjusted_forecast(spiked, [], ["ets", "arima"], 12, 500, clean=False)
    for method in ("ets", "arima"):
        assert abs(np.mean(fcs[method][0]) - 20) < 1
    assert max(abs(np.mean(kept[m][0]) - 20) for m in ("ets", "arima")) > abs(np.mean(fcs["ets"][0]) - 20)


def test_a_spike_the_series_has_left_at_the_end_is_cleaned_but_a_level_it_keeps_is_not():
    from training.forecasting.statsforecast_models import adjusted_forecast, clean_outliers

    fill = 38 + 0.05 * np.arange(300) % 1.2  # a disk's slow fill and daily clean-up: a tiny robust deviation
    spike = fill.copy()
    spike[-3] = 80.0  # a disk-fill incident two hours before the end, cleaned up since
    cleaned, n = clean_outliers(spike, 24)
    assert n >= 1 and cleaned[-3] < 45 and np.array_equal(cleaned[-2:], spike[-2:])
    _, fcs = adjusted_forecast(spike, [], ["ets"], 168, 500)
    assert np.max(fcs["ets"][0]) < 50  # not a trend to 200 %
    last = fill.copy()
    last[-1] = 80.0  # the newest point: nothing yet says it is over
    assert clean_outliers(last, 24)[0][-1] == 80.0
    small = 20 + np.random.default_rng(1).normal(0, 1, 300)
    small[-4] += 12  # 12 noise units: an outlier in the middle, but at the end it must stand out further
    assert clean_outliers(small, 24)[0][-4] == small[-4]


def test_one_incident_hour_in_a_week_long_backtest_does_not_set_every_later_interval():
    rng = np.random.default_rng(5)
    errors = rng.normal(0, 1, (1, 168))  # one origin a week ahead, as a capacity plan of a fortnight has
    calm = conformal_bands(np.zeros(168), errors, [95.0])[95.0][1]
    errors[0, 20] = 40.0  # CPU saturated for an hour in the backtest week
    hit = conformal_bands(np.zeros(168), errors, [95.0])[95.0][1]
    assert np.max(hit[30:] / calm[30:]) < 1.3


def test_a_horizon_as_long_as_the_history_is_backtested_shorter_not_left_to_the_last_value():
    rng = np.random.default_rng(0)
    y = _series(40 + 0.25 * np.arange(120) + rng.normal(0, 0.05, 120))  # five days of a filling disk
    model = AutoForecaster(horizon=120).fit(y)
    assert model.chosen_ != "naive" and model.errors_.shape == (3, 33)
    assert any("backtested 33 steps ahead" in n for n in model.notes_)
    f = model.predict(120)
    assert abs(f["yhat"].iloc[-1] - (40 + 0.25 * 239)) < 3
    assert (f["yhat_upper_95"] - f["yhat"]).iloc[-1] > (f["yhat_upper_95"] - f["yhat"]).iloc[32]


def test_for_horizon_tells_auto_and_deepar_their_horizon_unless_fixed():
    from training.forecasting.registry import build_forecaster, for_horizon

    assert for_horizon(build_forecaster("auto"), 72).get_params()["horizon"] == 72
    assert for_horizon(build_forecaster("auto", horizon=6), 72, fixed={"horizon": 6}).get_params()["horizon"] == 6
    assert "horizon" not in for_horizon(build_forecaster("seasonal_naive"), 72).get_params()


def test_a_candidate_missing_at_the_first_origins_is_left_out_of_the_comparison():
    # 70 hourly points: the first backtest origins have under two days, so seasonal naive cannot run there
    i = np.arange(70)
    y = _series(50 + 10 * np.sin(2 * np.pi * i / 24) + np.random.default_rng(1).normal(0, 0.3, 70))
    model = AutoForecaster(horizon=6).fit(y)
    assert "seasonal_naive" not in model.scores_ and {"naive", "ets"} <= set(model.scores_)
    assert len(model.predict(6)) == 6


def test_cerebro_forecast_imports_statsforecast_without_dask_or_numba_and_both_still_import_after():
    import subprocess
    import sys

    # -W error: a utilsforecast fallback called in place of its Numba function would warn, and fail here
    code = ("import sys, numpy as np, pandas as pd\n"
            "from training.forecasting.statsforecast_models import import_statsforecast_alone\n"
            "from training.forecasting.choice import forecast_series\n"
            "import_statsforecast_alone()\n"
            "t = pd.date_range('2026-01-01', periods=600, freq='h', tz='UTC')\n"
            "y = pd.Series(np.random.default_rng(0).normal(10, 1, 600) + np.sin(np.arange(600) / 3.8), index=t)\n"
            "fc = forecast_series(y, 24)\n"
            "print('dask' in sys.modules, 'numba' in sys.modules, len(fc.forecast))\n"
            "import dask.dataframe, numba\n"
            "print('after', 'dask.dataframe' in sys.modules, 'numba' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["False", "False", "24", "after", "True", "True"], out.stdout + out.stderr


def test_the_backtest_searches_arimas_order_once_and_refits_it_at_later_origins(monkeypatch):
    """An AutoARIMA search is some twenty fits: the first origin searches, later origins refit that order,
    and the final forecast searches again on the whole history. An order that cannot be refitted searches."""
    from statsforecast import models as sf_models

    from training.forecasting import statsforecast_models as sfm

    searches, refits = [], []
    real_model, real_arima = sfm.statsforecast_model, sf_models.ARIMA

    def counting_model(method, n=0):
        if method == "arima":
            searches.append(n)
        return real_model(method, n)

    class CountingARIMA(real_arima):
        def forecast(self, *args, **kwargs):
            refits.append(self.order)
            return super().forecast(*args, **kwargs)

    monkeypatch.setattr(sfm, "statsforecast_model", counting_model)
    monkeypatch.setattr(sf_models, "ARIMA", CountingARIMA)
    rng = np.random.default_rng(4)
    series = _series(np.cumsum(rng.normal(0, 1, 300)) + 0.2 * np.arange(300), freq="D")
    model = AutoForecaster(horizon=10, season=1).fit(series)
    assert model.errors_.shape[0] == 12  # origins: 120 backtest errors wanted at a horizon of 10
    assert len(searches) == 1 and len(refits) == 11
    assert len(set(refits)) == 1  # the order the first origin's search chose
    model.predict(10)
    # the final forecast searches the whole history again when ARIMA is among the chosen
    assert len(searches) == 1 + ("arima" in model.members_) and len(refits) == 11

    memory = {"order": (9, 3, 9), "include_mean": True, "include_drift": False}  # cannot be fitted here
    _, out = sfm.adjusted_forecast(np.asarray(series)[:40], [], ["arima"], 5, 500, arima=memory)
    assert len(out["arima"][0]) == 5 and memory["order"] != (9, 3, 9)
    assert len(searches) == 2 + ("arima" in model.members_)
