"""Reads a person's MyAnimeList anime list export (the animelist_<time>_-_<id>.xml.gz file that MyAnimeList's Export
page gives, or the same XML unzipped or made by an AniList/Kitsu converter) into the anime, scores and statuses.

The list is someone's own data: it serves one response and is never stored or logged here, and the user name in
<myinfo> is never read (only user_export_type is). Every problem raises ``ListImportError`` (status 400, or 413
when the file is too large) whose message is one sentence saying what is wrong and what to do.

The format, as relied on here. Sources: "MyAnimeList XML Unofficial Specification" (CC-BY-4.0), docs/malxml-spec.md
in github.com/bokusu/bokusu; real export entries, e.g. animelist_1623616958_-_3667065.xml in
tests/API/LibraryImportTest.php of github.com/Kurozora/kurozora-web; malexport/parse/xml.py of
github.com/seanbreckenridge/malexport, a parser of real exports; for converters, Modules/Convert-AniListXML.psm1 of
github.com/bokusu/animeManga-autoBackup; MyAnimeList's numeric status codes as listed in the README of
github.com/valsaven/getmal.
- XML whose root is <myanimelist>: one <myinfo>, then <anime> entries, or <manga> entries in a manga list;
  <myinfo><user_export_type> is 1 for an anime list and 2 for a manga list. MyAnimeList writes UTF-8; a file that
  declares another encoding (UTF-16, ISO-8859-1) is read in it, as XML allows.
- An <anime> has series_animedb_id (the MyAnimeList anime id, required), series_title (CDATA), series_type,
  series_episodes, my_id, my_watched_episodes, my_start_date, my_finish_date, my_rated, my_score, my_storage,
  my_storage_value, my_status, my_comments, my_times_watched, my_rewatch_value, my_priority, my_tags,
  my_rewatching, my_rewatching_ep, my_discuss, my_sns, update_on_import. Only the id, title, score and status are
  read; any field may be missing and unknown fields are ignored (converters write fewer fields, in other orders,
  with extras of their own).
- my_score is a whole number from 0 to 10, 0 meaning not scored. Empty counts as 0; a decimal from 0 to 10 (what
  converters copy from AniList's 10-point decimal scale) is rounded half up; anything else refuses the file,
  since it means another scale (AniList's 100 points) that no rounding would read right.
- my_status is Watching, Completed, On-Hold, Dropped or Plan to Watch (the spec's default when empty); older
  exports and converters also write MyAnimeList's codes 1, 2, 3, 4 and 6, or another case ("dropped"). Mapping:
  Watching/1 -> watching, Completed/2 -> completed, On-Hold/3 -> on_hold, Dropped/4 -> dropped,
  Plan to Watch/6 -> plan_to_watch, compared ignoring case, spaces, hyphens and underscores. Anything else
  (e.g. a manga list's "Reading") refuses the file.
- An entry without a usable id (missing, not a whole number, or 0: converters write 0, or comment the entry out,
  for titles AniList cannot match to MyAnimeList) is skipped and counted, not refused: the rest of the list is
  still good. A repeated id keeps its first entry and counts the repeat. A file with entries but none usable, and
  an export with no entries at all, are refused, each with its own message.
- Converters may start the file with a UTF-8 byte order mark or a line break before "<?xml": both are skipped.

Hostile files are harmless. The upload (gzipped, or plain XML, which may be as large as the unpacked cap), the
unpacked size (a gzip "bomb" is unpacked at most one byte past the cap, by a bounded zlib reader) and the number of
entries are capped (the MAX_* constants; the caller may pass others). defusedxml, with DTDs, entity declarations
and external references forbidden, reads the prolog, everything before the root element: the only place a
document type declaration may stand (XML 1.0, section 2.8), so the only place entities can be declared. With none
declared, expat refuses any entity reference but the five predefined ones. The document is then read, from its
first byte again, by the standard library's C-accelerated parser, streaming, building the tree in C with no Python
call per element: defusedxml's pure-Python parser takes three times as long over the whole file, to guard against
what cannot occur past the prolog. What has been read is let go every 64 kB, and a file is refused once its prolog
or one entry runs over 256 kB (a real entry is about 1 kB: this catches giant tags, values, nesting and attribute
floods) or it holds over 1,000 elements that are not entries: so no file within the caps holds more than some tens
of MB of parsed XML at once, and none takes much longer than a real list of its size.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pyexpat import errors as expat_errors
from typing import Any
from xml.etree import ElementTree

import defusedxml.ElementTree as defused_tree
from defusedxml import DefusedXmlException, DTDForbidden

from config.settings import ServingConfig
from src.engine.personal_lists import STATUSES, ListEntry
from src.engine.validation import InvalidRequestError, quoted
from src.web.params import MAX_ID

# The caps of config/config.yaml (serving.list_max_*) as they were measured: a real-format export takes 0.9 kB per
# anime unpacked and well under 0.1 kB gzipped: 20,000 anime, more than almost anyone lists, are 18 MB unpacked and
# under 1 MB gzipped (long notes and tags compress worse, hence the room left in the compressed cap).
MAX_COMPRESSED_BYTES = 5 * 2**20
MAX_UNCOMPRESSED_BYTES = 20 * 2**20
MAX_ENTRIES = 20_000

# MyAnimeList's spellings, its numeric codes, and the keys any other case or spacing of them comes down to
_STATUS_BY_NAME = {"Watching": "watching", "Completed": "completed", "On-Hold": "on_hold", "Dropped": "dropped",
                   "Plan to Watch": "plan_to_watch", "1": "watching", "2": "completed", "3": "on_hold", "4": "dropped",
                   "6": "plan_to_watch", "watching": "watching", "completed": "completed", "onhold": "on_hold",
                   "dropped": "dropped", "plantowatch": "plan_to_watch"}
_STATUS_NOISE = str.maketrans("", "", " -_")
_DEFAULT_STATUS = "plan_to_watch"
_ID = re.compile(r"[0-9]{1,19}", re.ASCII)
_SCORE = re.compile(r"[0-9]{1,2}(\.[0-9]{1,4})?", re.ASCII)
_WHOLE_SCORES = {"": 0} | {str(score): score for score in range(11)}  # what nearly every entry has
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16  # bytes fed to the parser at a time: what is read (and held) between checks
# A real entry is about 1 kB, and the prolog before the list less. Each is held whole until it ends, so this bounds
# what one holds: text, elements, or attributes (about 16 bytes of memory per byte of attributes).
_MAX_PART_BYTES = 256 * 2**10
_MAX_OTHER_ELEMENTS = 1_000  # elements beside <myinfo> and the entries: an export has none
_HOW = "upload the animelist .xml.gz file from MyAnimeList's Export page"
_AGAIN = "download the export from MyAnimeList again and upload it unchanged"
_DECLARATIONS = ("the file declares a DTD or entities, which MyAnimeList exports never do: upload the export exactly "
                 "as MyAnimeList gave it")
_ZIP_MAGIC = b"PK\x03\x04"
# expat's error codes for a document that stops too soon, and for "&name;" with no declaration of name
_CUT_SHORT = {expat_errors.codes[message] for message in (
    expat_errors.XML_ERROR_NO_ELEMENTS, expat_errors.XML_ERROR_UNCLOSED_TOKEN, expat_errors.XML_ERROR_PARTIAL_CHAR,
    expat_errors.XML_ERROR_UNCLOSED_CDATA_SECTION)}
_UNDEFINED_ENTITY = expat_errors.codes[expat_errors.XML_ERROR_UNDEFINED_ENTITY]


class ListImportError(InvalidRequestError):
    """An uploaded list that cannot be read; ``status`` is the HTTP status to answer with (400; 413: too large;
    415: not sent as an export)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImportedList:
    entries: list[ListEntry]  # the usable entries, in the file's order
    by_status: dict[str, int]  # usable entries per status, every status present
    entries_in_file: int  # <anime> elements read, usable or not
    skipped_without_id: int  # no usable MyAnimeList id (missing, not a whole number, or 0)
    skipped_repeats: int  # an anime id already listed earlier in the file

    @property
    def scored(self) -> int:
        """Entries with a score (1 to 10)."""
        return sum(1 for entry in self.entries if entry.score)

    def summary(self, ignored: list[int]) -> dict[str, Any]:
        """What was read, as the API reports it; ``ignored``: the usable entries' ids the catalogue does not know."""
        return {"entries": len(self.entries), "known": len(self.entries) - len(ignored), "rated": self.scored,
                "by_status": self.by_status,
                "skipped": {"without_id": self.skipped_without_id, "repeats": self.skipped_repeats}}


