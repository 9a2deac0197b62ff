"""ingest.clean: rules checked on real pages of the shared corpus, small synthetic cases, and properties."""

from __future__ import annotations

import re
import time
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrival.ingest.clean import clean_pages, find_headings, normalize_for_match

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"

GFMD = "gfmd/gfmd-2019-rt3.1-villes-arrivee-fr.pdf"
ACCESS = "gcm-guidance/en/objectives/15-ACCESS TO BASIC SERVICES.pdf"
GUIDE = "gcm-guidance/en/guide-implementing-the-gcm.pdf"
SOCIAL = "gcm-guidance/en/objectives/22-SOCIAL PROTECTION.pdf"
INCLUSION = "gcm-guidance/en/objectives/16-INCLUSION AND SOCIAL COHESION.pdf"
TOOLS = "gcm-guidance/en/steps/Step 1 Kick-off/STEP 1 - TOOLS.pdf"
ELIMINER = "gcm-guidance/fr/objectifs/17 - ELIMINER LES DISCIMINATIONS.pdf"


@cache
def _raw(rel: str) -> tuple[str, ...]:
    from pypdf import PdfReader

    path = CORPUS / rel
    if not path.is_file():
        pytest.skip(f"shared corpus file not found: {path}")
    return tuple(page.extract_text() or "" for page in PdfReader(path).pages)


@cache
def _clean(rel: str) -> tuple[str, ...]:
    return tuple(clean_pages(list(_raw(rel))))


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


real = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")


# --------------------------------------------------------------------------------------------------
# Real pages
# --------------------------------------------------------------------------------------------------


@real
@pytest.mark.slow
def test_gfmd_running_header_and_page_numbers_gone_from_every_page() -> None:
    raw, clean = _raw(GFMD), _clean(GFMD)
    assert len(clean) == len(raw) == 18
    header = "FMMD 2019 · Table ronde 3.1 · Document de travail"
    assert all(page.startswith(header + "\n") for page in raw)  # what the rule has to remove
    for number, page in enumerate(clean, start=1):
        assert page, f"page {number} lost all its text"
        assert header not in page
        assert str(number) not in _lines(page), f"page number left on page {number}"
        assert not page.startswith(f"{number}\n")


@real
@pytest.mark.slow
def test_gfmd_paragraphs_joined_and_footnotes_kept() -> None:
    page1 = _clean(GFMD)[0]
    assert page1.startswith("Introduction\n\nL’urbanisation accélérée")
    # two wrapped lines of the raw page make one line of one paragraph
    assert "proportion qui devrait passer à 68 % d'ici 2050i." in page1
    body = _lines(page1)[1]
    assert body.startswith("L’urbanisation") and body.endswith("de transit et de destination.")
    # the footnotes carry facts: kept, each on its own line
    notes = [line for line in _lines(page1) if re.match(r"[12] Le ", line)]
    assert [n[:2] for n in notes] == ["1 ", "2 "]
    assert "coprésidents de la Table ronde 3.1, l'Égypte et la Suisse" in notes[0]
    # the endnotes at the back too ("xvii Saunders, Doug. Arrival City ...")
    page14 = _clean(GFMD)[13]
    assert any(line.startswith("xvii Saunders, Doug. Arrival City") for line in _lines(page14))


@real
@pytest.mark.slow
def test_gfmd_hyphens() -> None:
    clean = _clean(GFMD)
    raw = _raw(GFMD)
    # a real hyphen, mid-line in the raw text, stays
    assert "région de Souss-Massa au Maroc" in clean[5]
    assert "Ngäbe-Buglé" in clean[15]
    # line-end hyphens that belong to the word: "sans-" / "papiers" (the document writes "sans-papiers"
    # elsewhere) and "vis-" / "à-vis"
    assert "les sans-\npapiers" in raw[2] and "les sans-papiers étant" in clean[2]
    assert "municipaux vis-\nà-vis" in raw[3] and "municipaux vis-à-vis de la migration" in clean[3]
    # a hyphen in a URL stays, and the URL is not cut by a space
    assert "papers/II/paper-Moreno-final.pdf" in clean[12]


@real
@pytest.mark.slow
def test_the_guides_navigation_tabs_go_and_its_double_arrow_bullets_stay() -> None:
    """"› › › Design" (arrows apart) is the step tab of the full guide; "›› GCM objectives address ..." (arrows
    glued) is one of its bullets, whose text stays (it was dropped as a tab when short)."""
    raw, clean = _raw(GUIDE), _clean(GUIDE)
    assert "› › › Design" in raw[124] and "› › › Design" not in clean[124] and "Design\n" not in clean[124][:20]
    for text in ("GCM objectives address border-related practices, including",
                 "Further, GCM objectives recognize the positive",
                 "GCM objectives recognize migrants as agents"):
        assert text in raw[26].replace("\n", " ") and text in clean[26].replace("\n", " "), text


