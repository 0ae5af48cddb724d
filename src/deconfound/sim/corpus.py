# ruff: noqa: E501
# (long template lines read better unbroken)
"""Word lists and templates for the simulated sports-news corpus (data only; see simulate.py).

Conventions the generator relies on:
- Every headline template holds ``{T}`` exactly once: the team's full name when the headline names
  a team, a team-free stand-in (``SUBJECT_STANDINS``) otherwise. Team rows and team-free rows share
  the same templates, so whether a headline names a team cannot change its sentiment.
- Names, teams, venues and stand-ins carry no VADER valence (a test checks this), so the sentiment of
  a text comes from the story words only.
- Abstract templates use past tense or "will", so any subject works without verb agreement.
- Headlines name at most one team; an opponent is only ever named in the abstract.

Slots (filled by simulate._Slots; a "_t" suffix gives title case, "_cap" a capital first letter):
T (headline subject); team, nick, team_poss (abstract subject: "the Sacramento Condors", "the
Condors", "Sacramento Condors"); opp, opp_nick; player, last, player2; coach, clast; speaker; pos;
stat / hstat (a stat line and its headline form); score, a_score; deficit; venue; day (the day
before publication), nextday, return_day; unit, unit_s, game, late, midgame, extra, post, title,
prize, award; body, a_body; n, n2 (< n), n3, nth, n2th; weeks, years, money, year0, year1,
year_end; round, round_n.
"""

# Sport -> region -> (city, nickname). Two teams per sport per region.
TEAMS_BY_SPORT = {
    "football": {
        "West": [("Sacramento", "Condors"), ("Boise", "Stallions")],
        "Central": [("Omaha", "Ironmen"), ("Tulsa", "Roughnecks")],
        "East": [("Hartford", "Commodores"), ("Richmond", "Generals")],
    },
    "basketball": {
        "West": [("Portland", "Pioneers"), ("Reno", "Coyotes")],
        "Central": [("Wichita", "Twisters"), ("Des Moines", "Drifters")],
        "East": [("Providence", "Monarchs"), ("Baltimore", "Bayhawks")],
    },
    "baseball": {
        "West": [("Fresno", "Sun Sox"), ("Tucson", "Javelinas")],
        "Central": [("Peoria", "Pilots"), ("Dayton", "Foundrymen")],
        "East": [("Albany", "Anchors"), ("Norfolk", "Clippers")],
    },
    "hockey": {
        "West": [("Spokane", "Glaciers"), ("Tacoma", "Tidesmen")],
        "Central": [("Madison", "Blizzard"), ("Fort Wayne", "Flyers")],
        "East": [("Syracuse", "Sentinels"), ("Newark", "Ironbound")],
    },
    "soccer": {
        "West": [("Eugene", "Timberjacks"), ("Santa Cruz", "Breakers")],
        "Central": [("Lincoln", "Harvesters"), ("Rockford", "Rangers")],
        "East": [("Trenton", "Mariners"), ("Worcester", "Wanderers")],
    },
}

SPORTS = tuple(TEAMS_BY_SPORT)

FIRST_NAMES = """Marcus Dante Eli Tomas Jalen Rafael Kenji Owen Malik Andre Luca Mateo Darius Caleb Nico
Isaiah Viktor Theo Jordan Mason Emeka Diego Hugo Reggie Cole Trey Javier Anton Desmond Felix
Gavin Ibrahim Julian Kofi Lamar Milan Noah Oscar Quinn Ramon Samir Terrence Xavier Yusuf Zane
Brandon Cedric Dmitri Ethan Franco Gabriel Henrik Ivan Jamal Kai Leon Marco Nate Omar Pablo
Roman Sergei Tyrell Wes Adrian Bruno Colby Deshawn Emil Fabian Grady Hassan Isak Jonah Kieran""".split()

SURNAMES = """Okafor Lindqvist Delgado Whitaker Nakamura Brennan Castillo Mbeki Kowalski Haddad Ferreira
Gallagher Ramirez Osei Petrov Sullivan Yamada Adeyemi Bergstrom Carrington Dubois Esposito
Fitzgerald Gutierrez Holloway Ibarra Jankowski Kaminski Lombardi Mendoza Novak Oyelaran Pruitt
Quintero Rasmussen Salazar Thibodeaux Underwood Valdez Wojcik Xiong Yilmaz Zielinski Abernathy
Bancroft Cisneros Dorsey Ellison Fontaine Grayson Hargrove Iverson Jorgensen Kessler Larsen
Maddox Nwosu Okonkwo Pemberton Quarles Rutherford Sandoval Tanaka Ulrich Vasquez Whitfield
Yates Zamora Alvarado Bishop Calloway Donovan Estrada Forsythe Greer Huxley Ingram Jefferson
Kincaid Lutz Mahoney Navarro Ortega Pacheco Redmond Stroud Tolliver Vance Wakefield Archer
Bellamy Crowder Dunleavy Eckert Fairbanks Gentry Hollis Irving Jarrett Keller Landry Merritt
Nolan Oakes Prescott Ridley Sutton Thornton Upshaw Villanueva Winslow Abara Bakari Chukwu Diallo
Eze Fofana Gyasi Hamdan Idowu Jabari Kamara Lungu Mensah Ndiaye Obi Pereira Queiroz Rocha Silva
Teixeira Uchenna Varga Horvath Szabo Nagy Kovacs Molnar Farkas Lindgren Sandberg Holm Dahl
Moreau Lefevre Girard Roux Bonnet Marchetti Conti Rinaldi Moretti Barone Keane Doyle Quinlan""".split()

# Team-free stand-ins for {T} in a headline that names no team (title case, plural like a nickname).
SUBJECT_STANDINS = [
    "League Leaders", "Last Year's Finalists", "Home Side", "Road Team",
    "Expansion Club", "Division Leaders", "Young Roster", "Veteran Squad",
    "Bottom Seed", "Small-Market Club", "Longtime Contenders",
]
# Team-free stand-ins for {team} / {nick} in an abstract that names no team.
ABSTRACT_STANDINS = ["the club", "the team", "the home side", "the league leaders", "the squad"]

VENUE_PREFIXES = """Riverside Lakeshore Harbor Union Memorial Heritage Summit Founders Centennial Granite
Northgate Southfield Bayview Westbrook Eastwood Cedar Maple Highland Meadow Canyon Prairie
Ironworks Foundry Depot Station Lakeview Crestview Pinecrest Oakridge Rivergate""".split()

_HITTERS = ["shortstop", "center fielder", "catcher", "first baseman", "third baseman",
            "left fielder"]
