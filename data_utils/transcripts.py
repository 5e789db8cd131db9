"""Transcripts tables: one CSV row per utterance, read and validated into a text-only ``Corpus``.

Columns: ``dialogue_id, turn, speaker, label, split, text`` and optionally ``utterance_id`` and ``session`` (the
recording session, for leave-one-session-out cross-validation; without it, IEMOCAP ids give theirs); other
columns are ignored. ``turn`` orders the utterances of a dialogue (0..n-1, rows may come in any order), ``split`` is one of
train, valid, test for all rows of a dialogue. Labels that are all IEMOCAP names keep the IEMOCAP label ids
(``IEMOCAP6``); any other label set becomes its own classes, in sorted order (label scheme ``'native'``). A blank
label or IEMOCAP's ``xxx`` (no agreed label) keeps the utterance in its dialogue as context, never scored.

Without an ``utterance_id`` column, ids are derived as ``<dialogue_id>_<speaker><nnn>`` with a per-speaker counter
in turn order, which reproduces IEMOCAP's own names (``Ses01F_impro01_F000``).

For prediction with a saved extractor (``read_transcripts(path, labelled=False)``, used by
``data_utils.extractors.prediction_corpus``) only ``dialogue_id, turn, text`` are required. Every dialogue is in the
``test`` split (a ``split`` column is not read); without a ``label`` column every label is ``''``, an utterance
without a label (never scored, under every scheme), and ``label_names`` are worked out from the labels as above
(IEMOCAP6 then ``''`` when there are none); without a ``speaker`` column every utterance's speaker is
:data:`UNKNOWN_SPEAKER` (so a model sees one party) and derived utterance ids are ``<dialogue_id>_<nnn>`` (the turn).

The corpus has no features yet (``modalities == ()``); ``data_utils.text_features`` adds them. Every error is a
``DataFormatError`` naming the file, the line (the header is line 1), the dialogue and the column.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .corpus import SPLITS, Corpus, DataFormatError, Dialogue, invisible_character, read_input
from .labels import CONTEXT_LABELS, IEMOCAP6
from .safe_pickle import Limits, foreign_format

REQUIRED_COLUMNS = ("dialogue_id", "turn", "speaker", "label", "split", "text")
UTTERANCE_ID = "utterance_id"
SESSION = "session"
OPTIONAL_COLUMNS = (UTTERANCE_ID, SESSION)
PREDICTION_COLUMNS = ("dialogue_id", "turn", "text")  # required with labelled=False; the others are optional
UNKNOWN_SPEAKER = "unknown"  # the speaker of every utterance of a CSV without a speaker column (labelled=False)
NON_BLANK = ("dialogue_id", "speaker", "text")  # a blank label is an utterance without one: context, never scored
# names that must be visible: a NUL or zero-width character would make a look-alike second speaker, class or dialogue
NAMES = ("dialogue_id", "speaker", "label", UTTERANCE_ID, SESSION)
MAX_FIELD_CHARS = 1 << 24  # one field (an utterance's text) may hold up to 16 Mi characters


class TranscriptFormatError(DataFormatError):
    """A ``DataFormatError`` that also names the line of the transcripts file (``line``, 1-based)."""

    def __init__(self, source: str, problem: str, *, line: int | None = None, dialogue: str | None = None,
                 field: str | None = None):
        super().__init__(f"{source}: line {line}" if line is not None else source, problem,
                         dialogue=dialogue, field=field)
        self.source, self.line = source, line  # source: the file alone, as in DataFormatError


@dataclass(frozen=True)
class _Row:
    line: int
    dialogue_id: str
    turn: int
    speaker: str | None  # None: no speaker column (labelled=False)
    label: str | None  # None: no label column (labelled=False)
    split: str
    text: str
    utterance_id: str | None
    session: str | None = None


def read_transcripts(path, *, labelled: bool = True) -> Corpus:
    """Read and validate a transcripts CSV into a ``Corpus`` without features (``modalities == ()``).

    ``labelled=False``: a CSV to predict (see the module docstring): ``speaker``, ``label`` and ``split`` are
    optional and every dialogue is in the test split. Raises ``FileNotFoundError`` (no such file) or
    :class:`TranscriptFormatError` (one line naming the file, the line, the dialogue and the column)."""
    return parse_transcripts(transcripts_bytes(path), str(path), labelled=labelled)[0]


def transcripts_bytes(path) -> bytes:
    """The bytes of the transcripts file ``path``, read within the loader's limits (one-line errors)."""
    return read_input(Path(path), "transcripts file", Limits.from_env(), missing="give the path of a CSV file",
                      expected="a CSV file")


