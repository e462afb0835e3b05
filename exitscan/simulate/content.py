"""What pupils write and who they are: next-step sentences, names, lessons for simulated passes.

Plain data, no drawing. The sentences are the kind primary-school pupils write as a "next
step" (short, first person, often about punctuation, spelling or times tables); the names
are deliberately Unicode-rich (fadas, umlauts, Polish and Czech letters, apostrophes,
hyphens) because rosters are, and every one of them prints in the pass font.
"""

from __future__ import annotations

from exitscan.roster import Lesson, Pupil

#: Next steps as pupils write them (~40), used for the handwritten sentence.
NEXT_STEPS: tuple[str, ...] = (
    "I need to use more adjectives.",
    "Remember capital letters at the start of a sentence.",
    "I will check my full stops.",
    "I need to practise my 7 times table.",
    "Use finger spaces between my words.",
    "I need to show my working out.",
    "Read my work back to check it makes sense.",
    "I will use a dictionary to check spellings.",
    "I need help with column subtraction.",
    "Use more interesting verbs.",
    "I want to try the challenge next time.",
    "Practise my tricky words at home.",
    "I need to learn my number bonds to 20.",
    "Write neater so people can read it.",
    "I will add more detail to my diagram.",
    "Use paragraphs for a new idea.",
    "I need to remember to carry the ten.",
    "Ask a friend when I am stuck.",
    "I will check my answers with the inverse.",
    "Use question marks for questions.",
    "I need to label the axes on my graph.",
    "Remember to use a ruler for lines.",
    "Learn how to tell the time to 5 minutes.",
    "I need to slow down and check my work.",
    "Use conjunctions like because and so.",
    "I will explain my reasons more.",
    "Practise fractions of a number.",
    "I need to remember the units.",
    "Use speech marks when people talk.",
    "I will plan before I write.",
    "I need help with long division.",
    "Say my sentence out loud before I write it.",
    "Use commas in a list.",
    "I need to learn my 8 times table.",
    "Try to use a fronted adverbial.",
    "Check I have answered the question.",
    "I will keep my numbers in the right columns.",
    "More practice with halving and doubling.",
    "I need to draw the shape more carefully.",
    "Remember apostrophes for belonging.",
    "I can do it with a partner next time.",
    "Use my phonics to sound out words.",
)

#: Short next steps that fit the ticks template's option boxes (printed, not handwritten).
TICK_OPTIONS: tuple[str, ...] = (
    "Check my capital letters",
    "Use more adjectives",
    "Practise my times tables",
    "Show my working out",
    "Ask for help when stuck",
    "Read my work back",
)

#: A class of twelve with realistic Unicode names (the demo set's roster).
DEMO_PUPILS: tuple[tuple[str, str], ...] = (
    ("p3b-01", "Siobhán Ní Bhriain"),
    ("p3b-02", "Zoë Schäfer"),
    ("p3b-03", "Oisín Ó Súilleabháin"),
    ("p3b-04", "Łukasz Wiśniewski"),
    ("p3b-05", "Amara Okafor"),
    ("p3b-06", "Seán O'Connor"),
    ("p3b-07", "Chloé Lefèvre"),
    ("p3b-08", "Anna-Lena Müller"),
    ("p3b-09", "Björn Åström"),
    ("p3b-10", "Priya Patel"),
    ("p3b-11", "Dominik Dvořák"),
    ("p3b-12", "Aoife Mac Cárthaigh"),
)

FIRST_NAMES: tuple[str, ...] = (
    "Siobhán", "Zoë", "Oisín", "Łukasz", "Amara", "Seán", "Chloé", "Anna-Lena", "Björn",
    "Priya", "Dominik", "Aoife", "Mateo", "Niamh", "Yusuf", "Maëlle", "Kacper", "Tomás",
    "Fatima", "Jakub", "Ellie", "Noah", "Grace", "Ibrahim", "Ruby", "Cian", "Léa", "Ava",
    "Mohammed", "Saoirse", "Olivia", "Jan", "Hannah", "Eoin", "Freya", "Ana-Maria",
)
SURNAMES: tuple[str, ...] = (
    "Ní Bhriain", "Schäfer", "Ó Súilleabháin", "Wiśniewski", "Okafor", "O'Connor",
    "Lefèvre", "Müller", "Åström", "Patel", "Dvořák", "Mac Cárthaigh", "García", "Murphy",
    "Özdemir", "Dubois", "Kowalski", "Ó Ceallaigh", "Khan", "Nowak", "Smith", "Brown",
    "Walsh", "Ahmed", "Byrne", "Kelly", "Popescu", "Jones", "Nic Giolla Phádraig", "Lee",
)

#: Names pupils write on spare passes (not on the roster: a visitor, a new pupil...).
SPARE_NAMES: tuple[str, ...] = (
    "Róisín", "Zoë K", "Jamie", "Oliwia N.", "Tadhg", "Mía", "Ben", "Chiara", "Kai",
    "Éabha", "Leo M", "Nadia", "Dara", "Sofía", "Finn", "Ifeoma",
)


def default_roster(n: int = 28) -> list[Pupil]:
    """A deterministic class of ``n`` pupils: the demo twelve, then first x last name pairs."""
    out = [Pupil(pid, name) for pid, name in DEMO_PUPILS[:n]]
    k = 0
    while len(out) < n:
        first = FIRST_NAMES[(k * 7 + 12) % len(FIRST_NAMES)]
        last = SURNAMES[(k * 11 + 5) % len(SURNAMES)]
        out.append(Pupil(f"s{len(out) + 1:03d}", f"{first} {last}"))
        k += 1
    return out


def demo_pupils() -> list[Pupil]:
    """The twelve-pupil class of the demo set."""
    return [Pupil(pid, name) for pid, name in DEMO_PUPILS]


#: Lessons by template: what a teacher would type for each kind of pass.
_LESSONS: dict[str, tuple[Lesson, ...]] = {
    "classic": (
        Lesson(
            class_name="P3B",
            lesson="Writing: describing a setting",
            intention="To use adjectives to describe a setting",
            criteria=("I can use three adjectives", "I can use capital letters and full stops"),
        ),
        Lesson(
            class_name="P3B",
            lesson="Maths: column addition",
            intention="To add two 3-digit numbers",
            criteria=("I can line up the digits", "I can carry the ten"),
        ),
        Lesson(
            class_name="P3B",
            lesson="Science: parts of a plant",
            intention="To name the parts of a flowering plant",
        ),
    ),
    "ticks": (
        Lesson(
            class_name="P3B",
            lesson="Writing: instructions",
            intention="To write clear instructions with bossy verbs",
            next_step_options=TICK_OPTIONS,
        ),
        Lesson(
            class_name="P3B",
            lesson="Maths: multiplication",
            intention="To use the 3, 4 and 8 times tables",
            next_step_options=TICK_OPTIONS[2:5],
        ),
    ),
    "criteria": (
        Lesson(
            class_name="P3B",
            lesson="Maths: fractions",
            intention="To find fractions of shapes and amounts",
            criteria=(
                "I can find half of a shape",
                "I can find a quarter of a shape",
                "I can find a third of a number",
            ),
        ),
        Lesson(
            class_name="P3B",
            lesson="Reading: inference",
            intention="To use clues in the text",
            criteria=(
                "I can find clues in the text",
                "I can explain what a character feels",
                "I can use evidence",
                "I can read with expression",
            ),
        ),
    ),
}


def lessons_for(template: str) -> tuple[Lesson, ...]:
    """Sample lessons suited to a template (classic lessons for an unknown template)."""
    return _LESSONS.get(template, _LESSONS["classic"])