_SKATERS = ["defenseman", "center", "left wing", "winger"]

# Per-sport vocabulary. Number ranges are sampled by the generator. Each stat is the abstract's
# phrase, the headline's short form of the same numbers, the ranges of those numbers and the
# positions that make such a stat line (None: any); every position has at least one stat.
SPORT_WORDS = {
    "football": dict(
        positions=["quarterback", "running back", "wide receiver", "linebacker", "cornerback",
                   "tight end", "edge rusher", "kicker"],
        venue=["Stadium", "Field"], game="game", unit="points", late="fourth quarter",
        midgame="at halftime",
        extra="overtime", post="playoffs", post_adj="playoff", title="conference title",
        win_pts=(17, 45), margin=(1, 28), close=(3, 7), deficit=(10, 21),
        body=["knee", "ankle", "shoulder", "hamstring"],
        stats=[("threw for {x} yards and {y} touchdowns", "{y} Touchdown Passes",
                dict(x=(190, 420), y=(2, 5)), ["quarterback"]),
               ("ran for {x} yards and {y} touchdowns", "{x} Rushing Yards",
                dict(x=(85, 230), y=(2, 3)), ["running back"]),
               ("caught {y} passes for {x} yards", "{x} Receiving Yards",
                dict(x=(90, 210), y=(6, 13)), ["wide receiver", "tight end"]),
               ("had {y} sacks and a forced fumble", "{y} Sacks", dict(y=(2, 4)),
                ["linebacker", "edge rusher"]),
               ("had {y} interceptions", "{y} Interceptions", dict(y=(2, 3)), ["cornerback"]),
               ("made {y} field goals", "{y} Field Goals", dict(y=(3, 6)), ["kicker"])],
    ),
    "basketball": dict(
        positions=["point guard", "shooting guard", "small forward", "power forward", "center"],
        venue=["Arena", "Center"], game="game", unit="points", late="fourth quarter",
        midgame="at halftime",
        extra="overtime", post="playoffs", post_adj="playoff", title="division title",
        win_pts=(88, 131), margin=(1, 30), close=(2, 8), deficit=(12, 24),
        body=["ankle", "knee", "hamstring", "wrist", "back"],
        stats=[("scored {x} points", "{x} Points", dict(x=(24, 52)), None),
               ("had {x} points and {y} rebounds", "{x} Points, {y} Rebounds",
                dict(x=(18, 38), y=(10, 19)), ["small forward", "power forward", "center"]),
               ("finished with {x} points and {y} assists", "{x} Points",
                dict(x=(18, 38), y=(9, 16)), ["point guard", "shooting guard"]),
               ("made {y} three-pointers", "{y} Threes", dict(y=(6, 10)),
                ["point guard", "shooting guard", "small forward"])],
    ),
    "baseball": dict(
        positions=["starting pitcher", "shortstop", "center fielder", "catcher", "first baseman",
                   "third baseman", "closer", "left fielder"],
        venue=["Park", "Field"], game="game", unit="runs", late="ninth inning",
        midgame="after six innings",
        extra="extra innings", post="postseason", post_adj="postseason", title="pennant",
        win_pts=(3, 12), margin=(1, 8), close=(1, 2), deficit=(3, 6),
        body=["elbow", "shoulder", "oblique", "hamstring", "wrist"],
        stats=[("hit {y} home runs", "{y} Homers", dict(y=(2, 3)), _HITTERS),
               ("drove in {y} runs", "{y} RBIs", dict(y=(3, 6)), _HITTERS),
               ("went four for five with {y} doubles", "Four Hits", dict(y=(2, 3)), _HITTERS),
               ("recorded {y} strikeouts over seven innings", "{y} Strikeouts", dict(y=(8, 13)),
                ["starting pitcher"]),
               ("retired all six batters he faced", "Six Straight Outs", {}, ["closer"])],
    ),
    "hockey": dict(
        positions=["goaltender", "defenseman", "center", "left wing", "winger"],
        venue=["Arena", "Ice Center"], game="game", unit="goals", late="third period",
        midgame="after two periods",
        extra="overtime", post="playoffs", post_adj="playoff", title="division title",
        win_pts=(3, 7), margin=(1, 5), close=(1, 1), deficit=(2, 3),
        body=["knee", "shoulder", "groin", "ankle", "upper body"],
        stats=[("stopped {x} shots", "{x} Saves", dict(x=(28, 46)), ["goaltender"]),
               ("scored {y} goals", "{y} Goals", dict(y=(2, 3)), _SKATERS),
               ("had a goal and {y} assists", "{y} Assists", dict(y=(2, 3)), _SKATERS),
               ("scored twice on the power play", "Two Goals", {}, _SKATERS)],
    ),
    "soccer": dict(
        positions=["striker", "midfielder", "goalkeeper", "center back", "winger", "fullback"],
        venue=["Stadium", "Park"], game="match", unit="goals", late="second half",
        midgame="at halftime",
        extra="stoppage time", post="knockout rounds", post_adj="knockout-round",
        title="league title", win_pts=(2, 4), margin=(1, 3), close=(1, 1),
        deficit=(2, 2),
        body=["knee", "ankle", "hamstring", "calf", "foot"],
        stats=[("scored {y} goals", "{y} Goals", dict(y=(2, 2)),
                ["striker", "winger", "midfielder"]),
               ("set up {y} goals", "{y} Assists", dict(y=(2, 2)),
                ["midfielder", "winger", "fullback"]),
               ("made {x} saves", "{x} Saves", dict(x=(6, 11)), ["goalkeeper"]),
               ("scored a header and added an assist", "Goal", {}, ["striker", "center back"])],
    ),
}

AWARDS = ["player of the week", "player of the month", "rookie of the week",
          "rookie of the month"]

