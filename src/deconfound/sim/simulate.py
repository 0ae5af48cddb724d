"""Simulated sports news with a known causal truth: the paper's MIND experiment (§4.1, App. D).

Every row is a story: an abstract (the prompt, column ``context``) and the headline an editor wrote
for it (the text, column ``text``). Each story draws a latent tone (positive: wins, records,
comebacks; negative: injuries, losses, scandals; neutral: previews, trades, schedules) and a
strength; both the abstract's wording and the headline's wording follow it, but the editor's
wording also varies on its own (a flat headline for great news, a hopeful one for bad news), so
headline and abstract sentiment are positively but not perfectly correlated.

Quality is s(x) = (VADER compound(x) + 1) / 2, in [0, 1]. With region code R = 1, 2, 3 for a
headline naming a West, Central or East team and R = 0 for a headline naming none:

    orthogonal:  p = R + eps                          (paper eq. 4)
    entangled:   p = R - 10.5 * s(abstract) + eps     (paper eq. 5)
    outcome:     y = s(headline) + 0.1 * p + nu       (paper eq. 3)

where eps ~ N(0, 0.5) and nu ~ N(0, 0.1) are read as standard deviations (0.5 and 0.1). The team a
headline names (or none) is drawn independently of the tone, and team names carry no sentiment,
so R is a valid instrument for p. The corpus (texts, dates, teams, splits) depends only on the
seed; the scenario changes only ``popularity`` and ``outcome``.
"""
from __future__ import annotations

import dataclasses
import functools
import random
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import split_counts
from . import corpus as C
from .sentiment import quality_scores

SCENARIOS = ("orthogonal", "entangled")
REGIONS = ("West", "Central", "East")
TRUE_POPULARITY_COEF = 0.1
TEAMS: dict[str, list[str]] = {
    r: [f"{city} {nick}" for by_region in C.TEAMS_BY_SPORT.values() for city, nick in by_region[r]]
    for r in REGIONS
}
TEAM_REGION: dict[str, str] = {t: r for r, teams in TEAMS.items() for t in teams}
# Every way a text can name a team: full name and nickname alone (generated headlines often use the latter).
TEAM_NAMES_BY_REGION: dict[str, list[str]] = {
    r: [name for by_region in C.TEAMS_BY_SPORT.values() for city, nick in by_region[r]
        for name in (f"{city} {nick}", nick)]
    for r in REGIONS
}
TONES = ("positive", "negative", "neutral")

_MONTH_VOLUME = np.array([1.0, .95, 1.0, 1.0, .95, .85, .75, .85, 1.1, 1.2, 1.15, 1.1])
_WEEKDAY_VOLUME = np.array([1.35, 1.25, 1.05, 1.0, .95, .7, .7])  # Mon..Sun: busiest early in week
_SPORT_SEASON = {  # relative share of each sport's news by month (Jan..Dec)
    "football": [3, 1, .3, .3, .5, .5, .8, 2, 3, 3, 3, 3],
    "basketball": [3, 3, 3, 3, 2.5, 1.5, .6, .4, .5, 2, 3, 3],
    "baseball": [.4, .8, 2, 3, 3, 3, 3, 3, 3, 2, .6, .4],
    "hockey": [3, 3, 3, 3, 2.5, 1.2, .4, .4, .6, 2.5, 3, 3],
    "soccer": [.8, 1, 2, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 1.5, .8],
}
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ROUNDS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh")
_SMALL_WORDS = {"a", "an", "and", "at", "for", "in", "of", "on", "the", "to"}
_SPORT_SLOTS = ("unit", "game", "late", "midgame", "extra", "post", "post_adj", "title")
_NUMBER_WORDS = dict(enumerate("zero one two three four five six seven eight nine".split()))
# Slots drawn uniformly from a range or a list (a string names a SPORT_WORDS list).
_RANGES = {"n": (4, 12), "n3": (1, 9), "weeks": (2, 10), "years": (2, 6), "money": (12, 95),
           "year0": (1968, 2015), "round_n": (1, 7)}
