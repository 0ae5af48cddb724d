"""A real log's shape, built in the test: short texts, a heavy-tailed count outcome, a timestamp that is itself the
confounder, no context column, and a CSV with broken lines. Known answers: the planted weekday effects, and the
months whose texts were better (DML must not charge them to the calendar; naive OLS does)."""

import numpy as np
import pandas as pd
import pytest

from deconfound.causal import EstimatorConfig, estimate, fit_dml, fit_ols, write_deconfounded_column
from deconfound.cli import main
from deconfound.data import Roles
from deconfound.errors import DeconfoundError, RolesError

GOOD = ["amazing", "stunning", "brilliant"]
PLAIN = ["story", "night", "city", "day", "road", "house", "river", "song", "game", "team", "winter", "summer",
         "garden", "letter", "window", "friend"]
WEEKDAY_EFFECT = {"Sat": 0.3, "Sun": 0.5}  # on log(1 + votes), relative to Monday


def make_log(n=4000, seed=0) -> pd.DataFrame:
    """Titles whose quality is the number of good words (+0.3 each), posted over 2022–2023; texts posted in 2023
    use good words three times as often (better texts later: entangled with the calendar). votes = expm1(1 +
    quality + weekday effect + noise)."""
    rng = np.random.default_rng(seed)
    stamps = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 730 * 24, n), unit="h")
    late = np.asarray(stamps.year == 2023)
    p_good = np.where(late, 0.3, 0.1)
    titles, quality = [], np.zeros(n)
    for i in range(n):
        words = [rng.choice(GOOD) if rng.random() < p_good[i] else rng.choice(PLAIN) for _ in range(5)]
        quality[i] = 0.3 * sum(w in GOOD for w in words)
        titles.append(" ".join(words).capitalize())
    weekday = pd.Series(stamps.dayofweek).map({5: WEEKDAY_EFFECT["Sat"], 6: WEEKDAY_EFFECT["Sun"]}).fillna(0.0)
    log_votes = 1.0 + quality + weekday.to_numpy() + rng.normal(0, 0.3, n)
    return pd.DataFrame({"title": titles, "votes": np.round(np.expm1(np.maximum(log_votes, 0)), 3), "posted": stamps,
                         "impressions": rng.integers(50, 500, n)})


ROLES = Roles(text="title", outcome="votes", timestamp="posted", confounders=["posted"], outcome_scale="log1p",
              calendar="weekday+month")


def month_effects(result, year: str) -> float:
    return float(np.mean([v for k, v in result.coef.items() if k.startswith(f"posted:month[{year}")]))


def test_time_confounder_dml_recovers_the_calendar_with_the_text_partialled_out():
    data = make_log()
    dml = fit_dml(data, ROLES, EstimatorConfig(folds=3))
    ols = fit_ols(data, ROLES)
    assert dml.coef["posted:weekday[Sun]"] == pytest.approx(WEEKDAY_EFFECT["Sun"], abs=0.08)
    assert dml.coef["posted:weekday[Sat]"] == pytest.approx(WEEKDAY_EFFECT["Sat"], abs=0.08)
    assert not any(t.startswith("posted:weekday[Mon") for t in dml.terms)  # Monday is the reference
    # 2023's texts were better, not its calendar: DML leaves those months near 0 (relative to Jan 2022); naive OLS
    # charges the better texts to them (0.3 × 5 × (0.3 − 0.1) = +0.3 expected).
    assert abs(month_effects(dml, "2023")) < 0.1
    assert month_effects(ols, "2023") == pytest.approx(0.3, abs=0.08)
    assert dml.config["outcome_scale"] == "log1p" and dml.formula.startswith("log1p(votes) ~")
    assert "calendar" in dml.verdict() and "log(1 + outcome)" in dml.verdict()


def test_weights_reach_the_dml_fit_and_zero_impressions_are_refused():
    data = make_log(n=1500)
    roles = Roles(**{**ROLES.to_dict(), "weight": "impressions", "calendar": "weekday"})
    weighted = fit_dml(data, roles, EstimatorConfig(folds=3))
    assert "weighted by impressions" in weighted.formula
    assert weighted.coef["posted:weekday[Sun]"] == pytest.approx(WEEKDAY_EFFECT["Sun"], abs=0.12)
    data.loc[3, "impressions"] = 0
    with pytest.raises(DeconfoundError, match="zero, negative or missing in 1 rows"):
        fit_dml(data, roles, EstimatorConfig(folds=3))