# Story types. tone: the story's direction. lead: the abstract's first sentence; detail: optional
# follow-ups. Headlines come in four levels: flat (neutral wording), mild and strong (wording in
# the story's direction) and counter (against it: a hopeful line on bad news, a worried one on good
# news). A headline only states facts that every lead of its story states (tests check the slots).
STORIES = {
    # ---------------------------------------------------------------- positive
    "win": dict(tone="positive", lead=[
        "{team} beat {opp} {score} on {day}, with {pos} {player} leading the way.",
        "{player} {stat} as {team} won {score} over {opp} on {day}.",
        "{team} took control early and beat {opp} {score} on {day} night behind {player}.",
        "Behind {pos} {player}, {team} beat {opp} {score} on {day} at {venue}.",
    ], detail=[
        "{last} {stat} in the {game}, and {nick} never trailed.",
        "It was the {n2th} win in the last {n} games for {nick}, who moved up in the standings.",
        "{nick} scored the first {deficit} {unit} and controlled the {game} from there.",
    ], flat=[
        "{T} Beat Rival {score} Behind {last}",
        "{last} Leads {T} Past Rival",
        "{T} Get Past Rival, {score}",
        "{T} Down Rival {score} on {day}",
    ], mild=[
        "{T} Win {score} Behind {last}",
        "{last}, {T} Earn Solid Win Over Rival",
        "{T} Win on {day} as {last} Leads Way",
        "{last} Helps {T} Win {score}",
    ], strong=[
        "{last} Brilliant as {T} Win Thriller {score}",
        "Superb {last} Powers {T} to Impressive Win",
        "{T} Celebrate Great Win Behind Outstanding {last}",
    ], counter=[
        "{T} Win Ugly, {score}",
        "Sloppy {T} Survive Scare to Beat Rival",
        "Shaky {T} Hang On Despite Poor Finish",
    ]),
    "comeback": dict(tone="positive", close=True, lead=[
        "{team} rallied from {deficit} {unit} down to beat {opp} {score} in {extra} on {day}.",
        "Trailing by {deficit} in the {late}, {team} came back to beat {opp} {score} in {extra}.",
        "{player} scored in {extra} as {team} came back from {deficit} {unit} down to beat {opp} {score}.",
    ], detail=[
        "{last} {stat}, including the go-ahead score.",
        "It was the biggest comeback of the season for {nick}, who had not led all night.",
        "{nick} scored the last {deficit} {unit} of regulation to force {extra}.",
    ], flat=[
        "{T} Rally Past Rival {score} in {extra_t}",
        "{T} Come Back From {deficit} Down to Beat Rival",
        "{T} Erase {deficit}-{unit_s_t} Gap, Beat Rival in {extra_t}",
    ], mild=[
        "{T} Win in {extra_t} After Late Rally",
        "{T} Rally From {deficit} Down to Win {score}",
        "Comeback Win for {T} in {extra_t}",
    ], strong=[
        "{T} Stage Stunning Comeback for Thrilling Win",
        "Incredible Rally Lifts {T} to Amazing {extra_t} Win",
        "{T} Celebrate Brilliant Comeback, Win {score} in {extra_t}",
    ], counter=[
        "{T} Escape After Awful Start Nearly Costs Them",
        "{T} Survive Scare in {extra_t} After Sluggish Start",
    ]),
    "record": dict(tone="positive", lead=[
        "{player} {stat} to set a franchise record as {team} beat {opp} {score} on {day}.",
        "{team_poss} {pos} {player} set a franchise record on {day} when he {stat} in {a_score} win over {opp}.",
    ], detail=[
        "The old record had belonged to a {pos} from the {year0} team.",
        "Fans gave {last} a standing ovation, and {nick} stopped the {game} to present him the ball.",
        "It was the most by any player in the league this season.",
    ], flat=[
        "{last} Sets {T} Franchise Record With {hstat}",
        "{last} Posts {hstat}, a {T} Record",
        "{hstat}: {last} Breaks {T} Mark",
    ], mild=[
        "{last} Sets Record as {T} Win {score}",
        "Record Night for {last} Helps {T} Win",
        "{T} Win as {last} Sets Record With {hstat}",
    ], strong=[
        "Historic Night: Brilliant {last} Sets Record in {T} Win",
        "{last} Makes History With Superb {hstat} for Winning {T}",
        "{T} Celebrate {last}'s Amazing Record-Breaking Night",
    ], counter=[
        "{last} Sets Record, but {T} Defense Still Worrisome",
        "Record for {last} Overshadowed by {T} Sloppy Play",
    ]),
    "streak": dict(tone="positive", lead=[
        "{team} extended their winning streak to {n} games with {a_score} win over {opp} on {day}.",
        "{team} won for the {nth} straight time on {day}, beating {opp} {score} at {venue}.",
        "{player} {stat} as {team} beat {opp} {score} for their {nth} straight win.",
    ], detail=[
        "{nick} have not lost in nearly a month and now lead the division by {n2} games.",
        "Coach {coach} credited the defense, which has allowed the fewest {unit} in the league during the run.",
        "It is the longest streak for {nick} in {years} years.",
    ], flat=[
        "{T} Stretch Streak to {n} Games",
        "{T} Extend Run to {n} With {score} Result",
        "{T} Make It {n} Straight",
    ], mild=[
        "{T} Win {nth} Straight, Beat Rival {score}",
        "{T} Keep Winning, Streak Reaches {n}",
        "{T} Win Again for {n} in a Row",
    ], strong=[
        "Red-Hot {T} Win {nth} Straight in Impressive Fashion",
        "{T} Celebrate {nth} Straight Win With Great Performance",
        "Brilliant {T} Win Again, Streak Reaches {n}",
    ], counter=[
        "{T} Extend Streak but Worry About Sloppy Defense",
        "{T} Streak Hits {n}, but Defense Worries Remain",
    ]),
    "clinch": dict(tone="positive", lead=[
        "{team} clinched {prize} with {a_score} win over {opp} on {day}.",
        "{team} wrapped up {prize} on {day}, beating {opp} {score} behind {pos} {player}.",
        "With {a_score} win against {opp} on {day}, {team} secured {prize} for the first time in {years} years.",
    ], detail=[
        "Players celebrated on the field at {venue} as fans chanted for coach {coach}.",
        "{nick} will rest several starters in the final week of the regular season.",
        "Coach {coach} called it the best moment of his career.",
    ], flat=[
        "{T} Clinch {prize_t}",
        "{T} Lock Up {prize_t} With {score} Result",
        "{T} Wrap Up {prize_t} on {day}",
    ], mild=[
        "{T} Clinch {prize_t} With Win Over Rival",
        "{T} Secure {prize_t} in {score} Win",
        "{T} Win Their Way to {prize_t}",
    ], strong=[
        "{T} Celebrate Glorious Night, Clinch {prize_t}",
        "Joy for {T} as Great Win Seals {prize_t}",
        "{T} Clinch {prize_t} as Thrilled Fans Celebrate",
    ], counter=[
        "{T} Clinch {prize_t} Despite Sloppy Night",
        "{T} Limp to {prize_t} After Worrisome Month",
    ]),
    "return": dict(tone="positive", lead=[
        "{player} returned from a {weeks}-week absence with {a_body} injury and {stat} in {a_score} win for {team}.",
        "Back in the lineup after missing {weeks} weeks with {a_body} injury, {team_poss} {pos} {player} helped beat {opp} {score}.",
    ], detail=[
        "{last} said the {body} felt fine and that he was happy to be back with {nick}.",
        "Coach {coach} said the medical staff cleared {last} on {day} morning.",
        "{nick} went {n2}-{n3} while {last} was out.",
    ], flat=[
        "{last} Returns to {T} Lineup After {weeks} Weeks",
        "{last} Back for {T} After {body_t} Injury",
        "{T} Get {last} Back, Beat Rival {score}",
    ], mild=[
        "{last} Returns, Helps {T} Win {score}",
        "Healthy Again, {last} Boosts {T}",
        "{T} Welcome Back {last} in {score} Win",
    ], strong=[
        "{last} Makes Triumphant Return as {T} Win",
        "Great to Be Back: {last} Brilliant in {T} Win",
        "{T} Thrilled as {last} Dazzles in Superb Return",
    ], counter=[
        "{last} Returns, but {T} Still Worried About {body_t}",
        "{last} Back for {T}, Though Doubts Linger",
    ]),
    "award": dict(tone="positive", lead=[
        "{team_poss} {pos} {player} was named the league's {award} on {day} after he {stat}.",
        "The league named {player} of {team} its {award} on {day}.",
        "{player}, the {pos} for {team}, was named {award} by the league on {day}.",
    ], detail=[
        "{last} is the first player from {nick} to win the award since {year0}.",
        "Coach {coach} said {last} has earned it with his work in practice every day.",
        "{last} thanked his teammates and said the award belongs to the whole locker room.",
    ], flat=[
        "{last} of {T} Named {award_t}",
        "{award_t}: {last} of {T}",
        "{T} Player {last} Is {award_t}",
    ], mild=[
        "{last} Wins {award_t} Award for {T}",
        "{T} Player {last} Honored by League",
        "{last} Earns {award_t} Nod, Boosting {T}",
    ], strong=[
        "{last} Proud, Grateful After Winning Award With {T}",
        "{T} Celebrate {last}'s Well-Deserved Honor",
        "Brilliant {last} of {T} Earns Top Honor",
    ], counter=[
        "{last} Honored, but {T} Keep Losing",
        "Award for {last} Cannot Hide {T} Struggles",
    ]),
    "extension": dict(tone="positive", lead=[
        "{team} signed {pos} {player} to a {years}-year, ${money} million contract extension on {day}.",
        "{player} agreed to a {years}-year, ${money} million extension with {team} on {day}.",
        "{team} locked up {pos} {player} on {day} with a new {years}-year deal worth ${money} million.",
    ], detail=[
        "{last} said he is excited to stay with {nick} and to keep building something special.",
        "{last} {stat} in his best game last season and has been one of the top players at his position.",
        "The deal makes {last} the highest-paid player in team history.",
    ], flat=[
        "{T} Sign {last} to {years}-Year Extension",
        "{last}, {T} Agree on ${money} Million Deal",
        "{T} Extend {last} Through {year_end}",
    ], mild=[
        "{T} Secure {last} With Long-Term Deal",
        "{last} Happy to Stay With {T}",
        "{T} Reward {last} With ${money} Million Contract",
    ], strong=[
        "{T} Celebrate as Beloved {last} Signs Big Extension",
        "{last} Thrilled, Grateful After Huge {T} Deal",
        "Great News for {T}: {last} Commits Through {year_end}",
    ], counter=[
        "{T} Pay {last} ${money} Million Despite Injury Worries",
        "{T} Extension for {last} Draws Criticism",
    ]),
    # ---------------------------------------------------------------- negative
    "loss": dict(tone="negative", lead=[
        "{team} lost {score} to {opp} on {day}, their worst defeat of the season.",
        "{opp} beat {team} {score} on {day} at {venue}, and {pos} {player} was held in check.",
        "{team} fell behind early and were beaten {score} by {opp} on {day} night.",
    ], detail=[
        "{nick} committed {n2} turnovers and never found a rhythm.",
        "It was the {n2th} loss in {n} games for {nick}, who have dropped in the standings.",
        "Fans booed as {nick} trailed by {deficit} {unit} {midgame}.",
    ], flat=[
        "{T} Fall to Rival {score}",
        "{T} Drop {day} Game, {score}",
        "Rival Beats {T} {score} on {day}",
    ], mild=[
        "{T} Lose {score} in Rough Night",
        "{T} Beaten Badly, Fall to Rival",
        "{T} Struggle in {score} Loss",
    ], strong=[
        "{T} Embarrassed in Ugly {score} Defeat",
        "Disaster on {day}: {T} Humiliated in Worst Loss of Season",
        "{T} Suffer Brutal, Painful Loss; Fans Angry",
    ], counter=[
        "{T} Lose but Take Positives Into Next Week",
        "Despite Loss, {T} Encouraged by Strong Finish",
    ]),
    "collapse": dict(tone="negative", close=True, lead=[
        "{team} blew a {deficit}-{unit_s} lead in the {late} and lost {score} to {opp} in {extra}.",
        "{opp} scored the last {deficit} {unit} of regulation and beat {team} {score} in {extra} on {day}.",
        "{team} let a {deficit}-{unit_s} lead slip away on {day}, falling {score} to {opp} in {extra}.",
    ], detail=[
        "{nick} missed a chance to seal it in the final minute and never recovered.",
        "Coach {coach} called the finish unacceptable and said players must take responsibility.",
        "It was the {n2th} time this season {nick} have lost after leading in the {late}.",
    ], flat=[
        "{T} Lose Late Lead, Fall {score} in {extra_t}",
        "Rival Rallies to Beat {T} in {extra_t}",
        "{T} Give Up {deficit}-{unit_s_t} Lead, Lose {score}",
    ], mild=[
        "{T} Collapse Late, Lose in {extra_t}",
        "{T} Let Win Slip Away in Frustrating Finish",
        "Late Mistakes Cost {T} in {score} Loss",
    ], strong=[
        "{T} Suffer Stunning Collapse in Painful Defeat",
        "Heartbreaking: {T} Blow Big Lead, Lose in {extra_t}",
        "{T} Fans Furious After Disastrous Late Collapse",
    ], counter=[
        "{T} Lose in {extra_t} but Encouraged by Improved Play",
        "Despite Loss, {T} Confident They Will Bounce Back",
    ]),
    "injury": dict(tone="negative", lead=[
        "{team_poss} {pos} {player} will miss {weeks} weeks with {a_body} injury suffered on {day}.",
        "{team} placed {pos} {player} on injured reserve on {day} with {a_body} injury that will keep him out {weeks} weeks.",
        "{player}, the {pos} for {team}, is expected to miss {weeks} weeks after injuring his {body} on {day}.",
    ], detail=[
        "{last} {stat} in his best game this season and is one of the team's top players.",
        "Coach {coach} said the injury is a serious blow and that {nick} will need others to step up.",
        "Tests showed damage that may require surgery.",
    ], flat=[
        "{T} {pos_t} {last} Out {weeks} Weeks",
        "{last} Expected to Miss {weeks} Weeks for {T}",
        "{T} Place {last} on Reserve List",
    ], mild=[
        "{T} Lose {last} to {body_t} Injury",
        "Injury Sidelines {T} {pos_t} {last} {weeks} Weeks",
        "{T} Worried After {last} Hurt",
    ], strong=[
        "Devastating Blow: {T} Lose Injured {last} for {weeks} Weeks",
        "{T} Heartbroken as Injured {last} Faces Long Absence",
        "Terrible News for {T}: {last} Badly Hurt",
    ], counter=[
        "{T} Confident {last} Will Return Strong",
        "Good News for {T}: {last} Injury Not as Bad as Feared",
    ]),
    "injury_game": dict(tone="negative", lead=[
        "{pos} {player} of {team} left the {game} against {opp} on {day} with {a_body} injury and did not return.",
        "{team_poss} {pos} {player} was helped off in the {late} on {day} after hurting his {body} against {opp}.",
    ], detail=[
        "{opp} won the {game} {score}.",
        "Coach {coach} said {last} will have tests on {nextday}.",
        "{last} had missed only {n3} games in the last {years} seasons.",
    ], flat=[
        "{last} Leaves {T} Game With {body_t} Issue",
        "{T} {pos_t} {last} Exits Early on {day}",
        "{T} Await Tests on {last}'s {body_t}",
    ], mild=[
        "{T} Lose {last} to {body_t} Injury",
        "{last} Hurt as {T} Face Rival",
        "{T} Worried After {last} Injured",
    ], strong=[
        "Awful Scene as {T} Star {last} Badly Hurt",
        "{T} Fear the Worst After Painful {last} Injury",
        "Terrible Blow for {T}: {last} Hurt, Helped Off",
    ], counter=[
        "{T} Hopeful {last} Injury Is Minor",
        "Good News Hoped for as {T} Wait on {last}",
    ]),
    "suspension": dict(tone="negative", lead=[
        "The league suspended {team_poss} {pos} {player} for {n2} games on {day} for violating its conduct policy.",
        "{team_poss} {pos} {player} was suspended {n2} games by the league on {day} after a fight during a loss to {opp}.",
    ], detail=[
        "{last} apologized in a statement and said he regrets his actions.",
        "Coach {coach} declined to comment, saying the matter is with the league.",
        "{last} will be eligible to return on {return_day}.",
    ], flat=[
        "League Suspends {T} {pos_t} {last} {n2} Games",
        "{T} Will Be Without {last} for {n2} Games",
        "{last} of {T} Gets {n2}-Game Ban",
    ], mild=[
        "{last} Suspended, Another Blow for {T}",
        "{T} Lose {last} to {n2}-Game Suspension",
        "{T} {pos_t} {last} Suspended After League Ruling",
    ], strong=[
        "Shocking: {T} Star {last} Banned {n2} Games",
        "{T} Furious, Embarrassed as {last} Suspended",
        "Angry Fans Turn on {last} After Ugly {T} Suspension",
    ], counter=[
        "{T} Confident {last} Will Return Stronger",
        "{T} Support {last}, Hope to Move Forward",
    ]),
    "investigation": dict(tone="negative", lead=[
        "{team} are under league investigation over allegations of improper payments to players, the league said on {day}.",
        "The league opened an investigation into {team} on {day} over allegations that the club broke salary rules.",
    ], detail=[
        "The team could face fines and the loss of draft picks if the allegations are confirmed.",
        "Coach {coach} declined to comment, saying the matter is with the league.",
        "{nick} said in a statement that they would cooperate fully.",
    ], flat=[
        "{T} Under League Investigation",
        "League Opens Investigation Into {T}",
        "{T} Face League Probe Over Payments",
    ], mild=[
        "{T} Hit With Allegations of Improper Payments",
        "{T} Could Lose Draft Picks in League Probe",
        "Trouble for {T} as League Investigates",
    ], strong=[
        "Shocking Scandal Rocks {T}",
        "{T} Disgraced as Ugly Scandal Widens",
        "Angry Fans Turn on {T} Amid Awful Scandal",
    ], counter=[
        "{T} Confident They Will Be Cleared",
        "{T} Hopeful of Good Outcome in League Probe",
    ]),
    "arrest": dict(tone="negative", lead=[
        "{team_poss} {pos} {player} was arrested on {day} and charged with assault, police said.",
        "Police arrested {player}, the {pos} for {team}, on {day} after a fight outside a restaurant.",
    ], detail=[
        "{nick} said they are aware of the situation and are gathering information.",
        "{last} was released on bail and is due in court next month.",
        "The league said it is reviewing the matter.",
    ], flat=[
        "{T} {pos_t} {last} Arrested",
        "Police Arrest {T} Player {last}",
        "{T} Gathering Information After {last} Arrest",
    ], mild=[
        "{T} {pos_t} {last} Arrested After Fight",
        "{last} Arrest Adds to {T} Troubles",
        "{T} Star {last} Faces Assault Charge",
    ], strong=[
        "Shocking Arrest: {T} Star {last} Charged With Assault",
        "{T} Embarrassed, Angry After Ugly {last} Arrest",
        "Disgraceful Night Leaves {T} in Crisis",
    ], counter=[
        "{T} Support {last}, Hope for Fair Outcome",
        "{last}'s Lawyer Confident {T} Player Will Be Cleared",
    ]),
    "firing": dict(tone="negative", lead=[
        "{team} fired head coach {coach} on {day} after a {n2}-{n3} start to the season.",
        "Coach {coach} was fired by {team} on {day}, a day after {a_score} loss to {opp} dropped the team to {n2}-{n3}.",
        "{team} dismissed coach {coach} on {day} with the team at {n2}-{n3} and named assistant {player2} interim coach.",
    ], detail=[
        "{nick} had lost {n2} of their last {n} games and sat near the bottom of the standings.",
        "The front office said the results were unacceptable and promised a wide search.",
        "{clast} had {years} years left on his contract.",
    ], flat=[
        "{T} Part Ways With Coach {clast}",
        "{clast} Out as {T} Coach After {n2}-{n3} Start",
        "{T} Make Coaching Change at {n2}-{n3}",
    ], mild=[
        "{T} Fire Coach {clast} After Poor Start",
        "{T} Dismiss {clast} Amid Struggles",
        "{clast} Fired as {T} Slide Continues",
    ], strong=[
        "{T} Fire {clast} After Disastrous, Embarrassing Start",
        "Chaos for {T}: {clast} Fired Amid Crisis",
        "Angry {T} Owner Fires {clast} After Miserable Start",
    ], counter=[
        "{T} Optimistic After Coaching Change",
        "Fresh Start: {T} Hope New Coach Sparks Turnaround",
    ]),
    "slump": dict(tone="negative", lead=[
        "{team} lost their {nth} straight {game} on {day}, falling {score} to {opp}.",
        "The losing streak for {team} reached {n} games with {a_score} loss to {opp} on {day}.",
        "{team} have now lost {n} in a row after {opp} beat them {score} on {day}.",
    ], detail=[
        "{nick} have trailed {midgame} in {n2} of those losses.",
        "Coach {coach} said the locker room is frustrated but still believes in the plan.",
        "{pos} {player} scored late, but it was not enough for {nick}.",
    ], flat=[
        "{T} Drop {nth} Straight",
        "{T} Skid Reaches {n} Games",
        "Rival Beats {T} {score} for {nth} Straight Time",
    ], mild=[
        "Losing Streak for {T} Hits {n}",
        "Struggles Continue for {T} With {score} Loss",
        "{T} Lose Again; Frustration Grows",
    ], strong=[
        "Miserable {T} Lose {nth} Straight in Ugly Fashion",
        "{T} Crisis Deepens With Another Awful Defeat",
        "Worst Slump in Years: {T} Lose Again, Fans Furious",
    ], counter=[
        "{T} Lose but Remain Confident Turnaround Is Near",
        "{T} Hopeful Despite {n}-{game_t} Skid",
    ]),
    "eliminated": dict(tone="negative", lead=[
        "{team} were knocked out of the {post} on {day} with {a_score} loss to {opp}.",
        "{opp} eliminated {team} from the {post} on {day}, winning the deciding {game} {score}.",
        "The season ended for {team} on {day} as {opp} beat them {score} in the {post}.",
    ], detail=[
        "{pos} {player} played what may be his final {game} with {nick}.",
        "{nick} had not reached the second round in {years} years.",
        "Coach {coach} said he was proud of the group but disappointed in the result.",
    ], flat=[
        "{T} Season Ends in {score} Result",
        "{T} Out of {post_t} After {day} {game_t}",
        "Rival Eliminates {T} From {post_t}",
    ], mild=[
        "{T} Eliminated, Lose {score}",
        "{T} Knocked Out of {post_t} After Poor Start",
        "{T} Fall Short, Lose Deciding {game_t}",
    ], strong=[
        "Heartbreak for {T}: Season Ends in Bitter Defeat",
        "{T} Crash Out in Disappointing, Painful Loss",
        "Dismal {T} Eliminated as Fans Boo Team Off",
    ], counter=[
        "{T} Proud of Season Despite Exit",
        "Bright Future Ahead for {T} Despite {post_t} Exit",
    ]),
    "trade_request": dict(tone="negative", lead=[
        "{team_poss} {pos} {player} publicly criticized the front office on {day} and asked to be traded.",
        "{player}, the {pos} for {team}, asked the club for a trade on {day}, his agent said.",
    ], detail=[
        "{last} said he is unhappy with his role and does not trust the coaching staff.",
        "Teammates said the tension has been building for weeks.",
        "Coach {coach} said the issue will be handled inside the locker room.",
    ], flat=[
        "{last} Asks {T} for Trade",
        "{T} {pos_t} {last} Requests Trade",
        "{last} Wants Out of {T}",
    ], mild=[
        "Unhappy {last} Asks {T} for Trade",
        "Tension Grows Between {last} and {T}",
        "{last} Criticizes {T} Front Office, Asks Out",
    ], strong=[
        "Ugly Feud: Angry {last} Blasts {T}, Demands Trade",
        "{T} Locker Room in Chaos After Bitter {last} Outburst",
        "Toxic Mess at {T} as Furious {last} Lashes Out",
    ], counter=[
        "{T} Hopeful Talks With {last} Will Help",
        "{T} Confident They Can Resolve {last} Situation",
    ]),
    "spat": dict(tone="negative", lead=[
        "{pos} {player} and coach {coach} of {team} argued on the sideline during {a_score} loss to {opp} on {day}.",
        "{team_poss} {pos} {player} and coach {coach} exchanged words on the bench in {a_score} loss to {opp} on {day}.",
    ], detail=[
        "Television cameras caught the exchange, and the two did not speak after the {game}.",
        "{last} said afterward that he was frustrated with his playing time.",
        "{clast} said the issue will be handled inside the locker room.",
    ], flat=[
        "{last}, Coach {clast} Exchange Words as {T} Lose",
        "{T} {pos_t} {last} and {clast} Argue on Sideline",
        "{last} and {clast} in Sideline Exchange for {T}",
    ], mild=[
        "Tension for {T} as {last}, {clast} Argue",
        "Frustrated {last} Clashes With {T} Coach",
        "{T} Lose {score} as {last} and {clast} Argue",
    ], strong=[
        "Ugly Scene: {last} Fights With Coach as {T} Lose",
        "{T} in Chaos After Angry Sideline Blowup",
        "Toxic Mess for {T} as {last} and {clast} Clash",
    ], counter=[
        "{last} and {clast} Say {T} Remain United",
        "{T} Confident They Will Move Past Sideline Spat",
    ]),
    # ---------------------------------------------------------------- neutral
    "preview": dict(tone="neutral", next=False, lead=[
        "{team} will host {opp} on {nextday} at {venue} in a matchup between division rivals.",
        "{team} will visit {opp} on {nextday}, looking to move up in the standings.",
        "{team} and {opp} meet on {nextday}, the first of {n2} meetings this season.",
    ], detail=[
        "{pos} {player} is expected to start for {nick}.",
        "{nick} are {n}-{n2} at home this season.",
        "The {game} starts in the evening and will air on regional television.",
    ], flat=[
        "Preview: {T} Meet Rival on {nextday}",
        "What to Watch as {T} Face Rival on {nextday}",
        "{T} vs. Rival: Keys to the {game_t}",
    ], mild=[
        "{T} Face Tough Test on {nextday}",
        "{T} Eager for Big Matchup With Rival",
        "{T} Ready for Rival on {nextday}",
    ], strong=[
        "{T} Confident, Excited Ahead of Huge Showdown",
        "Big Test Looms as {T} Face Dangerous Rival",
    ], counter=[
        "{T} Look to Avoid Upset on {nextday}",
        "{T} Hope to Build Momentum Against Rival",
    ]),
    "schedule": dict(tone="neutral", lead=[
        "{team} released their {year1} schedule on {day}, with {n2} of their first {n} games on the road.",
        "The league announced the {year1} schedule on {day}, and {team} will play {n2} of their first {n} games on the road.",
    ], detail=[
        "The season opener is against {opp} at {venue}.",
        "{nick} will play {n3} night games and have {n2} stretches of three games in four days.",
        "Single-game tickets go on sale next month.",
    ], flat=[
        "{T} Release {year1} Schedule",
        "{T} Open {year1} With {n2} of First {n} on Road",
        "{year1} Schedule Released: {T} Start on the Road",
    ], mild=[
        "{T} Face Tough Early Schedule",
        "{T} Get Favorable Slate for {year1}",
        "Five Takeaways From the {T} Schedule",
    ], strong=[
        "Brutal Road Trip Awaits {T} in {year1}",
        "{T} Fans Excited as Great {year1} Slate Revealed",
    ], counter=[
        "{T} Schedule Could Be Trouble Early",
        "{T} Happy With Balanced {year1} Schedule",
    ]),
    "trade_away": dict(tone="neutral", lead=[
        "{team} traded {pos} {player} to {opp} on {day} for a {round}-round pick.",
        "{player} is headed to {opp} after {team} traded the {pos} for a {round}-round pick on {day}.",
    ], detail=[
        "{last} {stat} in his best game last season and has {years} years left on his contract.",
        "The move clears salary space for {nick} ahead of the deadline.",
        "{last} will report to his new team on {nextday}.",
    ], flat=[
        "{T} Trade {last} for {round_t}-Round Pick",
        "{T} Deal {pos_t} {last}",
        "{last} Dealt as {T} Make Deadline Move",
    ], mild=[
        "{T} Move {last} in Salary Deal",
        "Trade Sends {last} Away From {T}",
        "{T} Part With {last}, Add Draft Pick",
    ], strong=[
        "{T} Fans Angry After Team Trades Popular {last}",
        "{T} Win Trade, Get Great Value for {last}",
    ], counter=[
        "{T} Trade {last} in Deal That Raises Questions",
        "{T} Happy With Return for {last}",
    ]),
    "trade_acquire": dict(tone="neutral", lead=[
        "{team} acquired {pos} {player} from {opp} on {day} in exchange for two prospects.",
        "{team} traded two prospects to {opp} on {day} for {pos} {player}.",
    ], detail=[
        "{last} {stat} in his best game last season and has {years} years left on his contract.",
        "{last} will join {nick} on {nextday}.",
        "The deal was completed hours before the trade deadline.",
    ], flat=[
        "{T} Acquire {pos_t} {last} in Trade",
        "{T} Get {last} for Two Prospects",
        "{last} Heads to {T} in Deadline Deal",
    ], mild=[
        "{T} Add Depth With Trade for {last}",
        "{T} Land {last} in Deadline Deal",
        "{T} Give Up Prospects for {last}",
    ], strong=[
        "{T} Land Talented {last} in Smart Trade",
        "Angry {T} Fans Criticize Costly {last} Trade",
    ], counter=[
        "{T} Trade for {last} Raises Questions",
        "{T} Excited to Add {last} Before Deadline",
    ]),
    "signing": dict(tone="neutral", lead=[
        "{team} signed {pos} {player} to a one-year deal on {day}.",
        "{player}, a veteran {pos}, signed a one-year contract with {team} on {day}.",
    ], detail=[
        "{last} played {n} games last season for {opp}.",
        "To make room, {nick} moved a reserve {pos} to the practice squad.",
        "{last} is expected to wear number {n3}{n2}.",
    ], flat=[
        "{T} Sign {pos_t} {last} to One-Year Deal",
        "{last} Signs With {T}",
        "{T} Add {pos_t} {last}",
    ], mild=[
        "{T} Add Veteran {last} for Depth",
        "{T} Bring In {last} on Short Deal",
        "{last} Joins {T} on One-Year Contract",
    ], strong=[
        "{T} Land Talented {last} in Smart Signing",
        "{T} Fans Excited by {last} Signing",
    ], counter=[
        "{T} Signing of {last} Raises Doubts",
        "{last} Happy to Get Chance With {T}",
    ]),
    "waived": dict(tone="neutral", lead=[
        "{team} waived {pos} {player} on {day} to make room on the roster.",
        "{team} released {pos} {player} on {day} in a roster move.",
    ], detail=[
        "{last} played {n} games this season.",
        "{nick} also moved a reserve {pos} to the active roster.",
        "{last} is free to sign with any team.",
    ], flat=[
        "{T} Waive {pos_t} {last}",
        "{T} Release {last} in Roster Move",
        "{last} Let Go by {T}",
    ], mild=[
        "{T} Cut {last} as Roster Battle Heats Up",
        "{T} Make Room, Waive {last}",
        "{T} Move On From {last}",
    ], strong=[
        "Tough Day for {last} as {T} Let Him Go",
        "{T} Cut Popular {last}; Fans Upset",
    ], counter=[
        "{T} Roster Move Raises Doubts",
        "{last} Thanks {T} After Release",
    ]),
    "callup": dict(tone="neutral", lead=[
        "{team} called up {pos} {player} from their minor league affiliate on {day}.",
        "{pos} {player} was called up by {team} on {day} from the club's minor league team.",
    ], detail=[
        "{last} {stat} in a recent minor league {game}.",
        "To make room, {nick} sent a reserve {pos} down.",
        "{last} could make his debut on {nextday}.",
    ], flat=[
        "{T} Call Up {last}",
        "{T} Recall {pos_t} {last} From Minors",
        "{last} Called Up by {T}",
    ], mild=[
        "{T} Give {last} a Shot With Call-Up",
        "{last} Gets Call From {T}",
        "{T} Add {last} From Minors",
    ], strong=[
        "{T} Promote Promising {last}; Fans Excited",
        "Big Chance for Talented {last} With {T}",
    ], counter=[
        "{T} Call-Up of {last} Raises Questions",
        "{last} Happy to Get Chance With {T}",
    ]),
    "draft": dict(tone="neutral", lead=[
        "{team} selected {pos} {player} with the {n2th} pick in the {round} round of the draft on {day}.",
        "With the {n2th} pick in the {round} round on {day}, {team} took {pos} {player}.",
    ], detail=[
        "{last} played {n3} seasons at a small college program.",
        "{nick} had {n} picks in the draft and used {n2} of them on defense.",
        "Coach {coach} said {last} will join the team for minicamp next month.",
    ], flat=[
        "{T} Draft {pos_t} {last} in Round {round_n}",
        "{T} Select {last} With {round_t}-Round Pick",
        "{T} Take {pos_t} {last} in Draft",
    ], mild=[
        "{T} Add Prospect {last} in Draft",
        "{T} Use {round_t}-Round Pick on {last}",
        "Draft Grades: {T} Take Chance on {last}",
    ], strong=[
        "{T} Thrilled to Land Top Prospect {last}",
        "{T} Draft Pick Draws Criticism From Angry Fans",
    ], counter=[
        "Questions Surround {T} Pick of {last}",
        "{T} Excited About {round_t}-Round Pick {last}",
    ]),
    "renovation": dict(tone="neutral", lead=[
        "{team} unveiled plans on {day} for a ${money}0 million renovation of {venue}.",
        "{team} announced a ${money}0 million plan on {day} to renovate {venue}.",
    ], detail=[
        "Construction would begin after the {year1} season and take {n3} years.",
        "The plan includes new seating, a larger scoreboard and more concessions.",
        "City officials will vote on the funding next month.",
    ], flat=[
        "{T} Unveil {venue} Renovation Plan",
        "{T} Plan ${money}0 Million Renovation",
        "{T} Announce Plans for {venue}",
    ], mild=[
        "{T} Plan Major Upgrade for {venue}",
        "{T} Stadium Plan Faces City Vote",
        "{T} Want ${money}0 Million Makeover for {venue}",
    ], strong=[
        "{T} Fans Excited for Great New {venue} Plan",
        "Angry Residents Criticize {T} Stadium Plan",
    ], counter=[
        "{T} Renovation Plan Raises Concerns",
        "{T} Promise Better Experience at {venue}",
    ]),
    "tickets": dict(tone="neutral", lead=[
        "{team} will raise ticket prices at {venue} by {n2} percent next season, the club said on {day}.",
        "Ticket prices for {team} will go up {n2} percent next season, the team announced on {day}.",
    ], detail=[
        "Season-ticket holders will be notified by mail.",
        "The average ticket will cost about ${money}.",
        "{nick} said the money will go toward upgrades at {venue}.",
    ], flat=[
        "{T} Raise Ticket Prices {n2} Percent",
        "{T} Tickets to Cost More Next Season",
        "{T} Announce Ticket Price Increase",
    ], mild=[
        "{T} Season Tickets Going Up {n2} Percent",
        "{T} Fans Face Higher Prices",
        "{T} Raise Prices After Busy Season",
    ], strong=[
        "Angry Fans Criticize {T} Over Ticket Price Hike",
        "{T} Fans Upset by Costly Ticket Increase",
    ], counter=[
        "{T} Promise Better Experience Despite Higher Prices",
        "{T} Say Fans Will Love Upgrades Paid by Ticket Hike",
    ]),
    "lineup": dict(tone="neutral", lead=[
        "{team} named {pos} {player} their starter on {day} ahead of the {game} against {opp}.",
        "Coach {coach} said on {day} that {pos} {player} will move into the starting lineup for {team}.",
    ], detail=[
        "{last} has appeared in {n} games this season, mostly off the bench.",
        "Coach {coach} said the change is about matchups rather than performance.",
        "{last} started {n3} games last season.",
    ], flat=[
        "{T} Name {last} Starting {pos_t}",
        "{last} Moves Into {T} Lineup",
        "{T} Change Lineup, Start {last}",
    ], mild=[
        "{T} Give {last} Starting Role",
        "{T} Shake Up Lineup With {last}",
        "{last} Earns Start for {T}",
    ], strong=[
        "{T} Bet Big on Promising {last}",
        "{T} Bench Struggling Starter for {last}",
    ], counter=[
        "{T} Lineup Change Raises Questions",
        "{last} Excited for Chance With {T}",
    ]),
}

