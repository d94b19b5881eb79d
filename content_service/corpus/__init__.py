"""Corpora for the keyless run, the tests and the benchmark.

* `generator.generate(n)`: a deterministic synthetic catalogue with realistic properties.
* `real.REAL`: a small hand-made set of real titles, people and characters.

No package on PyPI ships a usable catalogue of real titles with characters under a licence
that allows redistribution; see docs/content-search.md.
"""

from content_service.corpus.generator import generate, names_of, split_character

__all__ = ["generate", "names_of", "split_character"]