def parse_transcripts(data: bytes, source: str, *, labelled: bool = True) -> tuple[Corpus, list[str]]:
    """:func:`read_transcripts` of a CSV's bytes (``source`` names them in every error: a file, or ``<DataFrame>``),
    and the utterance ids in the order of its rows."""
    rows = _read_rows(data, source, labelled)
    by_dialogue = _group_dialogues(rows, source)
    if labelled:
        dialogue_split = {did: _per_dialogue(turns, "split", source) for did, turns in by_dialogue.items()}
        splits = _splits(dialogue_split, source)
    else:
        splits = {"train": (), "valid": (), "test": tuple(sorted(by_dialogue))}
    sessions = {did: _per_dialogue(turns, SESSION, source) for did, turns in by_dialogue.items()}
    utterance_ids = _utterance_ids(by_dialogue, source)
    label_names = _label_names(r.label or "" for r in rows)
    dialogues = {
        did: Dialogue(id=did, utterance_ids=tuple(utterance_ids[r.line] for r in turns),
                      speakers=tuple(r.speaker or UNKNOWN_SPEAKER for r in turns),
                      labels=tuple(r.label or "" for r in turns),
                      sentences=tuple(r.text for r in turns), features={})
        for did, turns in sorted(by_dialogue.items())
    }
    description = f"transcripts from {Path(source).name}"
    if not labelled:
        missing = [c for c in ("speaker", "label") if all(getattr(r, c) is None for r in rows)]
        description += f" (to predict: every dialogue in test{''.join(f'; no {c} column' for c in missing)})"
    corpus = Corpus(dialogues=dialogues, splits=splits, label_names=label_names, source=source,
                    description=description, modalities=(), sessions={did: s for did, s in sessions.items() if s})
    return corpus, [utterance_ids[r.line] for r in sorted(rows, key=lambda r: r.line)]


def frame_bytes(frame) -> bytes:
    """A pandas DataFrame with a transcripts CSV's columns as that CSV's bytes, for :func:`parse_transcripts`:
    written as it is (no spreadsheet guard: nothing but this reader sees it); whole-number float columns (a turn
    column that held a NaN somewhere) as integers."""
    import csv

    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind == "f" and values.notna().all() and (values == values.round()).all():
            frame[column] = values.astype("int64")
    frame = frame.astype(object).where(frame.notna(), "")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([str(c) for c in frame.columns])
    writer.writerows(frame.itertuples(index=False, name=None))
    return buffer.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------------------------- rows

def _read_rows(data: bytes, source: str, labelled: bool = True) -> list[_Row]:
    """The non-blank rows of a file's bytes, each with the line it starts on."""
    text = _decode(data, source)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    last_line = 0
    try:
        with _field_limit(MAX_FIELD_CHARS):
            header = [name.strip() for name in next(reader, [])]
            columns = _check_header(header, source, labelled)
            rows, last_line = [], reader.line_num
            for values in reader:
                line, last_line = last_line + 1, reader.line_num
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise TranscriptFormatError(source, f"has {len(values)} fields, the header has {len(header)}",
                                                line=line)
                rows.append(_parse_row({name: values[i].strip() for name, i in columns.items()}, line, source,
                                       labelled))
    except csv.Error as e:
        line = last_line + 1  # the record that failed starts on the line after the last one read
        if "unexpected end of data" in str(e):
            raise TranscriptFormatError(source, "a quoted field that starts here is never closed (an unclosed quote "
                                                "swallows the lines after it)", line=line) from None
        if "field larger than field limit" in str(e):
            raise TranscriptFormatError(source, f"a field is longer than {MAX_FIELD_CHARS:,} characters (an "
                                                "unclosed quote swallows the lines after it)", line=line) from None
        raise TranscriptFormatError(source, f"not a readable CSV file ({e})", line=line) from None
    if not rows:
        raise TranscriptFormatError(source, "holds no utterances (only a header)", line=1)
    return rows