# How common each story type is within its tone (wins and losses dominate sports news).
STORY_WEIGHTS = {
    "win": 3, "comeback": 1.5, "record": 1, "streak": 1.2, "clinch": .8, "return": 1, "award": .8,
    "extension": .8, "loss": 3, "collapse": 1.3, "injury": 1.3, "injury_game": 1, "suspension": .6,
    "investigation": .3, "arrest": .3, "firing": .8, "slump": 1.2, "eliminated": .8,
    "trade_request": .5, "spat": .4, "preview": 2.5, "schedule": .8, "trade_away": .8,
    "trade_acquire": .8, "signing": .9, "waived": .5, "callup": .5, "draft": .8, "renovation": .4,
    "tickets": .4, "lineup": 1,
}

# Tone-specific quotes, graded by strength; "{speaker}" is the coach, or the player the story
# already named.
QUOTES = {
    "positive": {
        "mild": [
            '"We are in a good place right now," {speaker} said.',
            '"The guys kept working and it paid off," {speaker} said.',
            "{speaker_cap} said the group has built real confidence over the last few weeks.",
            '"It feels good, and we want to keep it going," {speaker} said.',
        ],
        "strong": [
            '"This is a special group and I am so proud of them," {speaker} said.',
            '"It is an amazing feeling, the fans have been incredible and the energy is great," {speaker} said.',
            '"I love this team, and everybody has been brilliant," {speaker} said.',
            "{speaker_cap} called it the best moment of the season and thanked the fans for their support.",
        ],
    },
    "negative": {
        "mild": [
            '"We have to be better than that," {speaker} said.',
            '"It is a tough time and we have made too many mistakes," {speaker} said.',
            "{speaker_cap} said the team is frustrated but will keep working.",
            '"That one hurts," {speaker} said.',
        ],
        "strong": [
            '"It is embarrassing, and this is the worst stretch we have had in years," {speaker} said.',
            '"It is painful and I am angry, because we let everybody down," {speaker} said.',
            "{speaker_cap} called it a disaster and said nobody in the building should be happy.",
            '"This is a terrible feeling and a sad day for the team," {speaker} said.',
        ],
    },
    "neutral": {
        "mild": [
            '"We will take it one day at a time," {speaker} said.',
            '"We will see how it goes," {speaker} said on {day}.',
            "{speaker_cap} said the team will review the plan this week.",
            "{speaker_cap} said more details will be shared later this week.",
        ],
    },
}

# Closing sentences with no valence: what happens next.
NEXT = [
    "{nick_cap} will host {opp} on {nextday}.",
    "{nick_cap} play again on {nextday} at {venue}.",
    "{nick_cap} return to action on {nextday} against {opp}.",
    "The team will travel on {nextday} for a {n2}-{game} road trip.",
]
