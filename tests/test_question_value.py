"""The kind of value a question asks for (assistant.question.asked_value), which decides whether an answer must
state one: English and French, the copula forms included ("quel est le taux", "what is the annual growth rate")."""

from __future__ import annotations

import pytest

from arrival.assistant.question import asked_value, has_value


@pytest.mark.parametrize(("question", "kind"), [
    ("What is the unemployment rate of migrants in Lisbon?", "percent"),
    ("What was the average annual growth rate of remittances?", "percent"),
    ("Quel était le taux de chômage des immigrés à Lisbonne en 2019 ?", "percent"),
    ("Quel est le taux de TVA applicable en France ?", "percent"),
    ("Quelle est la proportion de femmes parmi les migrants ?", "percent"),
    ("Quel taux d'emploi atteignent les réfugiés ?", "percent"),
    ("How many migrants did the one-stop shop serve?", "count"),
    ("Combien de migrants le guichet unique a-t-il reçus ?", "count"),
    ("What was the budget of the Lisbon one-stop shop?", "money"),
    ("En quelle année la stratégie a-t-elle été adoptée ?", "date"),
    ("Which cities give migrants access to services without an ID?", None),
    ("What is the role of cities in migration governance?", None),
    ("Quel est le rôle des villes dans la gouvernance des migrations ?", None),
    ("What are the rates of return described in the guide, and why do they matter?", "percent"),
])
def test_asked_value(question: str, kind: str | None) -> None:
    assert asked_value(question) == kind


def test_a_rate_is_stated_by_a_percentage_not_by_a_year() -> None:
    assert has_value("Unemployment among migrants fell to 12 % in 2019.", "percent")
    assert not has_value("The strategy was adopted in 2019.", "percent")
