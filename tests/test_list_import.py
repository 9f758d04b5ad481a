"""Reading a person's MyAnimeList export (src/web/list_import.py): every fixture format, hostile files, any bytes.

The fixtures (tests/fixtures/myanimelist/, written by make_samples.py there) are a real-format export of an embedded
sample user, the same gzipped, an AniList-converted variant, a manga list and an empty list. Hostile files are made
here: each must be refused with ListImportError, the right status and a one-sentence message, well within a second,
and the gzip bomb without unpacking more than the cap.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import logging
import re
import resource
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.web.list_import import (
    MAX_ENTRIES,
    MAX_UNCOMPRESSED_BYTES,
    STATUSES,
    ImportedList,
    ListImportError,
    parse_myanimelist_export,
)
from tests.fixtures.myanimelist import make_samples

FIXTURES = Path(__file__).parent / "fixtures" / "myanimelist"
SAMPLE_BY_STATUS = {"watching": 8, "completed": 199, "on_hold": 5, "dropped": 7, "plan_to_watch": 24}
CANONICAL = {"Watching": "watching", "Completed": "completed", "On-Hold": "on_hold", "Dropped": "dropped",
             "Plan to Watch": "plan_to_watch"}
# one line, one sentence: no full stop inside or at the end, and "what is wrong: what to do"
ONE_SENTENCE = re.compile(r"[^\n]+: [^\n]+")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def export(*entries: str, myinfo: str = "<myinfo><user_export_type>1</user_export_type></myinfo>") -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n<myanimelist>{myinfo}{"".join(entries)}</myanimelist>'.encode()


def anime(anime_id: str = "1", score: str | None = "8", status: str | None = "Completed", title: str = "Title") -> str:
    fields = f"<series_animedb_id>{anime_id}</series_animedb_id><series_title><![CDATA[{title}]]></series_title>"
    fields += "" if score is None else f"<my_score>{score}</my_score>"
    fields += "" if status is None else f"<my_status>{status}</my_status>"
    return f"<anime>{fields}</anime>"


@functools.cache
def sample_entries() -> tuple[make_samples.Entry, ...]:
    return tuple(make_samples.make_entries())  # reads the embedded ratings: once


def big_export(entries: int) -> bytes:
    """A real-format export of ``entries`` anime: the sample's entries over and over, with new ids."""
    sample = sample_entries()
    return make_samples.animelist_xml([dataclasses.replace(sample[index % len(sample)], anime_id=index + 1)
                                       for index in range(entries)]).encode()


def refused(body: bytes, **caps: int) -> ListImportError:
    """The error parsing ``body`` raises, checked for its form (how fast: bench/list_import.py)."""
    with pytest.raises(ListImportError) as caught:
        parse_myanimelist_export(body, **caps)
    message = str(caught.value)
    assert ONE_SENTENCE.fullmatch(message) and not message.endswith(".") and ". " not in message, message
    return caught.value


# ---------------------------------------------------------------------------------------------------------
# The fixtures
# ---------------------------------------------------------------------------------------------------------
def test_fixtures_are_what_the_generator_writes():
    entries = list(sample_entries())
    sample = make_samples.animelist_xml(entries)
    assert fixture("animelist_sample.xml") == sample.encode()
    assert fixture("animelist_anilist.xml") == make_samples.anilist_xml(entries).encode()
    assert fixture("mangalist.xml") == make_samples.mangalist_xml().encode()
    assert fixture("animelist_empty.xml") == make_samples.animelist_xml([]).encode()
    packed = fixture("animelist_sample.xml.gz")
    assert gzip.decompress(packed) == sample.encode()
    assert packed[4:8] == bytes(4) and not packed[3] & 0x08  # mtime 0 and no file name: the same bytes every run