@real
@pytest.mark.slow
def test_un_extract_headers_footers_and_ligatures() -> None:
    raw, clean = _raw(ACCESS), _clean(ACCESS)
    footer = "Extract from Implementing the Global Compact"
    assert sum(footer in page for page in raw) == len(raw)
    assert "ﬁ" in raw[2] and "ﬀ" in raw[2]
    for page in clean:
        assert footer not in page
        assert "Access to basic services" not in _lines(page)  # the running header
        assert "› GCM OBJECTIVE" not in page  # the tab, standalone or glued to the text
        assert "ﬁ" not in page and "ﬀ" not in page
    assert "have benefited from the crucial support" in clean[2]
    assert "Several countries offer access" in clean[2]
    # the tab was glued to the first action: "› GCM OBJECTIVE 15d. Establish ..."
    assert clean[1].startswith("d. Establish or mandate independent institutions")
    # a wrapped action is one line; a suspended hyphen stays a suspended hyphen
    assert "Enact laws and take measures to ensure that service delivery does not amount to discrimination" in clean[0]
    assert "in a gender- and disability-responsive as well as child-sensitive manner" in clean[0]
    # SDG targets are list items, the SDG title its own paragraph
    assert "\n\nSDG 4: Quality education\n\n" in clean[4]


@real
@pytest.mark.slow
def test_un_french_extract_footer_and_hyphenation() -> None:
    raw, clean = _raw(ELIMINER), _clean(ELIMINER)
    assert sum("Extrait de Mise en œuvre du Pacte mondial" in page for page in raw) == len(raw)
    for page in clean:
        assert "Extrait de Mise en œuvre" not in page
        assert "Orientations pour les gouvernements et toutes les parties prenantes" not in page
    assert "la représenta-\ntion" in raw[6]
    assert "la participation et la représentation à tous les niveaux" in clean[6]
    assert "non discriminatoires pour le développement durable" in clean[6]


@real
@pytest.mark.slow
def test_un_dash_and_hyphen_joins() -> None:
    assert "Belgium–\nMorocco" in _raw(SOCIAL)[1]
    assert "Belgium–Morocco, and France–Morocco" in _clean(SOCIAL)[1]
    assert "participa-\ntory" in _raw(INCLUSION)[5]
    assert "inclusive, participatory and representative decision-making" in _clean(INCLUSION)[5]


@real
@pytest.mark.slow
def test_repeated_passage_is_not_mistaken_for_a_header() -> None:
    # pages 2 and 3 of this 4-page extract start with the same box: it must survive on both
    raw, clean = _raw(TOOLS), _clean(TOOLS)
    box = "the critical role of local authorities in delivering important"
    assert box in raw[1] and box in raw[2]
    assert "the critical role of local authorities in delivering important services" in clean[1]
    assert "the critical role of local authorities in delivering important services" in clean[2]
    assert "whole-of-government approach" in clean[1]  # "whole-of-" / "government": a compound
    for page in clean:
        assert not page.startswith("Six-step process")  # the running header is gone


@real
@pytest.mark.slow
def test_headings_on_real_pages() -> None:
    gfmd = _clean(GFMD)
    assert [h for _, h in find_headings(gfmd[0])] == ["Introduction"]
    headings3 = [h for _, h in find_headings(gfmd[2])]
    assert "Difficultés rencontrées par les migrants" in headings3
    assert "Défis auxquels sont confrontées les autorités municipales" in headings3
    assert [h for _, h in find_headings(gfmd[14])][:2] == ["ANNEX I", "Further Resources"]
    assert not find_headings(gfmd[12])  # a page of list items and endnotes
    access = _clean(ACCESS)
    assert [h for _, h in find_headings(access[0])] == ["PROVIDE ACCESS TO BASIC SERVICES FOR MIGRANTS"]
    assert "SDG 4: Quality education" in [h for _, h in find_headings(access[4])]


# --------------------------------------------------------------------------------------------------
# Synthetic cases
# --------------------------------------------------------------------------------------------------


def _doc(bodies: list[str], header: str = "Running Title of the Report", numbered: bool = True) -> list[str]:
    pages = []
    for i, body in enumerate(bodies, start=1):
        top = f"{header}\n{i}\n" if numbered else f"{header}\n"
        pages.append(top + body + "\nFooter line · Example Org\n")
    return pages


