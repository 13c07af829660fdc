"""Property-based tests (hypothesis) of tracking's pure rules: tag normalisation and the
span rule (end > start, at most 24 h, not in the future, not before 2000), each against
a plain restatement of the rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tracking.domain import EARLIEST_START, MAX_TAG_LENGTH, MAX_TAGS, check_span, normalize_tags
from tt_common.errors import InvalidArgument

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=2)

tag_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=MAX_TAG_LENGTH + 5
)


@settings(max_examples=300)
@given(raw=st.lists(tag_text | st.sampled_from(["a", "A", " a ", "ß", "SS", "ss", "ǅ", "ǆ"]), max_size=30))
@example(raw=["x"] * 25)
@example(raw=[f"t{i}" for i in range(MAX_TAGS + 1)])
def test_tags_are_normalised_or_refused_naming_the_tag(raw: list[str]) -> None:
    try:
        tags = normalize_tags(raw)
    except InvalidArgument as exc:
        field = exc.violations[0].field
        assert field == "tags" or field.startswith("tags[")
        if field.startswith("tags["):
            bad = raw[int(field[5:-1])].strip()
            assert not bad or len(bad) > MAX_TAG_LENGTH or any(ord(c) < 32 for c in bad)
        else:
            assert len({t.strip().casefold() for t in raw}) > MAX_TAGS
        return
    assert len(tags) <= MAX_TAGS
    assert all(t == t.strip() and 0 < len(t) <= MAX_TAG_LENGTH for t in tags)
    assert len({t.casefold() for t in tags}) == len(tags)  # no case-insensitive duplicates
    assert {t.casefold() for t in tags} == {r.strip().casefold() for r in raw}  # nothing lost
    assert normalize_tags(list(tags)) == tags  # idempotent
    # First spelling kept: the order follows first occurrences in the input.
    firsts = []
    for r in raw:
        if r.strip().casefold() not in {f.casefold() for f in firsts}:
            firsts.append(r.strip())
    assert list(tags) == firsts


offsets = st.timedeltas(min_value=-timedelta(days=9000), max_value=timedelta(hours=1))
lengths = st.timedeltas(min_value=-timedelta(hours=2), max_value=timedelta(hours=26))


@settings(max_examples=500)
@given(start_offset=offsets, length=lengths)
@example(start_offset=-timedelta(hours=24), length=timedelta(hours=24))
@example(start_offset=-timedelta(hours=1), length=timedelta(0))
@example(start_offset=-timedelta(hours=1), length=timedelta(hours=1) + SKEW)
@example(start_offset=-timedelta(hours=1), length=timedelta(hours=1) + SKEW + timedelta(microseconds=1))
def test_span_rule_matches_its_statement(start_offset: timedelta, length: timedelta) -> None:
    start = NOW + start_offset
    end = start + length
    if start < EARLIEST_START or start > NOW + SKEW:
        expected = "start_time"
    elif end <= start or end - start > timedelta(hours=24) or end > NOW + SKEW:
        expected = "end_time"
    else:
        expected = None
    try:
        check_span(start, end, NOW, SKEW)
    except InvalidArgument as exc:
        assert exc.violations[0].field == expected
    else:
        assert expected is None