# What the API takes as the export's Content-Type: the XML, or MyAnimeList's .xml.gz as browsers and curl name it.
# None (no header) is read as either, told apart by the first bytes, as a bare client sends it.
LIST_MEDIA_TYPES = ("application/xml", "text/xml", "application/gzip", "application/x-gzip")
# What a form upload adds to the file: its multipart framing and the page's other fields
_FORM_ROOM = 64 * 2**10


# The views that take a whole export: their body may be much larger than a favourites request's (application.py)
UPLOAD_ENDPOINTS = frozenset({"api.list_recommendations", "pages.import_list"})


def too_large(config: ServingConfig) -> str:
    """What a list upload over ``upload_limit`` is told (before a byte of it is read)."""
    return (f"the file is larger than any anime list export (at most {_size(config.list_max_xml_bytes)} as XML, "
            f"{_size(config.list_max_upload_bytes)} gzipped): {_HOW}")


def upload_limit(config: ServingConfig) -> int:
    """The largest request body a list upload may have: the larger cap of the two forms (gzipped, or plain XML as
    large as the unpacked cap), with room for a form's framing. deploy/traffic.yaml's max_list_bytes equals it."""
    return max(config.list_max_upload_bytes, config.list_max_xml_bytes) + _FORM_ROOM


def read_uploaded_list(mimetype: str, body: bytes, config: ServingConfig) -> ImportedList:
    """The list in an upload's ``body`` whose Content-Type is ``mimetype`` ("" when none), with the caps of
    ``config``; ListImportError (415) when the type says it is something else."""
    if mimetype and mimetype not in LIST_MEDIA_TYPES:
        raise ListImportError(f"send the export as the body with Content-Type: application/xml, or application/gzip "
                              f"for the .xml.gz file, not {quoted(mimetype)}", 415)
    return parse_myanimelist_export(body, max_compressed_bytes=config.list_max_upload_bytes,
                                    max_uncompressed_bytes=config.list_max_xml_bytes,
                                    max_entries=config.list_max_entries)