def test_same_length_and_empty_pages() -> None:
    assert clean_pages([]) == []
    assert clean_pages(["", "   \n\t ", "\n\n"]) == ["", "", ""]
    out = clean_pages(["Hello world."])
    assert out == ["Hello world."]


_BODIES = [
    "Cities are where most migrants settle first.\nThey need housing and schools.",
    "Local authorities deliver many services.\nFunding rarely follows the mandate.",
    "Data on urban migration is scarce.\nSurveys are costly for small towns.",
    "Partnerships with civil society help.\nTrust takes years to build.",
    "National plans should consult mayors.\nSome countries already do so.",
    "Finally, we list open questions.\nThey guide the round-table debate.",
]


def test_running_header_footer_and_numbers_removed() -> None:
    out = clean_pages(_doc(_BODIES))
    assert out == [body.replace("\n", " ") for body in _BODIES]


def test_identical_pages_vote_once() -> None:
    # a document made of one page printed twice: no line repeats "on many pages", nothing is removed
    page = "Six-step process\nEstablish transparent reporting.\nChecklist\nExtract from the guide"
    assert clean_pages([page, page]) == clean_pages([page]) * 2
    assert clean_pages([page])[0].startswith("Six-step process")


def test_rare_repeat_is_kept() -> None:
    bodies = [*_BODIES, *_BODIES]
    bodies = [f"{body}\nPage-specific remark number {i}." for i, body in enumerate(bodies)]
    bodies[3] = "Key messages\n" + bodies[3]
    bodies[7] = "Key messages\n" + bodies[7]
    out = clean_pages(_doc(bodies, numbered=False))
    assert out[3].startswith("Key messages\n\n") and out[7].startswith("Key messages\n\n")


def test_page_number_shapes() -> None:
    bodies = [body.replace("\n", " ") for body in _BODIES]
    for shape in ("- {n} -", "Page {n}", "{n} | Annual report", "Annual report | {n}", "{n} / 9", "p. {n}"):
        pages = [f"{shape.format(n=i)}\n{body}\n" for i, body in enumerate(bodies, start=1)]
        assert clean_pages(pages) == bodies, shape
        # alone, a page keeps a "12 | Title" line unless it is the first or the last line
        assert clean_pages([pages[0]]) == bodies[:1], shape


def test_pages_differing_only_in_numbers_are_kept() -> None:
    pages = [f"Some text on page {i}.\nTotal for {i}: 12 cities." for i in range(1, 5)]
    assert clean_pages(pages) == [page.replace("\n", " ") for page in pages]


def test_characters() -> None:
    raw = "The ﬁrst ﬀ\u00a0case, co\u00adoperation, zero\u200bwidth, ctrl\x07, l’été «ok»\r\nnext"
    assert clean_pages([raw]) == ["The first ff case, cooperation, zerowidth, ctrl, l’été «ok» next"]
    assert clean_pages(["inter\u00ad\nnational"]) == ["international"]
    assert clean_pages(["\ue000 bullet item\n\ue000 second item"]) == ["• bullet item\n• second item"]


def test_hyphenation_rules() -> None:
    page = (
        "The inter-\nnational agenda and the Souss-\nMassa region, a multi-\nacteurs approach,\n"
        "the COVID-\n19 pandemic, a gender-\nand age-sensitive policy and non-\ngovernmental bodies,\n"
        "re-\nsilience is plain.\n"
        "We know the words multi-acteurs and resilience and international."
    )
    out = clean_pages([page])[0]
    assert "The international agenda" in out
    assert "Souss-Massa region" in out
    assert "a multi-acteurs approach" in out
    assert "COVID-19 pandemic" in out
    assert "a gender- and age-sensitive policy" in out
    assert "non-governmental bodies" in out
    assert "resilience is plain" in out


def test_paragraphs_lists_headings_notes() -> None:
    page = "\n".join(
        [
            "OBJECTIVE 15",
            "1.2 Scope of the paper",
            "This paragraph is wrapped over several lines of about the same width so that",
            "it has to be joined back into a single line of text, which is what we want to",
            "check here.",
            "A new paragraph starts after a short line.",
            "• first bullet item that is long enough to wrap over the width of the line and",
            "continues here",
            "- second item",
            "a) third item",
            "1 A footnote with a number and a fact: 42 cities.",
        ]
    )
    out = clean_pages([page])[0]
    assert out.split("\n\n") == [
        "OBJECTIVE 15",
        "1.2 Scope of the paper",
        "This paragraph is wrapped over several lines of about the same width so that it has to be "
        "joined back into a single line of text, which is what we want to check here.",
        "A new paragraph starts after a short line.",
        "• first bullet item that is long enough to wrap over the width of the line and continues here\n"
        "- second item\na) third item",
        "1 A footnote with a number and a fact: 42 cities.",
    ]