def test_sample_export_gives_every_row_of_the_sample_user():
    parsed = parse_myanimelist_export(fixture("animelist_sample.xml"))
    rows = make_samples.read_sample()  # (anime_id, rating, title, type, episodes), rating -1 = not rated
    assert [entry.anime_id for entry in parsed.entries] == [row[0] for row in rows]
    assert [entry.title for entry in parsed.entries] == [row[2] for row in rows]
    assert [entry.score for entry in parsed.entries] == [max(row[1], 0) for row in rows]
    assert [entry.status for entry in parsed.entries] == [CANONICAL[entry.status]
                                                          for entry in sample_entries()]
    assert parsed.by_status == SAMPLE_BY_STATUS and list(parsed.by_status) == list(STATUSES)
    assert (parsed.entries_in_file, parsed.skipped_without_id, parsed.skipped_repeats) == (243, 0, 0)
    assert parsed.scored == sum(row[1] > 0 for row in rows) == 195
    titles = {entry.title for entry in parsed.entries}
    assert {"Panty & Stocking with Garterbelt", "Kaze no Tani no Nausicaä", "Mahou Shoujo Madoka★Magica"} <= titles


def test_sample_statuses_and_scores_agree_with_myinfo_and_make_sense():
    parsed = parse_myanimelist_export(fixture("animelist_sample.xml"))
    myinfo = ElementTree.fromstring(fixture("animelist_sample.xml")).find("myinfo")
    totals = {status: int(myinfo.findtext(field)) for status, field in
              [("watching", "user_total_watching"), ("completed", "user_total_completed"),
               ("on_hold", "user_total_onhold"), ("dropped", "user_total_dropped"),
               ("plan_to_watch", "user_total_plantowatch")]}
    assert parsed.by_status == totals and int(myinfo.findtext("user_total_anime")) == len(parsed.entries)
    assert all(entry.score == 0 for entry in parsed.entries if entry.status == "plan_to_watch")
    assert all(1 <= entry.score <= 4 for entry in parsed.entries if entry.status == "dropped")
    assert any(entry.score == 0 for entry in parsed.entries if entry.status == "completed")


def test_gzipped_sample_reads_the_same_as_the_plain_one():
    assert parse_myanimelist_export(fixture("animelist_sample.xml.gz")) == \
        parse_myanimelist_export(fixture("animelist_sample.xml"))


def test_anilist_converted_export_is_read_with_its_quirks():
    parsed = parse_myanimelist_export(fixture("animelist_anilist.xml"))
    assert parsed.by_status == {"watching": 3, "completed": 24, "on_hold": 2, "dropped": 3, "plan_to_watch": 6}
    # 40 written, one commented out (not an entry), one with id 0 (skipped and counted)
    assert (len(parsed.entries), parsed.entries_in_file, parsed.skipped_without_id) == (38, 39, 1)
    sample = {entry.anime_id: entry for entry in sample_entries()}
    for entry in parsed.entries:  # numeric, lower-case and decimal spellings all read as the original entry
        original = sample[entry.anime_id]
        assert (entry.title, entry.score, entry.status) == (original.title, original.score,
                                                           CANONICAL[original.status])
    text = fixture("animelist_anilist.xml").decode("utf-8")
    assert text.startswith("\ufeff") and "<my_status>dropped</my_status>" in text and ".5</my_score>" in text
    assert "<series_animedb_id>0</series_animedb_id>" in text and "<!--anime>" in text


def test_manga_list_is_refused_politely():
    error = refused(fixture("mangalist.xml"))
    assert error.status == 400 and "manga list" in str(error) and "anime list" in str(error)


def test_manga_entries_without_myinfo_are_refused_the_same_way():
    error = refused(export("<manga><manga_mangadb_id>1</manga_mangadb_id></manga>", myinfo=""))
    assert "manga list" in str(error)


def test_empty_export_says_the_list_is_empty():
    error = refused(fixture("animelist_empty.xml"))
    assert error.status == 400 and "empty" in str(error)


def test_the_user_name_is_not_kept():
    parsed = parse_myanimelist_export(fixture("animelist_sample.xml"))
    assert "sample_user" not in repr(parsed)
    assert {field.name for field in dataclasses.fields(ImportedList)} == {
        "entries", "by_status", "entries_in_file", "skipped_without_id", "skipped_repeats"}


def test_nothing_is_logged(caplog):
    caplog.set_level(logging.DEBUG)
    parse_myanimelist_export(fixture("animelist_sample.xml.gz"))
    with pytest.raises(ListImportError):
        parse_myanimelist_export(fixture("mangalist.xml"))
    assert caplog.records == []