def parse_myanimelist_export(body: bytes, *, max_compressed_bytes: int = MAX_COMPRESSED_BYTES,
                             max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
                             max_entries: int = MAX_ENTRIES) -> ImportedList:
    """The anime list in an uploaded MyAnimeList export: gzipped (recognised by its first bytes) or plain XML."""
    return _read_list(_unpacked(bytes(body), max_compressed_bytes, max_uncompressed_bytes), max_entries)


def _read_list(xml: bytes, max_entries: int) -> ImportedList:
    root = _root_tag(xml)
    if root != "myanimelist":
        raise ListImportError(f"the file is XML but not a MyAnimeList export (its root is {quoted(root)}, not "
                              f"'myanimelist'): {_HOW}")
    # A quick count of the entry tags first (a byte search, milliseconds over the largest file) refuses a list over
    # the cap before any of it is parsed; the parse counts again, exactly, for a list the quick count underrates
    if xml.count(b"<anime>") + xml.count(b"<anime ") > max_entries:
        raise _too_many(max_entries)
    entries, seen, without_id, repeats, in_file = [], set(), 0, 0, 0
    for element in _anime_elements(xml):
        in_file += 1
        if in_file > max_entries:
            raise _too_many(max_entries)
        id_text = (element.findtext("series_animedb_id") or "").strip()
        anime_id = int(id_text) if _ID.fullmatch(id_text) else 0
        if not 0 < anime_id <= MAX_ID:
            without_id += 1
            continue
        if anime_id in seen:
            repeats += 1
            continue
        seen.add(anime_id)
        entries.append(ListEntry(anime_id, _score(element.findtext("my_score"), anime_id),
                                 _status(element.findtext("my_status"), anime_id),
                                 (element.findtext("series_title") or "").strip()))
    if not in_file:
        raise ListImportError("the anime list in this export is empty: add anime to your list on MyAnimeList, "
                              "then export it again")
    if not entries:
        raise ListImportError(f"none of the {in_file:,} entries in the list has a MyAnimeList anime id: export "
                              "the list from MyAnimeList itself, or with a converter that keeps MyAnimeList ids")
    by_status = dict.fromkeys(STATUSES, 0)
    for entry in entries:
        by_status[entry.status] += 1
    return ImportedList(entries, by_status, in_file, without_id, repeats)


def _too_many(max_entries: int) -> ListImportError:
    return ListImportError(f"the list has more than {max_entries:,} entries, more than this site reads: upload a list "
                           f"of at most {max_entries:,} anime", 413)


def _size(limit: int) -> str:
    for unit, name in ((2**20, "MB"), (2**10, "kB")):
        if limit % unit == 0:
            return f"{limit // unit} {name}"
    return f"{limit:,} bytes"


