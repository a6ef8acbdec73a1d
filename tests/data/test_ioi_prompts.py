"""Indirect object identification prompts and their corruptions."""

from __future__ import annotations

import pytest

from circuitlab.data import ioi_prompts, single_token_names
from circuitlab.data.synthetic import NAMES, TEMPLATES
from circuitlab.errors import ConfigError


def changed_words(clean: str, corrupted: str) -> list[tuple[str, str]]:
    clean_words, corrupted_words = clean.split(), corrupted.split()
    assert len(clean_words) == len(corrupted_words)
    return [(a, b) for a, b in zip(clean_words, corrupted_words, strict=True) if a != b]


def test_clean_prompt_names_the_subject_twice_and_the_indirect_object_once() -> None:
    prompts = ioi_prompts(20, seed=0)
    for clean, io, subject in zip(prompts.clean, prompts.correct_answers, prompts.incorrect_answers, strict=True):
        words = clean.replace(",", "").replace(".", "").split()
        assert words.count(io.strip()) == 1 and words.count(subject.strip()) == 2
        assert clean.endswith(" to")


def test_answers_are_names_with_a_leading_space() -> None:
    prompts = ioi_prompts(10, seed=0)
    assert all(answer.startswith(" ") and answer.strip() in NAMES for answer in prompts.correct_answers)


def test_abba_names_the_indirect_object_first_and_baba_the_subject() -> None:
    prompts = ioi_prompts(10, seed=0, order="mixed")
    assert prompts.orders == ["ABBA", "BABA"] * 5
    for clean, order, io, subject in zip(
        prompts.clean, prompts.orders, prompts.correct_answers, prompts.incorrect_answers, strict=True
    ):
        io_first = clean.index(io) < clean.index(subject)
        assert io_first == (order == "ABBA")


def test_abc_corruption_replaces_exactly_the_three_names_with_new_distinct_ones() -> None:
    prompts = ioi_prompts(20, seed=0, corruption="ABC")
    for index, (clean, corrupted) in enumerate(zip(prompts.clean, prompts.corrupted, strict=True)):
        changes = changed_words(clean, corrupted)
        assert len(changes) == 3
        new_names = {new.strip(",.") for _, new in changes}
        assert len(new_names) == 3
        assert not new_names & {prompts.correct_answers[index].strip(), prompts.incorrect_answers[index].strip()}


def test_s2_random_corruption_replaces_only_the_third_name() -> None:
    prompts = ioi_prompts(20, seed=0, corruption="S2_random")
    for clean, corrupted, subject in zip(prompts.clean, prompts.corrupted, prompts.incorrect_answers, strict=True):
        [(old, new)] = changed_words(clean, corrupted)
        assert old.strip(",.") == subject.strip()
        assert new.strip(",.") not in clean


def test_s2_to_io_corruption_makes_the_third_name_the_indirect_object() -> None:
    prompts = ioi_prompts(20, seed=0, corruption="S2_to_IO")
    for clean, corrupted, io, subject in zip(
        prompts.clean, prompts.corrupted, prompts.correct_answers, prompts.incorrect_answers, strict=True
    ):
        [(old, new)] = changed_words(clean, corrupted)
        assert (old.strip(",."), new.strip(",.")) == (subject.strip(), io.strip())


def test_same_seed_gives_the_same_prompts() -> None:
    assert ioi_prompts(8, seed=4) == ioi_prompts(8, seed=4)
    assert ioi_prompts(8, seed=4).clean != ioi_prompts(8, seed=5).clean


def test_every_template_is_used_and_no_name_starts_a_prompt() -> None:
    prompts = ioi_prompts(200, seed=0)
    assert set(prompts.template_ids) == set(range(len(TEMPLATES)))
    assert not any(template.startswith("{") for template in TEMPLATES)


def test_single_token_names_keeps_names_that_are_one_token_after_a_space() -> None:
    def tokenize(text: str) -> list[str]:  # a toy tokenizer: short words are one token, long ones a token per letter
        return [text] if len(text) <= 4 else list(text)

    assert single_token_names(["Amy", "Tom", "Jessica", "Sam"], tokenize) == ["Amy", "Tom", "Sam"]


def test_too_few_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match="at least 5"):
        ioi_prompts(4, seed=0, names=["Amy", "Tom", "Sam", "Ann"])