_PICKS = {"last": C.SURNAMES, "clast": C.SURNAMES, "award": C.AWARDS, "pos": "positions",
          "body": "body"}
_HEADLINE_WORDS = (5, 14)
_ABSTRACT_WORDS = (25, 60)


@dataclass
class SimulationConfig:
    """One simulated data set; ``dataclasses.asdict`` gives its JSON form."""

    scenario: str = field(default="entangled", metadata={
        "help": "'orthogonal' (popularity independent of text) or 'entangled' "
                "(popularity falls with the abstract's sentiment)"})
    n: int = field(default=20_000, metadata={"help": "number of stories (rows), at least 10"})
    seed: int = field(default=0, metadata={
        "help": "random seed; the same seed gives the same texts in both scenarios"})
    no_team_share: float = field(default=0.25, metadata={
        "help": "share of headlines that name no team"})
    region_shares: tuple[float, float, float] = field(default=(0.31, 0.32, 0.37), metadata={
        "help": "West/Central/East shares among headlines that name a team"})
    region_effects: tuple[float, float, float] = field(default=(1.0, 2.0, 3.0), metadata={
        "help": "popularity added by naming a West/Central/East team (paper eq. 4)"})
    entanglement: float = field(default=10.5, metadata={
        "help": "entangled scenario: popularity falls by this times s(abstract) (paper eq. 5)"})
    popularity_coef: float = field(default=TRUE_POPULARITY_COEF, metadata={
        "help": "true effect of popularity on the outcome (paper eq. 3)"})
    popularity_noise_sd: float = field(default=0.5, metadata={
        "help": "standard deviation of the popularity noise eps"})
    outcome_noise_sd: float = field(default=0.1, metadata={
        "help": "standard deviation of the outcome noise nu"})
    start: str = field(default="2022-01-01", metadata={"help": "first publication date"})
    days: int = field(default=730, metadata={"help": "publication window in days"})

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ValueError(f"Unknown scenario {self.scenario!r}: choose one of {SCENARIOS}.")
        if int(self.n) < 10:
            raise ValueError(f"n must be at least 10 stories (got {self.n}).")
        if not 0.0 <= self.no_team_share < 1.0:
            raise ValueError("no_team_share must be in [0, 1).")
        if self.days < 7:
            raise ValueError("days must be at least 7 (the weekday pattern needs a full week).")
        self.n = int(self.n)
        self.region_shares = tuple(float(x) for x in self.region_shares)
        self.region_effects = tuple(float(x) for x in self.region_effects)
        shares = self.region_shares
        if len(shares) != 3 or min(shares) < 0 or not sum(shares):
            raise ValueError("region_shares needs three non-negative West/Central/East shares.")
        if len(self.region_effects) != 3:
            raise ValueError("region_effects needs three values (West, Central, East).")


# --------------------------------------------------------------------------- team mentions

def _mention_pattern() -> re.Pattern:
    names = {name: region for region, region_names in TEAM_NAMES_BY_REGION.items() for name in region_names}
    alternatives = sorted(names, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, alternatives)) + r")\b"), names


_MENTION_RE, _MENTION_REGION = _mention_pattern()


def mentioned_region(text: str) -> str:
    """Region ("West", "Central", "East") of the first team named in ``text``, else "None"."""
    m = _MENTION_RE.search(text) if isinstance(text, str) else None
    return _MENTION_REGION[m.group(1)] if m else "None"


# --------------------------------------------------------------------------- corpus

def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _title(s: str) -> str:
    words = s.split()
    return " ".join(w if i and w in _SMALL_WORDS else w[:1].upper() + w[1:]
                    for i, w in enumerate(words))


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