def _unpacked(body: bytes, max_compressed: int, max_uncompressed: int) -> bytes:
    """The XML bytes: gunzipped if gzipped, without a UTF-8 byte order mark or leading white space."""
    if body[:2] == _GZIP_MAGIC:
        if len(body) > max_compressed:
            raise ListImportError(f"the file is larger than {_size(max_compressed)}, more than any anime list "
                                  f"export: {_HOW}", 413)
        xml = _gunzipped(body, max_uncompressed)
    elif len(body) > max_uncompressed:
        raise ListImportError(f"the file is larger than {_size(max_uncompressed)}, more than any anime list "
                              f"export: {_HOW}", 413)
    else:
        xml = body
    if xml.startswith(_UTF8_BOM):
        xml = xml[len(_UTF8_BOM):]
    xml = xml.lstrip()  # strict XML allows nothing before "<?xml", but some converters write a line break there
    if not xml:
        raise ListImportError(f"the file is empty: {_HOW}")
    return xml


def _gunzipped(body: bytes, limit: int) -> bytes:
    """The content of a gzip file, refused as soon as it passes ``limit`` bytes: zlib is never asked for more
    than one byte past the limit, so a small file that unpacks to gigabytes costs no more than a legal one."""
    parts: list[bytes] = []
    size, rest = 0, body
    try:
        while rest:  # gzip members may be concatenated; their contents are too
            if parts and rest[:2] != _GZIP_MAGIC:
                raise ListImportError(f"the .gz file has stray bytes after its end: {_AGAIN}")
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            part = inflater.decompress(rest, limit - size + 1)
            size += len(part)
            if size > limit:
                raise ListImportError(f"the file unpacks to more than {_size(limit)}, more than any anime list "
                                      f"export: {_HOW}", 413)
            if not inflater.eof:  # all the input was read, since the output stopped short of its limit
                raise ListImportError(f"the .gz file is cut short: {_AGAIN}")
            parts.append(part)
            rest = inflater.unused_data.lstrip(b"\x00")  # zero padding after a member is allowed, as gzip does
    except zlib.error:
        raise ListImportError(f"the .gz file is damaged: {_AGAIN}") from None
    return b"".join(parts)


