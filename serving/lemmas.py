"""WordNet lemmatization without NLTK at serving time: the data it reads, saved with the model.

``nltk.stem.WordNetLemmatizer().lemmatize(word, pos)`` is ``min(morphy(word, pos), key=len)``
(or the word itself when that is empty), where ``morphy`` (NLTK's
``WordNetCorpusReader._morphy``) reads three things only:

- which words are WordNet lemmas of the part of speech (the first field of ``index.noun`` and
  ``index.verb``),
- the exception lists (``noun.exc``, ``verb.exc``: an irregular form and its base forms),
- fixed suffix rules (``MORPHOLOGICAL_SUBSTITUTIONS``, copied below).

:class:`Lemmatizer` holds exactly that for nouns and verbs (the only parts of speech the cleaner
asks for) and applies the same steps. Training reads it from the WordNet corpus through NLTK
(:meth:`Lemmatizer.from_wordnet`) and saves it beside the cleaner (``lemmas.json``, ~2 MB), so a
lemmatizing server loads it in milliseconds: importing NLTK costs ~2 s (its package initialiser
imports scikit-learn and scipy.stats) and building NLTK's reader ~2.5 s more, all before the
first ``/ping``. ``tests/test_lemmas.py`` checks the output equals NLTK's on every distinct token
of the 20 Newsgroups training split.

Source followed: nltk 3.10 ``nltk/corpus/reader/wordnet.py`` (``_morphy``,
``_load_lemma_pos_offset_map``, ``_load_exception_map``) and ``nltk/stem/wordnet.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from serving import jsondoc

FORMAT = 1
FILE = "lemmas.json"
ENCODING = "utf8"  # WordNetCorpusReader._ENCODING
POS = {"n": "noun", "v": "verb"}
# NLTK's WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS for nouns and verbs, in its order.
SUBSTITUTIONS = {
    "n": (("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
          ("shes", "sh"), ("men", "man"), ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
          ("ing", "e"), ("ing", "")),
}
CACHE_SIZE = 200_000  # words remembered per process (then the cache starts again)


class Lemmatizer:
    """Noun-then-verb WordNet lemmas, as the cleaner has always computed them."""

    def __init__(self, lemmas: dict[str, frozenset[str]],
                 exceptions: dict[str, dict[str, tuple[str, ...]]]) -> None:
        if set(lemmas) != set(POS) or set(exceptions) != set(POS):
            raise ValueError(f"lemmas and exceptions are needed for exactly {sorted(POS)}")
        self.lemmas = lemmas
        self.exceptions = exceptions
        self._cache: dict[str, str] = {}
        # A form longer than this is its own lemma: it is no exception and no lemma, and every
        # rule shortens a form by at most 3 characters ("ing" -> ""), so no candidate is one
        # either. Such forms (a document's long letter runs) are answered without the rules and
        # never cached, so hostile text cannot fill the cache with long strings.
        longest = max((len(w) for table in (*lemmas.values(), *exceptions.values())
                       for w in table), default=0)
        self.max_form = longest + max(len(old) - len(new) for rules in SUBSTITUTIONS.values()
                                      for old, new in rules)

    def morphy(self, form: str, pos: str) -> list[str]:
        """NLTK's ``_morphy(form, pos)``: the form and its candidate bases that are lemmas of
        ``pos``, in order, without repeats."""
        exceptions = self.exceptions[pos]
        if form in exceptions:
            forms = list(exceptions[form])
        else:
            forms = [form[: -len(old)] + new for old, new in SUBSTITUTIONS[pos]
                     if form.endswith(old)]
        known = self.lemmas[pos]
        result: list[str] = []
        for candidate in [form, *forms]:
            if candidate in known and candidate not in result:
                result.append(candidate)
        return result

    def lemmatize(self, word: str, pos: str) -> str:
        """``WordNetLemmatizer().lemmatize(word, pos)``."""
        found = self.morphy(word, pos)
        return min(found, key=len) if found else word

    def lemma(self, word: str) -> str:
        """The noun lemma, or the verb lemma when the word is no noun form (cached)."""
        if len(word) > self.max_form:
            return word
        cached = self._cache.get(word)
        if cached is None:
            noun = self.lemmatize(word, "n")
            cached = noun if noun != word else self.lemmatize(word, "v")
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[word] = cached
        return cached

    def __getstate__(self) -> dict[str, Any]:  # pickled with a training pipeline: no cache
        return {"lemmas": self.lemmas, "exceptions": self.exceptions}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["lemmas"], state["exceptions"])  # type: ignore[misc]

    # --- from WordNet (training), to and from the artifact (serving) ---------------------------

    @classmethod
    def from_wordnet(cls, root: Any) -> Lemmatizer:
        """Read the index and exception files of the WordNet corpus at ``root`` (an NLTK path
        pointer from ``nltk.data.find``: a directory or inside a zip), with NLTK's parsing
        rules: index lines that start with a space are the licence; a lemma is the first field;
        an exception line is a form, then its bases (a later line wins)."""
        lemmas: dict[str, frozenset[str]] = {}
        exceptions: dict[str, dict[str, tuple[str, ...]]] = {}
        for pos, suffix in POS.items():
            with root.join(f"index.{suffix}").open(ENCODING) as fp:
                lemmas[pos] = frozenset(line.split(None, 1)[0] for line in fp
                                        if not line.startswith(" ") and line.strip())
            table: dict[str, tuple[str, ...]] = {}
            with root.join(f"{suffix}.exc").open(ENCODING) as fp:
                for line in fp:
                    terms = line.split()
                    if terms:
                        table[terms[0]] = tuple(terms[1:])
            exceptions[pos] = table
        return cls(lemmas, exceptions)

    def save(self, path: Path) -> Path:
        """One JSON object; each list is one newline-separated string (a lemma per line; an
        exception per line: the form, then its bases, space-separated, as in WordNet's files),
        which loads ~10x faster than arrays of 130,000 strings."""
        state = {
            "format": FORMAT,
            "lemmas": {pos: "\n".join(sorted(words)) for pos, words in self.lemmas.items()},
            "exceptions": {pos: "\n".join(" ".join((form, *bases))
                                          for form, bases in sorted(table.items()))
                           for pos, table in self.exceptions.items()},
        }
        path.write_bytes(orjson.dumps(state) + b"\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Lemmatizer:
        state = jsondoc.loads(path.read_bytes(), str(path))
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path}: not a lemma file of format {FORMAT}")
        try:
            lemmas = {pos: frozenset(state["lemmas"][pos].split("\n")) for pos in POS}
            exceptions = {}
            for pos in POS:
                rows = (line.split(" ") for line in state["exceptions"][pos].split("\n") if line)
                exceptions[pos] = {row[0]: tuple(row[1:]) for row in rows}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: malformed lemma file ({exc})") from None
        return cls(lemmas, exceptions)
