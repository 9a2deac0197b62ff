"""What may be quoted as an answer (assistant.quotes.quotable): statements, not guiding questions that lost their
question mark (a French question is recognised by its first words or by its inverted subject), fragments or
references. (A heading in sentence case, "Fonds d’affectation spéciale pluripartenaire pour la migration", still
passes: README, known limits.)"""

from __future__ import annotations

import pytest

from arrival.assistant.quotes import quotable


@pytest.mark.parametrize("text", [
    # guiding questions of the UN guidance whose "?" the layout cut off
    "De quelle manière les principes directeurs du Pacte mondial peuvent-ils éclairer l’approche de la mise en œuvre",
    "Votre pays a-t-il procédé à des examens nationaux de la mise en œuvre du Pacte mondial",
    "Les autorités locales peuvent-elles accéder aux données sur les migrants de leur territoire",
    "Dans quels secteurs les migrants rencontrent-ils le plus d’obstacles pour accéder aux services",
    "Par quels moyens le gouvernement associe les autorités locales à la mise en œuvre du Pacte",
    "In what ways can local authorities contribute to the national implementation plan",
    "Which actors do you need to engage to ensure successful GCM implementation?",
    # a fragment, a reference
    "des enfants et des jeunes migrants, travail décent et accès aux services de base pour tous.",
    "Smith, J. and A. Jones (2015). Migration and cities. Available at www.example.org.",
])
def test_not_quotable(text: str) -> None:
    assert not quotable(text)


@pytest.mark.parametrize("text", [
    "Le guichet unique de Lisbonne offre aux migrants un accès à tous les services publics en un seul lieu.",
    "Les villes travaillent en partenariat avec les acteurs locaux et veillent à ce qu’ils participent aux décisions.",
    "The programme offers hands-on training to municipal staff working with newly arrived migrants.",
    "Dans certaines villes, les migrants peuvent accéder aux services municipaux sans pièce d’identité.",
    "En Belgique, les migrants dépourvus de documents peuvent accéder gratuitement aux soins de santé urgents.",
])
def test_quotable(text: str) -> None:
    assert quotable(text)
