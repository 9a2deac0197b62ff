"""The quote matching of the PDF viewer (assistant/static/quote-match.mjs), run with node when it is installed,
against the Python normalisation the browser tests use (assistant/viewer.py `fold_text`)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from arrival.assistant.viewer import STATIC, fold_text


def test_fold_text_ignores_what_a_pdf_text_layer_changes():
    assert fold_text("Une coupure: migra-\ntion") == fold_text("une coupure migration")
    assert fold_text("ﬁnancement de l’œuvre") == "financementdeloeuvre"
    assert fold_text("« l'accès »") == fold_text('"l’accès"') == "lacces"
    assert fold_text("Straße Æsop") == "strasseaesop"
    assert fold_text("e\u0301te\u0301") == fold_text("été") == "ete"
    assert fold_text("  \n\t") == ""


def _node(script: str) -> object:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    js = f"import * as m from {json.dumps((STATIC / 'quote-match.mjs').as_uri())};\n{script}"
    out = subprocess.run([node, "--input-type=module", "-e", js], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


SAMPLES = ["Ligne cassée: migra-\ntion", "ﬁnancement de l’œuvre", "« l'accès »", "Straße Æsop", "e\u0301te\u0301",
           "COVID-19 — 2020 ½", "Ĳssel İstanbul ŀ", "Lisboa/Lisbonne (Portugal)"]


def test_javascript_and_python_fold_alike():
    folded = _node(f"console.log(JSON.stringify({json.dumps(SAMPLES)}.map(m.foldText)))")
    assert folded == [fold_text(s) for s in SAMPLES]


def _find(items: list[dict[str, object]], quote: str) -> dict[str, object]:
    script = f"""
const items = {json.dumps(items)};
const stream = m.buildStream(items);
const r = m.findQuote(stream, {json.dumps(quote)});
const ranges = [...m.itemRanges(stream, r.segments)].map(([i, list]) => [i, list.map(([s, e]) =>
  [s, Math.min(e, items[i].str.length)])]);
const text = ranges.map(([i, list]) => list.map(([s, e]) => items[i].str.slice(s, e)).join("")).join("|");
console.log(JSON.stringify({{...r, ranges, text}}));
"""
    result = _node(script)
    assert isinstance(result, dict)
    return result


def test_a_quote_across_lines_with_hyphenation_and_ligatures():
    items = [{"str": "Le soutien à l’intégration éco-"}, {"str": "nomique des mi"}, {"str": "grants est essentiel."},
             {"str": "Autre phrase."}]
    r = _find(items, "l'intégration économique des migrants est essentiel")
    assert r["exact"] and len(r["segments"]) == 1
    assert fold_text(str(r["text"])) == fold_text("l'intégration économique des migrants est essentiel")


def test_a_quote_that_runs_onto_the_next_page_skips_the_running_header():
    items = [{"str": "Fin de page: les gouvernements devraient faire le point de manière"},
             {"str": "Guide pour la mise en œuvre - 12"}, {"str": "STEP 6 ÉTABLISSEMENT DE RAPPORTS"},
             {"str": "régulière et sans exclusive des progrès accomplis."}]
    quote = "les gouvernements devraient faire le point de manière régulière et sans exclusive des progrès accomplis"
    r = _find(items, quote)
    assert r["exact"] and len(r["segments"]) == 2
    assert [i for i, _ in r["ranges"]] == [0, 3]  # nothing of the header and footer is highlighted
    assert fold_text(str(r["text"])) == fold_text(quote)


def test_two_columns_read_in_stream_order():
    left = ["Allows actors to stay", "grounded in the scope", "of the GCM."]
    right = ["Given that the 23", "GCM objectives are", "comprehensive across", "many topics."]
    items = [{"str": s} for s in left + right]
    quote = "Given that the 23 GCM objectives are comprehensive across many topics."
    r = _find(items, quote)
    assert r["exact"] and [i for i, _ in r["ranges"]] == [3, 4, 5, 6]


def test_an_approximate_match_says_so_and_a_missing_quote_matches_nothing():
    items = [{"str": "The city provides services to all residents regardless of status and language."}]
    r = _find(items, "The city provides services to every resident regardless of status and language.")
    assert not r["exact"] and 0.8 <= r["matched"] / r["total"] < 1
    none = _find(items, "Completely unrelated sentence about remittances and banks.")
    assert none["matched"] / none["total"] < 0.5
