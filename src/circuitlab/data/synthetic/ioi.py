"""Indirect object identification prompts (Wang et al., 2022), as text.

"When Mary and John went to the store, John gave a drink to" -> " Mary". The two names of the first
clause are the indirect object (IO, the answer) and the subject (S); the subject comes back as the
third name (S2). In ABBA order the IO is named first (``Mary and John ... John``), in BABA order the
subject is (``John and Mary ... John``).

Corruptions (what the corrupted prompt changes; template, place and object stay):

- ``"ABC"`` — the standard one: all three names replaced by three other, distinct names, so the prompt
  keeps its grammar but no name is repeated and the IO/S information is gone;
- ``"S2_random"`` — only the third name (S2) replaced by a new name C;
- ``"S2_to_IO"`` — the third name replaced by the IO, which makes S the right answer (the logit
  difference IO - S flips sign).

Every name is written after a space (no template starts with one), so a name that is one token as
``" " + name`` keeps clean and corrupted prompts the same length in tokens; ``single_token_names``
picks those names for a tokenizer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from circuitlab.errors import ConfigError

Corruption = Literal["ABC", "S2_random", "S2_to_IO"]
Order = Literal["ABBA", "BABA", "mixed"]

# Common single-word English first names (one token each in GPT-2's tokenizer with a leading space).
NAMES: tuple[str, ...] = (
    "Mary", "John", "Alice", "Bob", "James", "Sarah", "Michael", "Emma", "David", "Laura",
    "Tom", "Anna", "Paul", "Kate", "Mark", "Lisa", "Peter", "Jessica", "Daniel", "Rachel",
    "Chris", "Amy", "Steven", "Julia", "Andrew", "Linda", "Kevin", "Susan", "Brian", "Karen",
    "Jack", "Helen", "George", "Grace", "Henry", "Rose", "Frank", "Emily", "Sam", "Lucy",
)  # fmt: skip
PLACES: tuple[str, ...] = ("store", "garden", "restaurant", "school", "hospital", "office", "station", "park")
OBJECTS: tuple[str, ...] = ("drink", "book", "ring", "bone", "basketball", "computer", "necklace", "kiss")

# {A} and {B} are the first clause's names, {C} the third name; the answer is whichever of A and B
# is not C.
TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} went to the {place}, {C} gave a {object} to",
    "Then, {A} and {B} went to the {place}. {C} gave a {object} to",
    "After {A} and {B} arrived at the {place}, {C} handed a {object} to",
    "While {A} and {B} were working at the {place}, {C} passed a {object} to",
    "Later, {A} and {B} found a {object} at the {place}. {C} gave it to",
    "When {A} and {B} got a {object} at the {place}, {C} decided to give it to",
    "Then, {A} and {B} had a long argument. Afterwards, {C} said to",
    "Yesterday {A} and {B} were at the {place}, and {C} threw a {object} to",
)


@dataclass(frozen=True)
class IOIPrompts:
    """Clean and corrupted prompts, one entry per prompt in every list.

    Answers carry their leading space (``" Mary"``) and refer to the clean prompt: ``correct_answers``
    are the IO names, ``incorrect_answers`` the S names.
    """

    clean: list[str]
    corrupted: list[str]
    correct_answers: list[str]
    incorrect_answers: list[str]
    orders: list[str]  # "ABBA" or "BABA"
    template_ids: list[int]
    corrupted_names: list[tuple[str, str, str]]  # the (A, B, C) written into each corrupted prompt


def ioi_prompts(
    n_prompts: int,
    seed: int = 0,
    names: Sequence[str] = NAMES,
    templates: Sequence[str] = TEMPLATES,
    order: Order = "mixed",
    corruption: Corruption = "ABC",
) -> IOIPrompts:
    """``n_prompts`` IOI prompts with random names, places, objects and templates.

    ``order="mixed"`` alternates ABBA and BABA (ABBA first), so the two are balanced.
    """
    if n_prompts < 1:
        raise ConfigError(f"n_prompts must be positive, got {n_prompts}")
    if order not in ("ABBA", "BABA", "mixed"):
        raise ConfigError(f"order must be 'ABBA', 'BABA' or 'mixed', got {order!r}")
    if corruption not in ("ABC", "S2_random", "S2_to_IO"):
        raise ConfigError(f"corruption must be 'ABC', 'S2_random' or 'S2_to_IO', got {corruption!r}")
    distinct_names = list(dict.fromkeys(names))
    if len(distinct_names) < 5:
        raise ConfigError(f"need at least 5 distinct names (2 clean + 3 fresh for 'ABC'), got {len(distinct_names)}")
    if not templates:
        raise ConfigError("need at least one template")

    rng = random.Random(seed)
    prompts = IOIPrompts([], [], [], [], [], [], [])
    for index in range(n_prompts):
        prompt_order = order if order != "mixed" else ("ABBA", "BABA")[index % 2]
        template_id = rng.randrange(len(templates))
        io, subject, *fresh = rng.sample(distinct_names, 5)
        fillers = {"place": rng.choice(PLACES), "object": rng.choice(OBJECTS)}
        a, b = (io, subject) if prompt_order == "ABBA" else (subject, io)
        if corruption == "ABC":
            corrupted_names = (fresh[0], fresh[1], fresh[2])
        elif corruption == "S2_random":
            corrupted_names = (a, b, fresh[0])
        else:
            corrupted_names = (a, b, io)
        template = templates[template_id]
        prompts.clean.append(template.format(A=a, B=b, C=subject, **fillers))
        prompts.corrupted.append(template.format(**dict(zip("ABC", corrupted_names, strict=True)), **fillers))
        prompts.correct_answers.append(" " + io)
        prompts.incorrect_answers.append(" " + subject)
        prompts.orders.append(prompt_order)
        prompts.template_ids.append(template_id)
        prompts.corrupted_names.append(corrupted_names)
    return prompts


def single_token_names(names: Sequence[str], tokenize: Callable[[str], Sequence[int]]) -> list[str]:
    """The names that ``tokenize`` turns into exactly one token when written after a space.

    ``tokenize`` maps a string to its token ids without special tokens, e.g.
    ``lambda text: tokenizer.encode(text, add_special_tokens=False)``.
    """
    return [name for name in names if len(tokenize(" " + name)) == 1]