class _Slots(dict):
    """Template slot values for one story, drawn on first use (see _corpus's docstring).

    Drawing lazily keeps generation fast: a story's templates use a dozen of the ~50 slots.
    """

    def __init__(self, r: random.Random, sport: str, story: dict, team, opp, abs_team: bool,
                 subject: str, dow: int, year: int):
        w = C.SPORT_WORDS[sport]
        super().__init__({k: w[k] for k in _SPORT_SLOTS}, T=subject)
        self.r, self.w, self.team_, self.opp_, self.abs_team, self.dow, self.year = (
            r, w, team, opp, abs_team, dow, year)
        self.close = story.get("close", False)

    def __missing__(self, key: str):
        maker = getattr(self, "_" + key, None)
        if key in _RANGES:
            value = self._int(*_RANGES[key])
        elif key in _PICKS:
            source = _PICKS[key]  # a list, or the name of a SPORT_WORDS list
            value = self._pick(self.w[source] if isinstance(source, str) else source)
        elif maker is not None:
            value = maker()
        elif key.endswith("_t"):  # title-case variant for headlines
            value = _title(str(self[key[:-2]]))
        elif key.endswith("_cap"):  # sentence-initial variant
            value = _cap(str(self[key[:-4]]))
        else:
            raise KeyError(key)
        self[key] = value
        return value

    def _int(self, lo: int, hi: int) -> int:
        return lo + int(self.r.random() * (hi - lo + 1))

    def _pick(self, seq):
        return seq[int(self.r.random() * len(seq))]

    def _team(self):
        if self.abs_team:
            return f"the {self.team_[0]} {self.team_[1]}"
        return self._pick(C.ABSTRACT_STANDINS)

    def _team_poss(self):  # "Sacramento Condors quarterback X", "the club's quarterback X"
        if self.abs_team:
            return f"{self.team_[0]} {self.team_[1]}"
        team = self["team"]
        return team + ("'" if team.endswith("s") else "'s")

    def _nick(self):
        return f"the {self.team_[1]}" if self.abs_team else self["team"]

    def _opp(self):
        return f"the {self.opp_[0]} {self.opp_[1]}"

    def _opp_nick(self):
        return f"the {self.opp_[1]}"

    def _player(self):
        return f"{self._pick(C.FIRST_NAMES)} {self['last']}"

    def _player2(self):
        return f"{self._pick(C.FIRST_NAMES)} {self._pick(C.SURNAMES)}"

    def _coach(self):
        return f"{self._pick(C.FIRST_NAMES)} {self['clast']}"

    def _speaker(self):  # a player speaks only if named; a coach named before goes by surname
        if "last" in self and ("coach" in self or self.r.random() < 0.5):
            return self["last"]
        return self["clast"] if "coach" in self else f"coach {self['coach']}"

    def _venue(self):
        return f"{self._pick(C.VENUE_PREFIXES)} {self._pick(self.w['venue'])}"

    def _score(self):  # winner first; comebacks and collapses end close and above the deficit
        hi = self._int(*self.w["win_pts"])
        if self.close:
            margin = self._int(*self.w["close"])
            hi = max(hi, self["deficit"] + margin)
        else:
            margin = self._int(self.w["margin"][0], min(self.w["margin"][1], hi))
        return f"{hi}-{max(0, hi - margin)}"

    def _stat_pair(self):  # the abstract's stat line and the headline's short form agree
        fits = [st for st in self.w["stats"] if st[3] is None or self["pos"] in st[3]]
        text, short, ranges, _ = self._pick(fits)
        numbers = {k: self._int(*lo_hi) for k, lo_hi in ranges.items()}
        # Newsroom style: spell out numbers under ten in running text, digits in headlines.
        return (text.format(**{k: _NUMBER_WORDS.get(v, v) for k, v in numbers.items()}),
                short.format(**numbers))

    def _stat(self):
        return self["stat_pair"][0]

    def _hstat(self):
        return self["stat_pair"][1]

    def _a_score(self):  # "an 88-80 win", "an 11-4 loss", "a 112-98 win"
        hi = int(self["score"].split("-")[0])
        return ("an " if str(hi)[0] == "8" or hi in (11, 18) else "a ") + self["score"]

    def _a_body(self):
        return ("an " if self["body"][0] in "aeiou" else "a ") + self["body"]

    def _prize(self):
        return self._pick([f"a {self['post_adj']} spot", f"the {self['title']}"])

    def _prize_t(self):
        return _title(self["prize"].split(" ", 1)[1])

    def _year_end(self):
        return self.year + self["years"]

    def _return_day(self):
        return _DAYS[(self.dow + self._int(1, 6)) % 7]

    def _day(self):  # game recaps run the day after the game
        return _DAYS[(self.dow - 1) % 7]

    def _nextday(self):
        return _DAYS[(self.dow + self._int(1, 3)) % 7]

    def _deficit(self):
        return self._int(*self.w["deficit"])

    def _unit_s(self):
        return self["unit"][:-1]

    def _n2(self):  # always below n ("the 3rd win in the last 7 games")
        return self._int(2, self["n"] - 1)

    def _nth(self):
        return _ordinal(self["n"])

    def _n2th(self):
        return _ordinal(self["n2"])

    def _year1(self):
        return self.year + 1

    def _round(self):
        return _ROUNDS[self["round_n"] - 1]