# ---------------------------------------------------------------------------------------------------------
# Fields, one rule at a time
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("written", "status"), [
    ("Watching", "watching"), ("Completed", "completed"), ("On-Hold", "on_hold"), ("Dropped", "dropped"),
    ("Plan to Watch", "plan_to_watch"), ("1", "watching"), ("2", "completed"), ("3", "on_hold"), ("4", "dropped"),
    ("6", "plan_to_watch"), ("dropped", "dropped"), ("PLAN TO WATCH", "plan_to_watch"), ("on hold", "on_hold"),
    ("plan_to_watch", "plan_to_watch"), (" Completed\n", "completed"), ("", "plan_to_watch"), (None, "plan_to_watch"),
])
def test_statuses(written, status):
    assert parse_myanimelist_export(export(anime(status=written))).entries[0].status == status


@pytest.mark.parametrize("written", ["Reading", "Plan to Read", "5", "0", "7", "Completed!", "Watching Completed"])
def test_unknown_status_is_refused(written):
    error = refused(export(anime(anime_id="42", status=written)))
    assert error.status == 400 and "anime 42" in str(error) and "Plan to Watch" in str(error)


@pytest.mark.parametrize(("written", "score"), [
    ("0", 0), ("10", 10), ("7", 7), ("07", 7), (" 8 ", 8), ("", 0), (None, 0), ("7.5", 8), ("7.49", 7), ("9.5", 10),
    ("0.0", 0), ("10.0", 10),
])
def test_scores(written, score):
    assert parse_myanimelist_export(export(anime(score=written))).entries[0].score == score


@pytest.mark.parametrize("written", ["11", "85", "100", "-1", "10.5", "10.01", "7,5", "ten", "nan", "1e1", "٧", "+5"])
def test_score_outside_0_to_10_is_refused(written):
    error = refused(export(anime(anime_id="42", score=written)))
    assert error.status == 400 and "anime 42" in str(error) and "10" in str(error)


def test_entries_without_a_usable_id_are_skipped_and_counted():
    parsed = parse_myanimelist_export(export(
        anime("5"), anime("0"), anime(""), anime("abc"), anime("-3"), anime("1.5"), anime(str(2**63)), anime("٣"),
        "<anime><series_title>no id at all</series_title></anime>", anime(" 7 "), anime("5", score="2")))
    assert [entry.anime_id for entry in parsed.entries] == [5, 7]
    assert parsed.entries[0].score == 8  # the first of a repeated id is kept
    assert (parsed.entries_in_file, parsed.skipped_without_id, parsed.skipped_repeats) == (11, 8, 1)


def test_list_with_entries_but_no_usable_id_is_refused():
    error = refused(export(anime("0"), anime("abc")))
    assert "none of the 2 entries" in str(error)


def test_unknown_fields_comments_and_leading_white_space_are_harmless():
    body = b"\n\t " + export(
        "<!-- a converter's note -->", anime("3", title="A &amp; B <c>"),
        "<anime><extra a='1'><nested/></extra><series_animedb_id>4</series_animedb_id></anime>")
    parsed = parse_myanimelist_export(body)
    assert [(entry.anime_id, entry.title) for entry in parsed.entries] == [(3, "A &amp; B <c>"), (4, "")]


def test_unknown_fields_may_nest():
    nested = "<extra>" * 20 + "deep" + "</extra>" * 20
    parsed = parse_myanimelist_export(export(anime("3").replace("</anime>", nested + "</anime>"), anime("4")))
    assert [entry.anime_id for entry in parsed.entries] == [3, 4]


def test_a_few_elements_beside_the_entries_are_ignored_but_not_thousands():
    assert len(parse_myanimelist_export(export(anime(), "<x/>" * 1_000)).entries) == 1
    assert "not anime entries" in str(refused(export(anime(), "<x/>" * 1_001)))


def test_an_entry_may_be_long_but_not_endless():
    def with_comments(length: int) -> bytes:
        return export(anime("3").replace("</anime>", f"<my_comments><![CDATA[{'a' * length}]]></my_comments></anime>"))

    assert parse_myanimelist_export(with_comments(150_000)).entries  # far longer than any note on MyAnimeList
    assert "runs over 256 kB" in str(refused(with_comments(400_000)))


