"""shop.payloads.is_storable, the fast check both webhook parsers run, agrees with the walk it replaces."""

from hypothesis import given, settings
from hypothesis import strategies as st

from shop.payloads import is_storable, storable

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500)
@given(JSON_VALUES)
def test_is_storable_says_what_the_walk_says(value):
    assert is_storable(value) == (storable(value) == value)


def test_the_cases_that_matter():
    assert not is_storable({"name": "a\x00b"})  # a NUL, from JSON's "\u0000"
    assert not is_storable(["\ud800"])  # a lone surrogate
    assert not is_storable({"\x00": 1})  # in a key too
    assert is_storable({"name": "\\u0000"})  # the six characters, as data: fine
    assert is_storable({"😀": "é"})  # an astral character is one code point, not a surrogate pair
