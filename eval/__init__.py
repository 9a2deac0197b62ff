"""Retrieval evaluation: a question file, relevance judgements, ranx metrics, a report and `arrival eval`.

Definitions used throughout (see `eval.relevance` and `eval.metrics` for the details):

* A retrieved passage is **relevant** to a question when its normalised text contains one of the question's
  normalised quotes; or, for a quote cut by a chunk boundary, when the quote is found in the normalised text of
  the passage's pages (one page of margin either side) *and* the passage, located in that text, overlaps the
  quote's occurrence by at least 60 % of the quote's characters (a contiguous prefix or suffix of the quote, or
  the passage lies wholly inside it); or, for a question with no quote but with
  ``source`` and ``page``, when the passage comes from that file (path-suffix match) and spans that page.
* **Recall@k** is the success rate at k (ranx ``hit_rate@k``): the share of questions with at least one
  relevant passage among the first k. The full set of relevant chunks is not enumerable for every question
  (quotes straddle chunks, page-level judgements), so classic recall is not defined here.
* **MRR@10** and **nDCG@10** use binary relevance over the judged retrieved list of each retriever.
* A question's **language pair** is ``<question lang>→<doc lang>``: the question counts as cross-language only
  when *all* the index material holding its quotes is in the other language.
"""