def test_entry_cap_can_be_lowered():
    error = refused(fixture("animelist_sample.xml"), max_entries=100)
    assert error.status == 413 and "100" in str(error)
    assert len(parse_myanimelist_export(fixture("animelist_sample.xml"), max_entries=243).entries) == 243


@pytest.mark.parametrize("entries", [1_000, 5_000])
def test_large_real_format_lists_are_read_whole(entries):
    assert len(parse_myanimelist_export(big_export(entries)).entries) == entries  # how fast: bench/list_import.py


def test_the_default_caps_hold_the_largest_list_allowed():
    body = big_export(MAX_ENTRIES)
    assert len(body) < MAX_UNCOMPRESSED_BYTES  # the byte cap never refuses a list the entry cap allows
    assert len(parse_myanimelist_export(gzip.compress(body)).entries) == MAX_ENTRIES


# ---------------------------------------------------------------------------------------------------------
# Hostile and broken files
# ---------------------------------------------------------------------------------------------------------
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
BILLION_LAUGHS = DECLARATION + b"""<!DOCTYPE myanimelist [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<myanimelist><anime><series_animedb_id>1</series_animedb_id><series_title>&lol9;</series_title></anime></myanimelist>"""
XXE = DECLARATION + b"""<!DOCTYPE myanimelist [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<myanimelist><anime><series_animedb_id>1</series_animedb_id><series_title>&x;</series_title></anime></myanimelist>"""
PARAMETER_ENTITY = DECLARATION + b"""<!DOCTYPE myanimelist [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd">
 %remote;]><myanimelist/>"""
EXTERNAL_DTD = DECLARATION + (b'<!DOCTYPE myanimelist SYSTEM "http://myanimelist.net/static/dtd/2.1/myanimelist.dtd">'
                              + export(anime())[len(DECLARATION):])
LATE_DOCTYPE = export(anime(), '<!DOCTYPE x [<!ENTITY a "b">]>')
UNDECLARED_ENTITY = export("<anime><series_animedb_id>1</series_animedb_id><series_title>&a;</series_title></anime>")
NOT_UTF8 = export(anime(title="Nausica")).replace(b"Nausica", "Nausicaä".encode("latin-1"))