class _RootReached(Exception):
    """The parser got past the prolog to the root element, whose name this carries."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class _RootSpotter:
    """A parser target that stops parsing at the first element."""

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        raise _RootReached(tag)

    def close(self) -> None:
        return None


def _root_tag(xml: bytes) -> str:
    """The root element's name, once defusedxml has read the prolog before it and found no DTD, entity
    declaration or external reference there (nor anything that is not XML)."""
    parser = defused_tree.XMLParser(target=_RootSpotter(), forbid_dtd=True, forbid_entities=True,
                                    forbid_external=True)
    try:
        view = memoryview(xml)
        for offset in range(0, len(xml), _CHUNK):
            if offset >= _MAX_PART_BYTES:
                raise ListImportError(f"the file has over {_size(_MAX_PART_BYTES)} before its list begins, unlike "
                                      f"any MyAnimeList export: {_HOW}")
            parser.feed(view[offset:offset + _CHUNK])
        parser.close()  # only reached without any element, where expat raises "no element found"
    except _RootReached as reached:
        return reached.tag
    except DTDForbidden as error:
        if (error.name or "").casefold() == "html":
            raise ListImportError(f"the file is a web page, not a MyAnimeList export: {_HOW}") from None
        raise ListImportError(_DECLARATIONS) from None
    except DefusedXmlException:
        raise ListImportError(_DECLARATIONS) from None
    except ElementTree.ParseError as error:
        raise _unreadable(xml, error, before_root=True) from None
    raise _unreadable(xml, None, before_root=True)  # a parser that neither found an element nor complained


def _anime_elements(xml: bytes) -> Iterator[ElementTree.Element]:
    """Each <anime> directly under the root, as soon as the parser has it whole. The tree is let go as it is read,
    so that only the entry being read and one chunk's worth are held; refuses a manga list as soon as it shows, an
    entry that runs over _MAX_PART_BYTES, and more than _MAX_OTHER_ELEMENTS elements of other kinds."""
    builder = ElementTree.TreeBuilder()
    # The document's root becomes this element's child, so that it can be reached while the file is read (the
    # builder hands its tree over only at the end), and parsing stays in C, with no Python call per element.
    holder = builder.start("holder", {})
    # defusedxml has read the prolog (_root_tag): no DTD, so no entity can be declared, and expat refuses any
    # reference to one; its pure-Python parser would take three times as long here for nothing.
    parser = ElementTree.XMLParser(target=builder)  # nosec B314  # the prolog was read by defusedxml, see above
    view = memoryview(xml)
    others = unfinished_for = 0
    unfinished: ElementTree.Element | None = None
    try:
        for offset in range(0, len(xml), _CHUNK):
            chunk = view[offset:offset + _CHUNK]
            parser.feed(chunk)
            if not len(holder):
                continue
            root = holder[0]
            # only the last of the root's children can still be open: the ones before it are whole
            finished = root[:-1]
            del root[:-1]
            for child in finished:
                others = _tally(child, others)
                if child.tag == "anime":
                    yield child
            latest = root[-1] if len(root) else None
            unfinished_for = unfinished_for + len(chunk) if latest is unfinished else 0
            unfinished = latest
            if unfinished_for > _MAX_PART_BYTES:
                raise ListImportError(f"an entry in the file runs over {_size(_MAX_PART_BYTES)}, unlike any "
                                      f"MyAnimeList export (about 1 kB an entry): {_HOW}")
        parser.close()
    except ElementTree.ParseError as error:
        raise _unreadable(xml, error, before_root=False) from None
    for child in holder[0] if len(holder) else ():
        others = _tally(child, others)
        if child.tag == "anime":
            yield child


def _tally(child: ElementTree.Element, others: int) -> int:
    """Checks one of the root's children: a manga list is refused, and so are too many unexpected elements;
    returns the count of those so far."""
    if child.tag == "anime":
        return others
    if child.tag == "manga" or (child.tag == "myinfo" and (child.findtext("user_export_type") or "").strip() == "2"):
        raise _manga_list()
    if child.tag != "myinfo":
        others += 1
        if others > _MAX_OTHER_ELEMENTS:
            raise ListImportError(f"the file holds over {_MAX_OTHER_ELEMENTS:,} elements that are not anime "
                                  f"entries, unlike any MyAnimeList export: {_HOW}")
    return others


def _manga_list() -> ListImportError:
    return ListImportError("this is a manga list: export your anime list from MyAnimeList instead (Export page, "
                           "export type Anime List)")


def _unreadable(xml: bytes, error: ElementTree.ParseError | None, before_root: bool) -> ListImportError:
    """The message for what expat could not read: JSON, a zip, text that is not UTF-8, not XML, XML cut short, an
    undeclared entity, or XML broken otherwise."""
    code, line = (error.code, f" (line {error.position[0]})") if error is not None else (None, "")
    if before_root and xml[:1] in (b"{", b"["):
        return ListImportError(f"the file is JSON, not a MyAnimeList export: {_HOW}")
    if before_root and xml.startswith(_ZIP_MAGIC):
        return ListImportError("the file is a .zip archive: upload the .xml.gz file as MyAnimeList gave it, or the "
                               ".xml file inside the archive")
    try:
        xml.decode("utf-8")
    except UnicodeDecodeError:
        return ListImportError(f"the file is not UTF-8 text{line}: {_HOW}")
    if before_root:
        return ListImportError(f"the file is not XML{line}: {_HOW}")
    if code in _CUT_SHORT:
        return ListImportError(f"the file ends in the middle of the list{line}, so it was cut short: {_AGAIN}")
    if code == _UNDEFINED_ENTITY:
        return ListImportError(f"the file refers to an entity it does not declare{line}, which MyAnimeList exports "
                               "never do: upload the export exactly as MyAnimeList gave it")
    return ListImportError(f"the file is not well-formed XML{line}: {_AGAIN}")


def _score(text: str | None, anime_id: int) -> int:
    text = (text or "").strip()
    if text in _WHOLE_SCORES:
        return _WHOLE_SCORES[text]
    if not _SCORE.fullmatch(text) or float(text) > 10:
        raise ListImportError(f"anime {anime_id} has the score {quoted(text)}, but scores run from 0 (not scored) "
                              "to 10: set your list to the 10-point scale and export it again")
    return int(float(text) + 0.5)


def _status(text: str | None, anime_id: int) -> str:
    text = (text or "").strip()
    if not text:
        return _DEFAULT_STATUS
    status = _STATUS_BY_NAME.get(text) or _STATUS_BY_NAME.get(text.casefold().translate(_STATUS_NOISE))
    if status is None:
        raise ListImportError(f"anime {anime_id} has the unknown status {quoted(text)}: export the list again from "
                              "MyAnimeList, whose statuses are Watching, Completed, On-Hold, Dropped and Plan to "
                              "Watch")
    return status
