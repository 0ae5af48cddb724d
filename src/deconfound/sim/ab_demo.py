"""Seeded A/B-test tables in the shape of the Upworthy archive (§3.2, App. C): one row per headline package, with
its test id, headline, impressions, clicks and the test's creation time; every test shows 2-4 headlines of one
story to randomly split traffic. The true effect of each headline is known.

The model, per package i of test t created in month m:

    logit CTR_i = −4.2 + μ(m) + a(topic_t) + u_t + effect_i,     u_t ~ N(0, 0.25)
    effect_i    = Σ β(style) + β(!) + β(caps) + e_i,             e_i ~ N(0, 0.15)   (column true_effect)
    impressions ~ volume(m) · LogNormal(log 4000, 0.5),  clicks ~ Binomial(impressions, CTR)

μ(m) is the **monthly traffic confounder** (who visits, what is in the news): `shape` "seasonal" is a yearly wave
with an election-season surge, "trend" a slow decline with three spikes. It confounds because the newsroom's
habits moved with it: curiosity-gap headlines were written more often in high-traffic months and question
headlines less (STYLE_DRIFT), and each month's news event has its own words. A regression on observed CTRs
therefore credits curiosity-gap wording and event words with traffic; within a test, where the month, topic and
u_t are shared, only `effect_i` differs, so the tests' winners reveal the true effects. Columns: test_id,
package_id, headline, impressions, clicks, ctr, created_at, topic, true_effect.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..data import Roles

AB_ROLES = Roles(text="headline", outcome="ctr", timestamp="created_at", experiment="test_id", arm="package_id",
                 truth="true_effect")
AB_SHAPES = ("seasonal", "trend")
# style -> (true effect on the logit CTR, templates; {s} is the story's subject, {n} a number)
STYLES = {
    "curiosity": (0.20, ["You won't believe what happened when {s}", "Nobody expected what happened after {s}",
                         "This is what happened when {s}"]),
    "emotional": (0.15, ["This story about {s} will make you cry", "The heartwarming truth about {s}",
                         "{S} and it is beautiful"]),
    "watch": (0.12, ["Watch what happened when {s}", "Watch: {S}", "In {n} minutes, see how {s}"]),
    "question": (0.10, ["Why does it matter that {s}?", "Is this the reason {s}?", "What if {s}?"]),
    "number": (0.06, ["{n} things we learned when {s}", "{n} reasons it matters that {s}", "{S}, in {n} charts"]),
    "plain": (0.0, ["{S}", "Report: {s}", "A closer look at how {s}"]),
    "negative": (-0.10, ["The shocking reason {s}", "{S}, and it is worse than you think",
                         "Sorry, but the fact that {s} is a bad sign"]),
}
STYLE_DRIFT = {"curiosity": 0.9, "question": -0.9}  # log-odds of a style per sd of the confounder μ(m)
EXCLAIM_EFFECT, CAPS_EFFECT = 0.03, 0.05
_TOPICS = {  # topic -> (appeal a(topic), who, what they did): subjects are "who what"
    "health": (0.10, ["a nurse", "a small-town doctor", "a teenager", "a retired surgeon", "a pharmacist"],
               ["worked three shifts in a row", "talked openly about anxiety", "tested a new sugar tax",
                "cut a town's smoking rate in half", "ran a free clinic on weekends"]),
    "parenting": (0.15, ["a dad", "two moms", "a single father", "a grandmother", "a foster parent"],
                  ["taught a daughter to code", "answered a kid's hardest question", "wrote letters to a newborn",
                   "let a son choose his own name", "turned bedtime into a science class"]),
    "animals": (0.20, ["a rescued dog", "a zoo", "a stray cat", "a group of volunteers", "a farmer"],
                ["found its way home after a year", "adopted three ducklings", "saved a beached whale",
                 "let the elephants walk free", "built a shelter out of old boats"]),
    "climate": (-0.05, ["a city", "a group of farmers", "a student", "a fishing village", "a small country"],
                ["switched to solar power", "planted a forest on dry land", "sued the state over emissions",
                 "measured the melting ice", "banned plastic bags for good"]),
    "money": (0.0, ["a waiter", "a billionaire", "a family", "a bank", "a factory worker"],
              ["explained a paycheck line by line", "paid taxes in public", "lived on minimum wage for a month",
               "forgave every student loan", "shared the company's profits"]),
    "education": (0.05, ["a teacher", "a school", "a janitor", "a principal", "a college"],
                  ["answered a bully in front of class", "dropped homework for a year", "graduated with the students",
                   "replaced detention with yoga", "made tuition free"]),
    "science": (0.0, ["a physicist", "a robot", "a group of astronomers", "a twelve-year-old", "a lab"],
                ["explained time in one drawing", "learned to fold laundry", "found water on a small moon",
                 "built a working satellite", "grew a heart from stem cells"]),
    "justice": (-0.10, ["a judge", "a prisoner", "a police chief", "a jury", "a public defender"],
                ["sentenced himself for contempt", "earned a law degree", "walked with protesters",
                 "wrote to the man it convicted", "took on five hundred cases in a year"]),
}
_EVENTS = ["the Winter Olympics", "the Oscars", "the spring floods", "the budget fight", "the royal wedding",
           "the heat wave", "the World Cup", "the Mars landing", "the school shooting debate", "the midterm vote",
           "the Black Friday rush", "the holiday storm", "the Super Bowl", "the health law vote",
           "the marathon attack", "the primary debates", "the summer games", "the city blackout",
           "the wildfire season", "the convention week", "the hurricane", "the election night", "the recount",
           "the inauguration", "the March protests", "the spring strike", "the tax deadline", "the trade summit",
           "the Pride parade", "the big eclipse", "the summit in Paris", "the refugee crisis", "the recall vote",
           "the flu outbreak", "the space launch", "the transit strike"]


@dataclass
class ABDemoConfig:
    """One seeded A/B table (see the module docstring for the model)."""

    n_tests: int = field(default=6000, metadata={"help": "A/B tests (each shows 2-4 headlines)"})
    seed: int = field(default=3, metadata={"help": "random seed: the same config gives the same table"})
    shape: str = field(default="seasonal", metadata={"help": "the monthly confounder: 'seasonal' or 'trend'"})
    months: int = field(default=30, metadata={"help": "months the tests span"})
    start: str = field(default="2013-01-01", metadata={"help": "first month"})
    confounder_sd: float = field(default=0.35, metadata={"help": "sd of μ(m) across months (logit units)"})
    event_share: float = field(default=0.3, metadata={"help": "share of a month's tests about its news event"})
    base_impressions: float = field(default=4000.0, metadata={"help": "median impressions per package"})
    idiosyncratic_sd: float = field(default=0.15, metadata={
        "help": "sd of the part of a headline's true effect that its style does not explain (e_i)"})

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def monthly_confounder(config: ABDemoConfig) -> np.ndarray:
    """μ(m) for each month, scaled to sd `confounder_sd` (the seeded spikes of 'trend' come from the seed)."""
    m = np.arange(config.months, dtype=float)
    if config.shape == "seasonal":
        mu = np.sin(2 * np.pi * m / 12) + 1.5 * ((m % 24 >= 20) & (m % 24 <= 22))  # autumn of even years
    elif config.shape == "trend":
        mu = -1.5 * m / max(1, config.months - 1)
        spikes = np.random.default_rng(config.seed + 1000).choice(config.months, size=3, replace=False)
        mu[spikes] += 1.5
    else:
        raise ValueError(f"unknown confounder shape {config.shape!r}: choose one of {', '.join(AB_SHAPES)}")
    mu = mu - mu.mean()
    return mu / (mu.std() or 1.0) * config.confounder_sd


def simulate_ab(config: ABDemoConfig | None = None, **overrides) -> pd.DataFrame:
    """The A/B table: one row per package (columns in the module docstring), the same for the same config."""
    config = config or ABDemoConfig(**overrides)
    r = random.Random(config.seed)
    rng = np.random.default_rng(config.seed)
    mu = monthly_confounder(config)
    z = (mu - mu.mean()) / (mu.std() or 1.0)
    volume = np.exp(0.4 * z + rng.normal(0, 0.2, config.months))  # traffic per package moves with the months
    month_starts = pd.date_range(config.start, periods=config.months, freq="MS")
    events = r.sample(_EVENTS, min(config.months, len(_EVENTS)))
    styles = list(STYLES)
    rows = []
    for test in range(config.n_tests):
        month = int(rng.integers(config.months))
        created = month_starts[month] + pd.Timedelta(minutes=int(rng.integers(27 * 24 * 60)))
        if r.random() < config.event_share:
            topic, appeal = "news", 0.0
            subject = r.choice([f"people came together during {events[month % len(events)]}",
                                f"{events[month % len(events)]} changed one small town"])
        else:
            topic = r.choice(list(_TOPICS))
            appeal, who, what = _TOPICS[topic]
            subject = f"{r.choice(who)} {r.choice(what)}"
        weights = np.array([np.exp(STYLE_DRIFT.get(s, 0.0) * z[month]) for s in styles])
        chosen = rng.choice(len(styles), size=r.choice((2, 2, 3, 3, 4)), replace=False, p=weights / weights.sum())
        test_effect = mu[month] + appeal + rng.normal(0, 0.25)
        for k, index in enumerate(chosen):
            headline, effect = _headline(r, styles[index], subject)
            effect += rng.normal(0, config.idiosyncratic_sd)
            ctr = 1 / (1 + np.exp(-(-4.2 + test_effect + effect)))
            impressions = int(volume[month] * config.base_impressions * np.exp(rng.normal(0, 0.5))) + 100
            clicks = int(rng.binomial(impressions, ctr))
            rows.append({"test_id": f"t{test:05d}", "package_id": f"t{test:05d}-{k}", "headline": headline,
                         "impressions": impressions, "clicks": clicks, "ctr": clicks / impressions,
                         "created_at": created, "topic": topic, "true_effect": round(float(effect), 5)})
    return pd.DataFrame(rows)


def _headline(r: random.Random, style: str, subject: str) -> tuple[str, float]:
    """A headline of a style for a subject and its true effect (style + exclamation + capitals)."""
    effect, templates = STYLES[style]
    text = r.choice(templates).replace("{n}", str(r.choice((3, 5, 7, 9, 11)))).replace("{s}", subject)
    text = text.replace("{S}", subject[:1].upper() + subject[1:])
    if r.random() < 0.25:
        text, effect = text.rstrip("?.") + "!", effect + EXCLAIM_EFFECT
    if r.random() < 0.15:
        words = text.split()
        at = r.randrange(len(words))
        words[at] = words[at].upper()
        text, effect = " ".join(words), effect + CAPS_EFFECT
    return text, effect
