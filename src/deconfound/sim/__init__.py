"""The built-in simulation: the paper's MIND experiment rebuilt on a shipped sports-news corpus, with a
known truth, and the demo tables made from it.

Owns: the simulation (`simulate`), its corpus, its quality measure (VADER sentiment), its marker groups
and probe headlines, and the demo loader; the audits' demo tables (`qa_demo`: a Q&A log with a weekday
confounder; `ab_demo`: A/B tables in the Upworthy shape with a monthly traffic confounder; `audit_demos`: loading
them). May import: `data` (to load the demo). Nothing in the general path (causal, rewards, train, runs) imports
it; `evaluate.defaults` asks it about simulation runs only.
"""

from .demo import DEMO_ROLES, demo_csv, load_demo
from .demo import SCENARIOS as DEMO_SCENARIOS
from .markers import PROBE_TEMPLATES, is_simulation_data, team_marker_groups
from .sentiment import quality_scores
from .simulate import (REGIONS, SCENARIOS, TEAM_NAMES_BY_REGION, TEAM_REGION, TEAMS, TRUE_POPULARITY_COEF,
                       SimulationConfig, mentioned_region, simulate)
from .ab_demo import AB_ROLES, AB_SHAPES, STYLES, ABDemoConfig, monthly_confounder, simulate_ab
from .audit_demos import AUDIT_DEMOS, audit_demo_frame, audit_demo_roles, load_audit_demo
from .qa_demo import QA_ROLES, QA_WEEKDAY_EFFECT, QADemoConfig, simulate_qa
