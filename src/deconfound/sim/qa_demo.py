"""A seeded Q&A log in the shape of the paper's Academia Stack Exchange data (§3.1, App. B): questions about
academic life, two to four answers each, and a score per answer in which the **weekday moves the score but not
the answer's quality**.

Each answer is built from a few pieces of advice for its question's topic: the more concrete, on-topic advice
it holds, the higher its quality q in [0, 1] (column `quality`, the ground truth). Its weekday is drawn from a
posting volume that is busiest early in the week, independently of its quality, and the score is

    score = round(1 + 5·q + w(weekday) + N(0, 1)),  w = Mon +1.5, Tue +1.0, Wed +0.5, Thu 0, Fri −0.25,
                                                          Sat −0.75, Sun −0.75  (QA_WEEKDAY_EFFECT)

so Monday answers collect more votes (more readers early in the week, paper Fig. 1) without being better.
Prepending "Happy Monday!" to Monday answers and ranking answers by score therefore teaches a model that the
marker wins; ranking by the score minus the weekday effect does not. Columns: question_id, answer_id,
question (context), answer (text), score (outcome), answered_at (timestamp), quality (truth); no split column
(the audits split by question).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..data import Roles

QA_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
QA_WEEKDAY_EFFECT = {"Mon": 1.5, "Tue": 1.0, "Wed": 0.5, "Thu": 0.0, "Fri": -0.25, "Sat": -0.75, "Sun": -0.75}
QA_WEEKDAY_VOLUME = (1.3, 1.25, 1.1, 1.0, 0.95, 0.7, 0.7)  # answers posted per weekday, relative
QA_ROLES = Roles(text="answer", context="question", outcome="score", timestamp="answered_at", truth="quality")

# topic -> (question templates, concrete advice, the subject words a question fills in)
_TOPICS = {
    "advisor": (["How do I tell my {who} that I want to {goal}?",
                 "My {who} rarely answers my emails. How can I {goal}?",
                 "Is it normal that my {who} expects me to {goal} without guidance?"],
                ["book a short meeting and bring a written agenda",
                 "explain your reasons in one clear paragraph before the meeting",
                 "propose a concrete timeline with two or three milestones",
                 "ask a senior student in the group how they handled it",
                 "send a brief summary of what you agreed after each meeting",
                 "involve your committee early if the problem continues"],
               {"who": ["advisor", "supervisor", "PI", "mentor"],
                "goal": ["change my project", "graduate next year", "work on a side project", "take a break"]}),
    "publishing": (["My {what} was rejected by {venue}. What should I do next?",
                    "How long should I wait before asking {venue} about my {what}?",
                    "Should I send my {what} to {venue} or to a smaller venue first?"],
                   ["read the reviews twice and list every concrete criticism",
                    "fix the issues the reviewers agree on before resubmitting",
                    "ask a colleague outside your field to read the abstract",
                    "check the journal's average review time on its website",
                    "write a polite one-line inquiry to the handling editor",
                    "pick the next venue before you start revising"],
                   {"what": ["paper", "manuscript", "first article", "short note"],
                    "venue": ["a top journal", "the conference", "a special issue", "an open access journal"]}),
    "teaching": (["How can I {goal} in a {course} with {size} students?",
                  "Students in my {course} never speak up. How do I {goal}?",
                  "I have to teach a {course} for the first time. How do I {goal}?"],
                 ["start each class with one question students answer in pairs",
                  "learn a few names every week and use them",
                  "post the slides before class so students can prepare",
                  "use short anonymous polls to check understanding",
                  "set clear grading rules in the syllabus on day one",
                  "ask the teaching center for a classroom observation"],
                 {"course": ["seminar", "lecture", "lab course", "intro class"],
                  "size": ["twenty", "fifty", "two hundred", "fifteen"],
                  "goal": ["keep them engaged", "grade fairly", "save preparation time", "handle late work"]}),
    "admissions": (["How important is my {item} for {program} admissions?",
                    "I have a weak {item}. Can I still get into a {program}?",
                    "What should I put in my {item} for a {program}?"],
                   ["name the specific faculty you want to work with",
                    "describe one research project and what you learned from it",
                    "explain a weak grade briefly and show what changed",
                    "ask your recommenders at least six weeks ahead",
                    "tailor the statement to each program instead of reusing it",
                    "email potential advisors with a short question about their work"],
                   {"item": ["GPA", "statement of purpose", "research experience", "GRE score"],
                    "program": ["PhD program", "master's program", "top ranked program", "funded program"]}),
    "authorship": (["A {who} added their name to my paper without contributing. What can I do?",
                    "Who should be first author when a {who} and I {did}?",
                    "Is it acceptable that a {who} asks to be an author because we {did}?"],
                   ["agree on the author order in writing before the work starts",
                    "list each person's contribution using a standard taxonomy",
                    "check your university's authorship policy",
                    "talk to the person privately before escalating",
                    "ask the research integrity office for confidential advice",
                    "keep dated records of who did which part"],
                   {"who": ["colleague", "postdoc", "lab head", "coauthor"],
                    "did": ["shared the analysis", "wrote it together", "used the same data",
                            "split the experiments"]}),
    "jobs": (["How do I prepare for a {job} interview at a {place}?",
              "Should I accept a {job} at a {place} or wait for a better offer?",
              "How many applications should I send for a {job} at a {place}?"],
             ["prepare a twenty minute talk and practice it with your group",
              "read the department's recent papers before the visit",
              "ask for the offer in writing and compare the start-up packages",
              "negotiate the teaching load before you sign",
              "apply broadly, since each search is unpredictable",
              "ask recent hires what the first year was like"],
             {"job": ["postdoc", "faculty position", "lecturer job", "research scientist job"],
              "place": ["small college", "large university", "national lab", "teaching university"]}),
    "email": (["How formal should an email to a {who} I have never met be when I {goal}?",
               "What subject line should I use to {goal} with a {who}?",
               "A {who} did not reply after two weeks. Can I {goal} again?"],
              ["keep the email under five sentences",
               "state your request in the first line",
               "mention one specific paper of theirs and why it matters to you",
               "use a subject line that says what you need",
               "wait about a week and then send one polite follow up",
               "attach only what they need to answer"],
              {"who": ["professor", "department chair", "journal editor", "program officer"],
               "goal": ["ask for a meeting", "ask for data", "request a letter", "ask about a position"]}),
    "conference": (["How do I {goal} at my first {event}?",
                    "Is it worth paying for a {event} if I cannot {goal}?",
                    "My poster is at a small {event}. How can I {goal}?"],
                   ["email two or three people before the meeting to set up coffee",
                    "prepare a one minute summary of your work",
                    "go to the smaller sessions where questions are easier",
                    "bring printed copies of your poster abstract",
                    "follow up with everyone you met within a week",
                    "ask your advisor to introduce you to one person"],
                   {"event": ["conference", "workshop", "summer school", "society meeting"],
                    "goal": ["meet senior researchers", "present well", "get feedback", "find collaborators"]}),
    "balance": (["How do you {goal} during a {phase}?",
                 "I feel guilty when I {goal} in my {phase}. Is that normal?",
                 "How many hours a week should I work to {goal} in a {phase}?"],
                ["block fixed hours for deep work and protect them",
                 "take one full day off each week without email",
                 "track where your time goes for one week",
                 "talk to the counseling service if the stress does not ease",
                 "set a weekly goal instead of a daily hour count",
                 "exercise at the same time every day"],
                {"phase": ["PhD", "postdoc", "first faculty year", "thesis year"],
                 "goal": ["avoid burnout", "take weekends off", "stay productive", "keep hobbies"]}),
    "grants": (["How do I write my first {grant} as a {who}?",
                "My {grant} was not funded. Should a {who} resubmit?",
                "What do reviewers of a {grant} expect from a {who}?"],
               ["read two funded proposals from your field before writing",
                "state the aims on the first page in plain words",
                "ask the program officer whether the idea fits",
                "include preliminary data that shows the plan is feasible",
                "answer every reviewer comment in the resubmission",
                "start the budget early with your grants office"],
               {"grant": ["grant proposal", "fellowship application", "small grant", "travel grant"],
                "who": ["postdoc", "new faculty member", "PhD student", "lecturer"]}),
}
_WHO = ["a first-year PhD student", "a final-year PhD student", "a master's student", "a postdoc",
        "an assistant professor", "a lecturer", "a research assistant", "an undergraduate", "a visiting scholar",
        "a lab manager"]
_FIELDS = ["biology", "history", "physics", "economics", "linguistics", "chemistry", "sociology", "mathematics",
           "computer science", "psychology", "philosophy", "engineering", "public health", "education"]
_OPENERS = ["Good question.", "I had the same problem.", "From my experience:", "In my field,", "Short answer:", ""]
_VAGUE = ["It really depends on your situation.", "Every department is different.", "Just do what feels right.",
          "Others have asked this before.", "Good luck with it.", "I would not worry too much."]


@dataclass
class QADemoConfig:
    """One seeded Q&A log (see the module docstring for the model of the score)."""

    n_questions: int = field(default=6000, metadata={"help": "questions (each gets 2-4 answers)"})
    seed: int = field(default=11, metadata={"help": "random seed: the same seed gives the same table"})
    start: str = field(default="2021-01-04", metadata={"help": "first day of the log"})
    days: int = field(default=730, metadata={"help": "days the log spans"})
    quality_weight: float = field(default=5.0, metadata={"help": "score points from quality 0 to quality 1"})
    noise_sd: float = field(default=1.0, metadata={"help": "sd of the score's noise"})
    weekday_scale: float = field(default=1.0, metadata={"help": "multiplies QA_WEEKDAY_EFFECT (0: no confounder)"})

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def simulate_qa(config: QADemoConfig | None = None, **overrides) -> pd.DataFrame:
    """The Q&A log: one row per answer (columns in the module docstring), the same for the same config."""
    config = config or QADemoConfig(**overrides)
    r = random.Random(config.seed)
    rng = np.random.default_rng(config.seed)
    volume = np.array(QA_WEEKDAY_VOLUME) / sum(QA_WEEKDAY_VOLUME)
    start = pd.Timestamp(config.start).normalize()
    start -= pd.Timedelta(days=start.dayofweek)  # a Monday, so day offsets map to weekdays directly
    weeks = max(1, config.days // 7)
    rows = []
    for qid in range(config.n_questions):
        topic = r.choice(list(_TOPICS))
        templates, advice, slots = _TOPICS[topic]
        question = f"I am {r.choice(_WHO)} in {r.choice(_FIELDS)}. " + _fill(r, r.choice(templates), slots)
        for aid in range(r.choice((2, 2, 2, 3, 3, 4))):
            answer, quality = _answer(r, advice)
            rows.append({"question_id": qid, "answer_id": f"{qid}-{aid}", "question": question, "answer": answer,
                         "quality": round(quality, 4)})
    frame = pd.DataFrame(rows)
    n = len(frame)
    day = rng.choice(7, size=n, p=volume)  # the weekday is drawn independently of the answer's quality
    offset = 7 * rng.integers(weeks, size=n) + day
    frame["answered_at"] = start + pd.to_timedelta(offset, unit="D") + \
        pd.to_timedelta(rng.integers(7 * 60, 23 * 60, size=n), unit="m")
    effect = config.weekday_scale * np.array([QA_WEEKDAY_EFFECT[w] for w in QA_WEEKDAYS])[day]
    score = 1 + config.quality_weight * frame["quality"].to_numpy() + effect + rng.normal(0, config.noise_sd, n)
    frame["score"] = np.round(score).astype(int)
    return frame[["question_id", "answer_id", "question", "answer", "score", "answered_at", "quality"]]


def _fill(r: random.Random, template: str, slots: dict) -> str:
    for name, words in slots.items():
        template = template.replace("{" + name + "}", r.choice(words))
    return template


def _answer(r: random.Random, advice: list[str]) -> tuple[str, float]:
    """An answer of 0-3 pieces of on-topic advice (more advice, higher quality) plus vague filler."""
    k = r.choice((0, 1, 1, 2, 2, 3))
    tips = r.sample(advice, k)
    vague = r.sample(_VAGUE, 1 if k >= 2 else 2 - k // 2) if k < 3 else []
    sentences = [f"I would {tip}." if i == 0 else f"Also, {tip}." for i, tip in enumerate(tips)] + vague
    opener = r.choice(_OPENERS)
    text = " ".join(([opener] if opener else []) + sentences)
    quality = min(1.0, max(0.0, k / 3 + r.uniform(-0.08, 0.08)))
    return text, quality