def test_url_rejoined() -> None:
    page = "See the guide at https://www.\nexample.org/a/b/\nreport.pdf for more.\nAnd http://x.org/file_\n2020.pdf"
    out = clean_pages([page])[0]
    assert "https://www.example.org/a/b/report.pdf for more." in out
    assert "http://x.org/file_2020.pdf" in out


def test_normalize_for_match() -> None:
    assert normalize_for_match("L’“Arrivée” — c’est «  ville  »") == normalize_for_match(
        "l'\"arrivée\" - c'est «ville»"
    )
    assert normalize_for_match("mot :") == normalize_for_match("mot:") == "mot:"
    assert normalize_for_match("55 %") == "55%"
    assert normalize_for_match("inter-\nnational co\u00adoperation") == "international cooperation"
    assert normalize_for_match("Souss-\nMassa") == "souss- massa"
    assert normalize_for_match("  A\u00a0B\tC\n\nD  ") == "a b c d"
    assert normalize_for_match("ﬁnal ﬀ") == "final ff"
    assert normalize_for_match("") == ""


def test_find_headings_synthetic() -> None:
    text = (
        "Introduction\n\nThis is the body of the introduction, long enough to be a paragraph.\n\n"
        "OBJECTIVE 4\n\nEnsure that all migrants have proof of legal identity.\n\n"
        "The list below:\n\n- item one\n\nDATA PROTECTION\n\nIt is critical to protect data.\n"
    )
    found = find_headings(text)
    assert [h for _, h in found] == ["Introduction", "OBJECTIVE 4", "DATA PROTECTION"]
    for off, h in found:
        assert text[off : off + len(h)] == h
    assert find_headings("") == []
    assert find_headings("This is a sentence.\n\nAnother one, with a comma.") == []


# --------------------------------------------------------------------------------------------------
# Robustness and properties
# --------------------------------------------------------------------------------------------------


def test_large_page_is_fast() -> None:
    line = "Cities welcome inter-\nnational migrants, with ﬁnance and data from 2019. "
    page = (line * (200_000 // len(line) + 1))[:200_000]
    start = time.perf_counter()
    out = clean_pages([page, page[:1000], "x" * 200_000])
    assert time.perf_counter() - start < 2.0
    assert len(out) == 3 and "international" in out[0]
    start = time.perf_counter()
    normalize_for_match(page)
    find_headings(out[0])
    assert time.perf_counter() - start < 1.0


def test_pathological_inputs() -> None:
    weird = [
        "\x00\x01\x02",
        "\ud800 lone surrogate",
        "\u2028\u2029\x85\x0b\x0c",
        "-\n-\n-\n",
        "›" * 1000,
        "1\n2\n3\n4",
        "a" + "-\n" * 5000 + "b",
        "\u0301\u0301 combining",
        "İstanbul ǅ ß ﬃ ﬄ",
    ]
    out = clean_pages(weird)
    assert len(out) == len(weird)
    for text in weird:
        normalize_for_match(text)
        find_headings(text)


_texts = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(list("-\n ‐–—’«»ﬁ\u00ad.:;•›1")),
    max_size=300,
)


@given(st.lists(_texts, max_size=8))
def test_clean_pages_never_raises(pages: list[str]) -> None:
    out = clean_pages(pages)
    assert len(out) == len(pages)
    assert all(isinstance(page, str) for page in out)
    for page in out:
        assert page == page.strip()
        assert "\n\n\n" not in page
        assert "  " not in page


@given(
    st.lists(
        st.sampled_from(["Header A", "12", "- 3 -", "Text line here.", "more words", "", "Footer"]), max_size=30
    ).map("\n".join),
    st.integers(1, 6),
)
def test_clean_pages_repeated_structure(page: str, n: int) -> None:
    out = clean_pages([page] * n + [page + "\nextra"])
    assert len(out) == n + 1


@given(_texts)
def test_normalize_for_match_idempotent(text: str) -> None:
    once = normalize_for_match(text)
    assert normalize_for_match(once) == once


@given(_texts)
def test_find_headings_offsets(text: str) -> None:
    for off, heading in find_headings(text):
        assert heading
        assert text[off : off + len(heading)] == heading


@given(st.lists(_texts, min_size=1, max_size=5))
def test_find_headings_on_cleaned_pages(pages: list[str]) -> None:
    for page in clean_pages(pages):
        for off, heading in find_headings(page):
            assert page[off : off + len(heading)] == heading