def messy_csv(data: pd.DataFrame, path, broken=(10, 200, 1234)) -> None:
    """The log written as a user's export: a few titles carry a bare newline in unquoted text (the title sits
    between other columns, so both halves of a broken record are short of fields)."""
    lines = ["votes,title,posted,impressions"]
    for i, row in enumerate(data.itertuples()):
        title = row.title.replace(" ", "\n", 1) if i in broken else row.title
        lines.append(f"{row.votes},{title},{row.posted:%Y-%m-%d %H:%M:%S},{row.impressions}")
    path.write_text("\n".join(lines) + "\n")


def test_the_whole_data_side_on_a_messy_log_without_context(tmp_path, store, capsys):
    data = make_log()
    path = tmp_path / "titles.csv"
    messy_csv(data, path)
    assert main(["ingest", str(path)]) == 2
    assert "6 lines could not be parsed" in capsys.readouterr().err  # each broken record is 2 bad lines
    result = store.ingest(path, skip_bad_rows=True)
    assert result.rows == len(data) - 3 and result.rows_rejected == 6
    assert main(["tag", "--table", "titles", "--text", "title", "--outcome", "votes", "--timestamp", "posted",
                 "--confounder", "posted", "--outcome-scale", "log1p", "--json"]) == 0
    tagged = store.load_roles("titles")
    assert tagged.context is None and tagged.confounders == ["posted"] and tagged.outcome_scale == "log1p"
    assert "editor instruction alone" in capsys.readouterr().out
    fitted = estimate(store, "titles", "dml", EstimatorConfig(folds=3))
    assert fitted.coef["posted:weekday[Sun]"] == pytest.approx(WEEKDAY_EFFECT["Sun"], abs=0.08)
    meta = write_deconfounded_column(store, "titles", fitted)
    frame = store.read_frame("titles")
    corrected = np.log1p(frame[meta["column"]])
    weekday = frame["posted"].dt.dayofweek
    # Back on the votes' scale (no negative counts), and the weekend lift gone on the log scale.
    assert (frame[meta["column"]] > -1).all() and meta["outcome_scale"] == "log1p"
    assert corrected[weekday == 6].mean() - corrected[weekday == 0].mean() == pytest.approx(0.0, abs=0.08)
    assert frame["votes"].equals(store.read_frame("titles", ["votes"])["votes"])  # source never altered


def test_bad_time_scale_and_weight_inputs_are_one_sentence(tmp_path, store, capsys):
    path = tmp_path / "t.csv"
    path.write_text("title,votes,posted,impressions\nA b,3,Mon Jan 01 2024,10\nC d,-2,Tue Jan 02 2024,0\n")
    store.ingest(path)
    cases = [
        (["--timestamp", "posted"], "2 values of 'posted' do not parse as dates"),
        (["--outcome-scale", "log1p"], "has 1 negative values"),
        (["--weight", "impressions"], "zero, negative or missing in 1 rows"),
    ]
    for extra, phrase in cases:
        code = main(["tag", "--table", "t", "--text", "title", "--outcome", "votes", *extra])
        err = capsys.readouterr().err
        assert code == 2 and phrase in err and len(err.strip().splitlines()) == 1, err
    assert store.load_roles("t") is None  # nothing saved
    with pytest.raises(RolesError, match="do not parse as dates"):
        store.save_roles("t", Roles(text="title", outcome="votes", timestamp="posted"))


def test_a_date_column_read_back_from_parquet_is_still_a_time(tmp_path):
    from deconfound.causal import column_terms
    from deconfound.runs import marker_groups_for
    data = make_log(n=300)
    data["posted"] = data["posted"].dt.date  # DuckDB DATE -> Parquet -> pandas: Python dates (object dtype)
    data.to_parquet(tmp_path / "d.parquet")
    back = pd.read_parquet(tmp_path / "d.parquet")
    assert back["posted"].dtype == object
    frame, terms = column_terms(back, ["posted"], "weekday+month_of_year")
    assert {t["calendar"] for t in terms} == {"weekday", "month_of_year"} and frame.shape[1] == 6 + 11
    groups, sources = marker_groups_for(back, ROLES)
    assert {"Monday", "December"} <= set(groups) and not any(g.startswith("20") for g in groups)
