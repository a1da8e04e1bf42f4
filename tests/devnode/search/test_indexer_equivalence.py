"""The bulk indexer builds exactly the structures of the one-word-at-a-time indexer.

`IndexSearcher._index` builds each document's `word -> codes` map with whole-list operations
and spells out ASCII text and numbers; `reference_indexer.ReferenceSearcher` walks every word
occurrence through `word_positions` (tied to `tokenize` by a property in test_search.py) and
appends codes one by one. On random documents (Unicode, hard separators, numbers of every
shape, arrays, nested objects, stop words, restricted searchable attributes) and random writes,
both must hold the same per-document maps (same words in the same order, same codes in the same
order), field lengths, postings and vocabulary, and answer random searches the same. A facet
index built for every document at once equals one built a document at a time.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.devnode.search.execute import SearchRequest, run_search
from miroir.devnode.search.facets import FieldIndex
from miroir.devnode.search.index import IndexSearcher, codes_tuple, word_codes_map
from miroir.devnode.settings import default_settings

from .reference_indexer import ReferenceSearcher

WORDS = ["dark", "knight", "the", "Élan", "crème", "straße", "中文", "42", "x1", "batman"]
SEPARATORS = [" ", " ", ", ", ". ", "; ", "\n", "-", "!", "…", " ' "]

text = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=8).map(
    lambda parts: "".join(w + s for w, s in parts)
) | st.text(alphabet="ab .;é中1-", max_size=12)
number = (
    st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, 1e16, 1.5e-7, 12.5, -3.25, 2.0])
)
scalar = text | number | st.booleans() | st.none()
value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["b", "c", "title"]), inner, max_size=2),
    max_leaves=6,
)
document = st.dictionaries(
    st.sampled_from(["title", "overview", "tags", "n", "a", "a.b", "genre"]), value, max_size=5
)
writes = st.lists(
    st.tuples(st.sampled_from(["upsert", "upsert", "upsert", "delete"]), st.integers(0, 8),
              document),
    min_size=1,
    max_size=14,
)
SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "searchableAttributes": st.sampled_from(
            [["*"], ["title", "overview"], ["a", "tags", "*"], ["a.b", "n"]]
        ),
        "stopWords": st.sampled_from([["the"], ["the", "42", "a"]]),
    },
)
queries = st.lists(
    st.builds(
        SearchRequest,
        q=st.lists(st.sampled_from(WORDS + ["knigt", "bat", "dar", "1", "5", "0"]), max_size=3)
        .map(" ".join)
        | st.sampled_from(['"dark knight"', "-the", "elan straße"]),
        limit=st.sampled_from([3, 20]),
        matching_strategy=st.sampled_from(["last", "all"]),
    ),
    min_size=1,
    max_size=3,
)


def _trie_shape(node: dict[str, Any]) -> list[Any]:
    return [(ch, _trie_shape(child) if isinstance(child, dict) else child)
            for ch, child in node.items()]


def _structures(searcher: IndexSearcher) -> Any:
    return (
        searcher.field_names,
        {
            internal_id: [(word, tuple(codes_tuple(codes))) for word, codes in words.items()]
            for internal_id, words in searcher.doc_words.items()
        },
        searcher.doc_field_lengths,
        searcher.field_length_docs,
        searcher.word_docs,
        list(searcher.word_docs),
        searcher.trie.sorted_words,
        _trie_shape(searcher.trie.root),
    )


def _answer(searcher: IndexSearcher, request: SearchRequest) -> Any:
    try:
        outcome = run_search(searcher, request)
    except MeiliError as error:
        return error.body()
    return (
        outcome.total,
        [(h.internal_id, h.score, h.details, h.values) for h in outcome.hits],
        outcome.matched_ids,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patch=SETTINGS, history=writes, requests=queries)
def test_bulk_indexer_builds_and_answers_like_the_reference(patch, history, requests) -> None:
    full = default_settings()
    full.update(patch)
    bulk, reference = IndexSearcher(full), ReferenceSearcher(full)
    for step, (action, internal_id, doc) in enumerate(history):
        for searcher in (bulk, reference):
            if action == "upsert":
                searcher.upsert(internal_id, doc)
            else:
                searcher.delete(internal_id)
        if step % 5 == 4:  # searches between writes, so cached structures meet later writes
            assert _answer(bulk, requests[0]) == _answer(reference, requests[0])
    assert _structures(bulk) == _structures(reference)
    for request in requests:
        assert _answer(bulk, request) == _answer(reference, request)


@pytest.mark.parametrize("stop_words", [[], ["b"]])
@pytest.mark.parametrize("length", [65_535, 65_536, 65_537, 66_000])
def test_positions_past_the_last_code_are_clamped_like_the_reference(stop_words, length) -> None:
    """Past 65,535 positions codes are clamped, so one word can hold a code twice."""
    full = default_settings()
    full["stopWords"] = stop_words
    long_text = " ".join((["a", "b", "c"] * 22_000)[:length])
    doc = {"title": long_text, "tags": ["z. a", long_text[:50]], "n": 7, "p": 1.5}
    bulk, reference = IndexSearcher(full), ReferenceSearcher(full)
    for searcher in (bulk, reference):
        searcher.upsert(0, doc)
        searcher.upsert(1, {"title": "a b", "n": -3})
    assert _structures(bulk) == _structures(reference)
    if length > 65_537:
        assert codes_tuple(bulk.doc_words[0]["a"]).count(0xFFFF) > 1


@given(
    st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(0, 40)), max_size=30),
    st.booleans(),
)
def test_word_codes_map_groups_codes_in_occurrence_order(pairs, unique) -> None:
    if unique:  # distinct codes, as a document has unless positions were clamped
        pairs = list(dict((code, word) for word, code in pairs).items())
        pairs = [(word, code) for code, word in pairs]
    tokens = [word for word, _ in pairs]
    codes = [code for _, code in pairs]
    grouped: dict[str, list[int]] = {}
    for word, code in pairs:
        grouped.setdefault(word, []).append(code)
    built = word_codes_map(tokens, codes, codes_unique=unique)
    assert list(built) == list(grouped)
    assert {word: codes_tuple(found) for word, found in built.items()} == {
        word: tuple(found) for word, found in grouped.items()
    }
    assert all(type(found) is int for word, found in built.items() if len(grouped[word]) == 1)


def _facet_state(index: FieldIndex) -> Any:
    return (
        index.facts,
        list(index.strings.items()),
        list(index.original.items()),
        list(index.numbers.items()),
        (index.exists, index.null, index.empty, index.with_numbers, index.with_strings),
        index.sorted_strings(),
        index.sorted_numbers(),
    )


@settings(max_examples=200, deadline=None)
@given(
    docs=st.lists(document, max_size=12),
    attribute=st.sampled_from(["title", "n", "a", "a.b", "tags", "genre", "missing"]),
)
def test_facet_index_built_at_once_equals_one_document_at_a_time(docs, attribute) -> None:
    documents = dict(enumerate(docs))
    built, added = FieldIndex(attribute), FieldIndex(attribute)
    built.build(documents)
    for internal_id, doc in documents.items():
        added.add(internal_id, doc)
    assert _facet_state(built) == _facet_state(added)