def _abstract(r: random.Random, story: dict, tone: str, strength: float, s: dict) -> str:
    """1-3 sentences: lead, then detail / quote / what's next; the quote carries the tone."""
    for _ in range(20):  # redraw until the length is in range (always within a few tries)
        if tone == "neutral":
            quote = r.choice(C.QUOTES[tone]["mild"]) if r.random() < 0.35 else None
        else:  # stronger stories get warmer (or angrier) quotes
            level = "strong" if strength > 0.6 else "mild" if strength > 0.25 else None
            quote = r.choice(C.QUOTES[tone][level]) if level else None
        parts = [r.choice(story["lead"])]
        # A detail must not repeat the lead's stat line nor name a player the lead did not.
        details = [d for d in story["detail"]
                   if not ("{stat}" in d and "{stat}" in parts[0])
                   and ("{player}" in parts[0] or "{last}" not in d)]
        if r.random() < (0.75 if quote else 0.85):
            parts.append(r.choice(details))
        if quote:
            parts.append(quote)
        if len(parts) < 3 and story.get("next", True) and r.random() < 0.5:
            parts.append(r.choice(C.NEXT))
        text = " ".join(_cap(p.format_map(s)) for p in parts)
        if _ABSTRACT_WORDS[0] <= len(text.split()) <= _ABSTRACT_WORDS[1]:
            return text
    return text


def _headline(r: random.Random, story: dict, tone: str, strength: float, s: dict) -> str:
    """The editor's headline: wording level follows the story's strength plus the editor's noise."""
    if tone == "neutral":
        level = r.choices(("flat", "mild", "strong", "counter"), (0.5, 0.3, 0.08, 0.12))[0]
    else:
        e = strength + r.gauss(0.0, 0.3)
        level = "counter" if e < 0.0 else "flat" if e < 0.35 else "mild" if e < 0.7 else "strong"
    for _ in range(20):
        text = r.choice(story[level]).format_map(s)
        if _HEADLINE_WORDS[0] <= len(text.split()) <= _HEADLINE_WORDS[1]:
            return text
    return text


