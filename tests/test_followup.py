"""Follow-up questions rewritten from the conversation, without a language model (assistant/followup.py)."""

from __future__ import annotations

import pytest

from arrival.assistant.followup import follow_up_topic, question_language, rewrite

P_LISBON_EN = "What is the one-stop shop for immigrants in Porto?"
P_SERVICES_FR = "Quels services sont offerts aux migrants ?"
P_MALAGA_EN = "Does Malaga require migrants to show an ID card to access city services?"
P_MALAGA_FR = "Que fait la ville de Malaga pour que les migrants accèdent aux services sans pièce d'identité ?"


@pytest.mark.parametrize(("follow_up", "previous", "expected"), [
    # English: a place replaces the previous place, or its proper name
    ("and in Lisbon?", P_LISBON_EN, "What is the one-stop shop for immigrants in Lisbon?"),
    ("And Lisbon?", P_MALAGA_EN, "Does Lisbon require migrants to show an ID card to access city services?"),
    ("In Lyon?", "What does the city do to reduce social tensions in Montreal?",
     "What does the city do to reduce social tensions in Lyon?"),
    ("what about in Amman?", "How do cities include refugees in their resilience strategies?",
     "How do cities include refugees in their resilience strategies in Amman?"),
    # English: a beneficiary or another subject replaces or extends the topic
    ("and for children?", "What support exists for migrant workers?", "What support exists for children?"),
    ("and for refugees?", "What can universities do for social cohesion in arrival cities?",
     "What can universities do for refugees in arrival cities?"),
    ("what about housing?", "What do the documents say about access to health care for migrants?",
     "What do the documents say about housing?"),
    ("and remittances?", "Which policies help migrants find work?",
     "Which policies help migrants find work, and remittances?"),
    # French
    ("Et pour les enfants ?", P_SERVICES_FR, "Quels services sont offerts aux migrants pour les enfants ?"),
    ("Et à Lisbonne ?", P_MALAGA_FR,
     "Que fait la ville de Lisbonne pour que les migrants accèdent aux services sans pièce d'identité ?"),
    ("Et à São Paulo ?", "Quel rôle joue le Conseil municipal des immigrants à Lisbonne ?",
     "Quel rôle joue le Conseil municipal des immigrants à São Paulo ?"),
    ("Lisbonne ?", "Qu'est-ce que le guichet unique de Porto pour les immigrants ?",
     "Qu'est-ce que le guichet unique de Lisbonne pour les immigrants ?"),
    ("et le logement ?", "Que disent les documents sur l'accès aux soins des migrants à Lyon ?",
     "Que disent les documents sur le logement à Lyon ?"),
    ("Qu'en est-il des enfants ?", "Quelles aides la ville offre-t-elle aux migrants ?",
     "Quelles aides la ville offre-t-elle aux migrants, et les enfants ?"),
    ("Et en France ?", "Comment les villes financent-elles l'intégration ?",
     "Comment les villes financent-elles l'intégration en France ?"),
    ("Pour les réfugiés ?", "Quelles aides existent pour les travailleurs migrants ?",
     "Quelles aides existent pour les réfugiés ?"),
    # across languages: the preposition follows the previous question's language
    ("Et à Lisbonne ?", P_LISBON_EN, "What is the one-stop shop for immigrants in Lisbonne?"),
    ("and for children?", P_SERVICES_FR, "Quels services sont offerts aux migrants pour children ?"),
])
def test_follow_ups_are_rewritten(follow_up, previous, expected):
    r = rewrite(follow_up, previous)
    assert r.rewritten and r.query == expected and r.previous == previous


@pytest.mark.parametrize(("question", "previous"), [
    ("and how is it funded?", P_LISBON_EN),  # a question of its own (pronoun): searched as typed
    ("Et comment est-ce financé ?", P_SERVICES_FR),
    ("Qu'est-ce qu'une ville d'arrivée ?", P_SERVICES_FR),
    ("What is Lisbon's one-stop shop for immigrants?", P_MALAGA_EN),
    ("Quel rôle joue le Mécanisme des maires au sein du FMMD ?", P_MALAGA_FR),
    ("remittances", P_LISBON_EN),  # bare keywords are a new search, not a follow-up
    ("Which cities give migrants access to services without an ID?", P_MALAGA_EN),
    ("and in Lisbon?", ""),  # no previous question: nothing to rewrite from
])
def test_full_questions_are_left_alone(question, previous):
    r = rewrite(question, previous)
    assert not r.rewritten and r.query == " ".join(question.split())


def test_the_load_test_questions_are_never_rewritten():
    """The simulated users of `arrival load` keep one conversation: none of their questions is a follow-up."""
    from arrival.eval.load_checks import QUESTIONS

    for i, (q, _) in enumerate(QUESTIONS):
        assert follow_up_topic(q) is None, q
        assert not rewrite(q, QUESTIONS[i - 1][0]).rewritten, q


def test_follow_ups_chain():
    first = "What is the one-stop shop for immigrants in Porto?"
    second = rewrite("and in Lisbon?", first).query
    third = rewrite("and for children?", second).query
    assert third == "What is the one-stop shop for children in Lisbon?"


def test_question_language():
    assert question_language("Quels services sont offerts aux migrants ?") == "fr"
    assert question_language("What support exists for migrant workers?") == "en"
    assert question_language("Qu'est-ce que le guichet unique de Lisbonne ?") == "fr"