def _decode(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text (a byte-order mark is dropped); an error names the line and column of the bad byte, or
    what the file is (compressed, an archive, UTF-16 text)."""
    foreign = None if data.startswith(codecs.BOM_UTF8) else foreign_format(data, source)
    if foreign:
        advice = "; save it as UTF-8" if "UTF-16" in foreign else ""
        raise TranscriptFormatError(source, f"not a UTF-8 CSV file: it {foreign}{advice}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise TranscriptFormatError(source, f"byte 0x{data[e.start]:02x} at column {column} is not UTF-8 ({e.reason}); "
                                            "save the file as UTF-8", line=line) from None


@contextlib.contextmanager
def _field_limit(limit: int):
    """The csv module's field-size limit (process-wide state) raised to ``limit`` for a block, then restored."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _check_header(header: list[str], source: str, labelled: bool = True) -> dict[str, int]:
    """Column name -> index for the columns this module reads."""
    required = REQUIRED_COLUMNS if labelled else PREDICTION_COLUMNS
    optional = OPTIONAL_COLUMNS if labelled else \
        tuple(c for c in REQUIRED_COLUMNS if c not in required and c != "split") + OPTIONAL_COLUMNS
    if not any(header):
        raise TranscriptFormatError(source, f"empty file; expected a header with columns {', '.join(required)}",
                                    line=1)
    missing = [c for c in required if c not in header]
    if missing:
        raise TranscriptFormatError(source, f"missing column(s) {', '.join(missing)}; the header has "
                                            f"{', '.join(header)}", line=1, field=missing[0])
    wanted = required + tuple(c for c in optional if c in header)
    for name in wanted:
        if header.count(name) > 1:
            raise TranscriptFormatError(source, "the column appears more than once in the header", line=1,
                                        field=name)
    return {name: header.index(name) for name in wanted}


def _parse_row(values: dict[str, str], line: int, source: str, labelled: bool = True) -> _Row:
    did = values["dialogue_id"] or None

    def err(problem: str, column: str) -> TranscriptFormatError:
        return TranscriptFormatError(source, problem, line=line, dialogue=did, field=column)

    for column in NON_BLANK + tuple(c for c in OPTIONAL_COLUMNS if c in values):
        if column in values and not values[column]:
            raise err("must not be blank", column)
    for column in NAMES:
        found = invisible_character(values[column]) if column in values else None
        if found:
            raise err(f"{values[column]!r} holds an invisible character, {found}; two names that look the same "
                      "would count as two: remove it", column)
    try:
        turn = int(values["turn"])
    except ValueError:
        raise err(f"must be an integer, got {values['turn']!r}", "turn") from None
    if turn < 0:
        raise err(f"must be a non-negative integer, got {turn}", "turn")
    if labelled and values["split"] not in SPLITS:
        raise err(f"must be one of {', '.join(SPLITS)}, got {values['split']!r}", "split")
    return _Row(line=line, dialogue_id=values["dialogue_id"], turn=turn,
                speaker=values.get("speaker"), label=values.get("label"),
                split=values.get("split", "test"), text=values["text"],
                utterance_id=values.get(UTTERANCE_ID), session=values.get(SESSION))


# --------------------------------------------------------------------------------------------------- dialogues

def _group_dialogues(rows: list[_Row], source: str) -> dict[str, list[_Row]]:
    """Rows by dialogue, in turn order; turns must be unique and run 0..n-1."""
    grouped: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        grouped[row.dialogue_id].append(row)
    for did, turns in grouped.items():
        turns.sort(key=lambda r: r.turn)  # stable: of two equal turns, the earlier line comes first
        for i, row in enumerate(turns):
            if i and row.turn == turns[i - 1].turn:
                raise TranscriptFormatError(source, f"duplicate turn {row.turn} (also on line {turns[i - 1].line})",
                                            line=row.line, dialogue=did, field="turn")
            if row.turn != i:
                raise TranscriptFormatError(
                    source, f"turn {i} is missing (the next turn is {row.turn}); the turns of a dialogue of "
                            f"{len(turns)} utterances must run 0..{len(turns) - 1} without gaps",
                    line=row.line, dialogue=did, field="turn")
    return dict(grouped)


def _per_dialogue(turns: list[_Row], column: str, source: str):
    """The value of ``column`` that every row of a dialogue shares (split, session); an error names the first row
    that differs."""
    first, *rest = sorted(turns, key=lambda r: r.line)
    for row in rest:
        if getattr(row, column) != getattr(first, column):
            raise TranscriptFormatError(
                source, f"the dialogue is in more than one {column}: {getattr(row, column)!r} here, "
                        f"{getattr(first, column)!r} on line {first.line}; all rows of a dialogue must have the same "
                        f"{column}", line=row.line, dialogue=row.dialogue_id, field=column)
    return getattr(first, column)


def _splits(dialogue_split: dict[str, str], source: str) -> dict[str, tuple[str, ...]]:
    splits = {name: tuple(sorted(d for d, s in dialogue_split.items() if s == name)) for name in SPLITS}
    for name in ("train", "test"):
        if not splits[name]:
            raise TranscriptFormatError(source, f"no dialogue is in split {name!r}; a corpus needs at least one "
                                                f"train and one test dialogue (valid is optional)", field="split")
    return splits


def _utterance_ids(by_dialogue: dict[str, list[_Row]], source: str) -> dict[int, str]:
    """Utterance id by line: the ``utterance_id`` column, else ``<dialogue_id>_<speaker><nnn>``; all unique."""
    ids: dict[int, str] = {}
    for did, turns in by_dialogue.items():
        counters: dict[str, int] = defaultdict(int)
        for row in turns:
            if row.utterance_id is None and row.speaker is None:
                ids[row.line] = f"{did}_{row.turn:03d}"
            elif row.utterance_id is None:
                ids[row.line] = f"{did}_{row.speaker}{counters[row.speaker]:03d}"
                counters[row.speaker] += 1
            else:
                ids[row.line] = row.utterance_id
    first_line: dict[str, int] = {}
    for row in sorted((r for turns in by_dialogue.values() for r in turns), key=lambda r: r.line):
        uid = ids[row.line]
        if uid in first_line:
            hint = "" if row.utterance_id is not None else \
                " (derived as <dialogue_id>_<speaker><nnn>; add an utterance_id column to name utterances yourself)"
            raise TranscriptFormatError(source, f"utterance id {uid!r} is not unique{hint}: also on line "
                                                f"{first_line[uid]}", line=row.line, dialogue=row.dialogue_id,
                                        field=UTTERANCE_ID)
        first_line[uid] = row.line
    return ids


def _label_names(labels) -> tuple[str, ...]:
    """``IEMOCAP6`` (then the context labels present, :data:`CONTEXT_LABELS`) when every label is an IEMOCAP name
    or a context label, else the sorted distinct labels."""
    distinct = set(labels)
    if distinct <= set(IEMOCAP6) | set(CONTEXT_LABELS):
        return IEMOCAP6 + tuple(sorted(distinct & set(CONTEXT_LABELS)))
    return tuple(sorted(distinct))


# --------------------------------------------------------------------------------------------------- writing

def write_transcripts(corpus: Corpus, path, *, overwrite: bool = False) -> Path:
    """Write the utterances of ``corpus`` (its sentences, speakers, labels, splits and sessions) as a transcripts CSV
    that :func:`read_transcripts` reads back: one row per utterance, dialogues in id order, ``utterance_id`` and
    ``session`` included; atomically. Cells that start like a spreadsheet formula get a leading apostrophe
    (:func:`data_utils.fileio.csv_cell`). Raises ``DataFormatError`` naming the dialogue for an utterance without
    text (the corpus has no transcripts)."""
    from .fileio import csv_text, write_text

    split_of = {d: s for s, ids in corpus.splits.items() for d in ids}
    rows = [[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]]
    for did, d in corpus.dialogues.items():
        for turn, (uid, speaker, label, text) in enumerate(zip(d.utterance_ids, d.speakers, d.labels, d.sentences)):
            if not str(text).strip():
                raise DataFormatError(corpus.source, f"utterance {uid!r} has no text to write as a transcript",
                                      dialogue=did, field="videoSentence")
            rows.append([did, turn, speaker, label, split_of.get(did, "train"), text, uid, corpus.session(did)])
    return write_text(path, csv_text(rows), overwrite=overwrite)