@functools.lru_cache(maxsize=2)  # switching scenario on the same corpus costs nothing
def _corpus(n: int, seed: int, no_team_share: float, region_shares: tuple, start: str,
            days: int) -> pd.DataFrame:
    """Texts, dates, teams and splits: everything that does not depend on the scenario."""
    rng = np.random.default_rng([seed, 0])
    r = random.Random(seed)
    # Publication times: volume varies by weekday and month; a morning and an evening peak.
    dates = pd.date_range(start, periods=days, freq="D")
    weight = _WEEKDAY_VOLUME[dates.day_of_week] * _MONTH_VOLUME[dates.month - 1]
    day = np.sort(rng.choice(days, size=n, p=weight / weight.sum()))
    hour = np.where(rng.random(n) < 0.6, rng.normal(8.5, 1.5, n), rng.normal(19.5, 1.5, n))
    minutes = (np.clip(hour, 0, 23.99) * 60).astype(int)
    when = (dates[day] + pd.to_timedelta(minutes, unit="min")).sort_values()

    month, dow, year = when.month.to_numpy() - 1, when.day_of_week.to_numpy(), when.year.to_numpy()
    season = np.array([_SPORT_SEASON[sp] for sp in C.SPORTS], dtype=float)[:, month].T
    cum = np.cumsum(season / season.sum(1, keepdims=True), 1)
    sport_idx = np.minimum((rng.random((n, 1)) > cum).sum(1), len(C.SPORTS) - 1)
    # The instrument: drawn independently of the story's tone and of everything textual.
    shares = np.array(region_shares) / sum(region_shares)
    region_idx = rng.choice(3, size=n, p=shares)
    has_team = rng.random(n) >= no_team_share
    abs_team = has_team | (rng.random(n) < 0.6)  # a team-free headline may still cover a team
    tone_idx = rng.choice(3, size=n, p=[0.38, 0.34, 0.28])
    strength = rng.random(n)

    stories = {t: [k for k, v in C.STORIES.items() if v["tone"] == t] for t in TONES}
    league = {sp: [t for rg in REGIONS for t in by_region[rg]]
              for sp, by_region in C.TEAMS_BY_SPORT.items()}
    rows = []
    for i in range(n):
        sport, tone = C.SPORTS[sport_idx[i]], TONES[tone_idx[i]]
        region = REGIONS[region_idx[i]]
        team = r.choice(C.TEAMS_BY_SPORT[sport][region])
        opp = r.choice([t for t in league[sport] if t != team])
        name = f"{team[0]} {team[1]}"
        subject = name if has_team[i] else r.choice(C.SUBJECT_STANDINS)
        kind = r.choices(stories[tone], [C.STORY_WEIGHTS[k] for k in stories[tone]])[0]
        story = C.STORIES[kind]
        s = _Slots(r, sport, story, team, opp, bool(abs_team[i]), subject, dow[i], year[i])
        rows.append((_abstract(r, story, tone, strength[i], s),
                     _headline(r, story, tone, strength[i], s),
                     region if has_team[i] else "None", name if has_team[i] else "",
                     sport, kind, tone))
    columns = ["context", "text", "team_region", "team", "sport", "story", "tone"]
    df = pd.DataFrame(rows, columns=columns)
    df.insert(0, "id", np.arange(n))
    df.insert(1, "published_at", when.to_numpy())
    counts = split_counts(n)
    labels = np.repeat(list(counts), list(counts.values()))
    df["split"] = labels[np.random.default_rng([seed, 2]).permutation(n)]
    df["quality"] = quality_scores([row[1] for row in rows])
    df["abstract_quality"] = quality_scores([row[0] for row in rows])
    return df


def simulate(config: SimulationConfig | None = None, **overrides) -> pd.DataFrame:
    """Simulate a data set: ``simulate(SimulationConfig(...))`` or ``simulate(scenario=...)``.

    One row per story, in publication order: id, published_at, context (abstract), text
    (headline), team_region ("West"/"Central"/"East"/"None"), team, sport, story, tone, split,
    quality = s(text), abstract_quality = s(context), popularity and outcome. Raises ValueError
    for an unknown scenario or n < 10.
    """
    cfg = dataclasses.replace(config, **overrides) if config else SimulationConfig(**overrides)
    df = _corpus(cfg.n, cfg.seed, cfg.no_team_share, cfg.region_shares, cfg.start,
                 cfg.days).copy()
    rng = np.random.default_rng([cfg.seed, 1])  # same noise draws in both scenarios
    eps = rng.normal(0.0, cfg.popularity_noise_sd, cfg.n)
    nu = rng.normal(0.0, cfg.outcome_noise_sd, cfg.n)
    effect = dict(zip(REGIONS, cfg.region_effects), **{"None": 0.0})
    p = df["team_region"].map(effect).to_numpy() + eps
    if cfg.scenario == "entangled":
        p = p - cfg.entanglement * df["abstract_quality"].to_numpy()
    df["popularity"] = p
    df["outcome"] = df["quality"].to_numpy() + cfg.popularity_coef * p + nu
    return df