def _truncated_gzip() -> bytes:
    packed = fixture("animelist_sample.xml.gz")
    return packed[:len(packed) // 2]


def _flood() -> bytes:
    return export(anime(), "<x/>" * 5_000_000)


def _attribute_bomb() -> bytes:
    attributes = " ".join(f"a{index}=''" for index in range(1_500_000))  # about 16 MB
    return export(f"<anime {attributes}></anime>")


def _many_entries() -> bytes:
    return export(*(f"<anime><series_animedb_id>{index}</series_animedb_id></anime>" for index in range(1, 100_001)))


HOSTILE: list[tuple[str, Callable[[], bytes], int, str]] = [
    ("billion laughs", lambda: BILLION_LAUGHS, 400, "DTD or entities"),
    ("XXE", lambda: XXE, 400, "DTD or entities"),
    ("parameter entity", lambda: PARAMETER_ENTITY, 400, "DTD or entities"),
    ("external DTD", lambda: EXTERNAL_DTD, 400, "DTD or entities"),
    ("DTD gzipped", lambda: gzip.compress(BILLION_LAUGHS), 400, "DTD or entities"),
    ("DOCTYPE after the root", lambda: LATE_DOCTYPE, 400, "not well-formed XML"),
    ("undeclared entity", lambda: UNDECLARED_ENTITY, 400, "entity it does not declare"),
    ("truncated gzip", _truncated_gzip, 400, "cut short"),
    ("gzip header only", lambda: fixture("animelist_sample.xml.gz")[:10], 400, "cut short"),
    ("damaged gzip", lambda: b"\x1f\x8b" + bytes(40), 400, "damaged"),
    ("bytes after the gzip", lambda: fixture("animelist_sample.xml.gz") + b"junk", 400, "stray bytes"),
    ("truncated XML", lambda: fixture("animelist_sample.xml")[:100_000], 400, "cut short"),
    ("100k entries", _many_entries, 413, "more than 20,000 entries"),
    ("5M elements", _flood, 400, "over 1,000 elements that are not anime entries"),
    ("2M empty entries", lambda: export("<anime/>" * 2_000_000), 413, "more than 20,000 entries"),
    ("1M-deep nesting", lambda: export("<x>" * 1_000_000), 400, "an entry in the file runs over 256 kB"),
    ("1M elements in an entry", lambda: export(anime().replace("</anime>", "<x/>" * 1_000_000 + "</anime>")), 400,
     "an entry in the file runs over 256 kB"),
    ("attribute bomb", _attribute_bomb, 400, "an entry in the file runs over 256 kB"),
    ("huge value", lambda: export(anime(title="x" * 2**20)), 400, "an entry in the file runs over 256 kB"),
    ("huge text in the root", lambda: export(" x" * 2**19), 400, "an entry in the file runs over 256 kB"),
    ("huge prolog", lambda: b"<!--" + b"x" * 2**20 + b"--><myanimelist>" + anime().encode() + b"</myanimelist>", 400,
     "over 256 kB before its list begins"),
    ("huge root tag", lambda: b"<myanimelist" + b" a=''" * 2**18 + b">" + anime().encode() + b"</myanimelist>", 400,
     "over 256 kB before its list begins"),
    ("not UTF-8", lambda: NOT_UTF8, 400, "not UTF-8"),
    ("binary", lambda: bytes(range(256)) * 4, 400, "not UTF-8"),
    ("not XML", lambda: b"user_id,anime_id,rating\n1,20,8\n", 400, "not XML"),
    ("JSON", lambda: b'{"data": {"MediaListCollection": {"lists": []}}}', 400, "JSON"),
    ("JSON array", lambda: b"  [1, 2, 3]", 400, "JSON"),
    ("web page", lambda: b"<!DOCTYPE html>\n<html><body>Export</body></html>", 400, "web page"),
    ("zip", lambda: b"PK\x03\x04" + bytes(200), 400, ".zip archive"),
    ("wrong root", lambda: b"<rss><channel/></rss>", 400, "not a MyAnimeList export"),
    ("two roots", lambda: export(anime()) + b"<myanimelist/>", 400, "not well-formed XML"),
    ("empty", lambda: b"", 400, "empty"),
    ("white space", lambda: b" \r\n\t", 400, "empty"),
    ("byte order mark only", lambda: b"\xef\xbb\xbf", 400, "empty"),
    ("gzipped nothing", lambda: gzip.compress(b""), 400, "empty"),
    ("plain XML over the cap", lambda: b" " * (MAX_UNCOMPRESSED_BYTES + 1), 413, "larger than 20 MB"),
]


@pytest.mark.parametrize(("label", "body", "status", "fragment"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_and_broken_files_are_refused(label, body, status, fragment):
    error = refused(body())
    assert error.status == status and fragment in str(error), str(error)


@pytest.mark.parametrize("body", [
    _flood, lambda: export("<x>" * 1_000_000), _attribute_bomb, _many_entries,
    lambda: export(anime().replace("</anime>", "<x/>" * 1_000_000 + "</anime>")),
], ids=["5M elements", "1M-deep nesting", "attribute bomb", "100k entries", "1M elements in an entry"])
def test_floods_are_refused_within_bounded_memory(body):
    content = body()
    tracemalloc.start()
    try:
        with pytest.raises(ListImportError):
            parse_myanimelist_export(content)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # what is read is let go: at most one entry (256 kB of XML) and one chunk are held


def test_xxe_never_reads_the_file():
    error = refused(XXE)
    assert "root:" not in str(error)


def test_compressed_cap():
    packed = fixture("animelist_sample.xml.gz")
    error = refused(packed, max_compressed_bytes=len(packed) - 1)
    assert error.status == 413 and f"{len(packed) - 1:,} bytes" in str(error)
    assert parse_myanimelist_export(packed, max_compressed_bytes=len(packed)).entries


def test_uncompressed_cap_applies_to_gzipped_and_plain_files():
    plain = fixture("animelist_sample.xml")
    for body in (plain, fixture("animelist_sample.xml.gz")):
        assert refused(body, max_uncompressed_bytes=len(plain) - 1).status == 413
        assert parse_myanimelist_export(body, max_uncompressed_bytes=len(plain)).entries


def test_concatenated_gzip_members_and_zero_padding_are_one_file():
    body = fixture("animelist_sample.xml")
    half = body.index(b"\t\t<anime>", len(body) // 2)
    packed = gzip.compress(body[:half]) + bytes(4) + gzip.compress(body[half:]) + bytes(8)
    assert parse_myanimelist_export(packed) == parse_myanimelist_export(body)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzipped to about 1 MB (a few seconds to make, once)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(2**20)
    return b"".join([*(deflater.compress(zeros) for _ in range(1024)), deflater.flush()])


def test_gzip_bomb_is_refused_without_filling_memory(gzip_bomb):
    assert len(gzip_bomb) < 1.1 * 2**20
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        error = refused(gzip_bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.status == 413 and "unpacks to more than 20 MB" in str(error)
    assert peak < 3 * MAX_UNCOMPRESSED_BYTES  # the cap plus zlib's buffers, never the gigabyte
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 1024


def test_gzip_bomb_inside_the_compressed_cap_of_a_small_unpacked_cap(gzip_bomb):
    assert refused(gzip_bomb, max_uncompressed_bytes=2**20).status == 413


# ---------------------------------------------------------------------------------------------------------
# Any bytes at all
# ---------------------------------------------------------------------------------------------------------
def _outcome(body: bytes) -> ImportedList | ListImportError:
    try:
        parsed = parse_myanimelist_export(body)
    except ListImportError as error:
        assert error.status in (400, 413) and ONE_SENTENCE.fullmatch(str(error)), str(error)
        return error
    ids = [entry.anime_id for entry in parsed.entries]
    assert parsed.entries and len(ids) == len(set(ids)) and all(anime_id > 0 for anime_id in ids)
    assert all(0 <= entry.score <= 10 and entry.status in STATUSES for entry in parsed.entries)
    assert sum(parsed.by_status.values()) == len(parsed.entries)
    assert parsed.entries_in_file == len(parsed.entries) + parsed.skipped_without_id + parsed.skipped_repeats
    return parsed


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise_anything_else(body):
    _outcome(body)


@PROPERTY
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_after_gzip_magic_never_raise_anything_else(body):
    _outcome(b"\x1f\x8b" + body)


@PROPERTY
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_gzipped_never_raise_anything_else(body):
    _outcome(gzip.compress(body))


def _small_sample(entries: int = 12) -> bytes:
    """The sample export cut down to its first ``entries`` anime."""
    sample = fixture("animelist_sample.xml")
    end = -1
    for _ in range(entries + 1):
        end = sample.index(b"\t\t<anime>", end + 1)
    return sample[:end] + make_samples.FOOTER.encode()


SMALL_SAMPLE = _small_sample()


@PROPERTY
@given(st.integers(0, len(SMALL_SAMPLE)), st.integers(0, len(SMALL_SAMPLE)), st.binary(max_size=12),
       st.booleans())
def test_damaged_exports_never_raise_anything_else(start, end, replacement, packed):
    start, end = min(start, end), max(start, end)
    body = SMALL_SAMPLE[:start] + replacement + SMALL_SAMPLE[end:]
    _outcome(gzip.compress(body) if packed else body)


FIELD_TEXT = st.one_of(st.text(st.characters(blacklist_categories=["Cs"]), max_size=12),  # no lone surrogates
                       st.sampled_from(["1", "0", "10", "7.5", "Completed", "6", "", "-1"]))


@PROPERTY
@given(st.lists(st.tuples(FIELD_TEXT, FIELD_TEXT, FIELD_TEXT, FIELD_TEXT), max_size=8))
def test_exports_with_any_field_values_never_raise_anything_else(rows):
    def text(value: str) -> str:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace("]]>", "]]&gt;")

    _outcome(export(*(f"<anime><series_animedb_id>{text(anime_id)}</series_animedb_id><series_title>{text(title)}"
                      f"</series_title><my_score>{text(score)}</my_score><my_status>{text(status)}</my_status></anime>"
                      for anime_id, title, score, status in rows)))
