"""Reading and validating transcripts CSVs (data_utils.transcripts)."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from data_utils.corpus import DataFormatError
from data_utils.labels import IEMOCAP6, get_scheme
from data_utils.transcripts import TranscriptFormatError, read_transcripts

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "iemocap_transcripts.csv"
HEADER = ["dialogue_id", "turn", "speaker", "label", "split", "text"]
# Invented dialogues: d1 and d2 train, d3 valid, d4 test.
ROWS = [
    ["d1", "0", "A", "neu", "train", "Good morning."],
    ["d1", "1", "B", "hap", "train", "What a lovely day!"],
    ["d1", "2", "A", "neu", "train", "It is."],
    ["d2", "0", "B", "ang", "train", "You are late again."],
    ["d2", "1", "A", "sad", "train", "I know, I am sorry."],
    ["d3", "0", "A", "fru", "valid", "This never works."],
    ["d4", "0", "B", "exc", "test", "We won the prize!"],
    ["d4", "1", "A", "hap", "test", "That is wonderful."],
]


def write_csv(path: Path, rows, header=HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def with_cell(rows, index: int, column: str, value: str, header=HEADER):
    rows = [list(r) for r in rows]
    rows[index][header.index(column)] = value
    return rows


def error_of(tmp_path, rows, header=HEADER) -> TranscriptFormatError:
    path = write_csv(tmp_path / "t.csv", rows, header)
    with pytest.raises(DataFormatError, match=re.escape(str(path))) as info:
        read_transcripts(path)
    assert str(path) in str(info.value)
    return info.value


# --------------------------------------------------------------------------------------------------- reading

def test_reads_dialogues_in_order_with_splits(tmp_path):
    shuffled = [ROWS[i] for i in (7, 2, 0, 4, 6, 1, 5, 3)]  # rows in any order, sorted by dialogue and turn
    corpus = read_transcripts(write_csv(tmp_path / "t.csv", shuffled))
    assert list(corpus.dialogues) == ["d1", "d2", "d3", "d4"]
    assert corpus.splits == {"train": ("d1", "d2"), "valid": ("d3",), "test": ("d4",)}
    d1 = corpus.dialogues["d1"]
    assert d1.sentences == ("Good morning.", "What a lovely day!", "It is.")
    assert d1.speakers == ("A", "B", "A") and d1.labels == ("neu", "hap", "neu")
    assert d1.features == {} and corpus.modalities == ()


def test_iemocap_labels_keep_the_iemocap_ids(tmp_path):
    only_some = [r[:3] + [("neu", "ang")[i % 2]] + r[4:] for i, r in enumerate(ROWS)]  # a subset of IEMOCAP6
    assert read_transcripts(write_csv(tmp_path / "t.csv", only_some)).label_names == IEMOCAP6


def test_other_labels_become_their_own_sorted_classes(tmp_path):
    rows = with_cell(with_cell(ROWS, 0, "label", "surprised"), 3, "label", "calm")
    corpus = read_transcripts(write_csv(tmp_path / "t.csv", rows))
    assert corpus.label_names == ("calm", "exc", "fru", "hap", "neu", "sad", "surprised")
    assert get_scheme("native", corpus.label_names).classes == corpus.label_names


def test_any_number_of_speakers(tmp_path):
    rows = with_cell(with_cell(ROWS, 1, "speaker", "Dr. Who"), 2, "speaker", "speaker 3")
    assert read_transcripts(write_csv(tmp_path / "t.csv", rows)).dialogues["d1"].speakers == ("A", "Dr. Who",
                                                                                              "speaker 3")


def test_derived_utterance_ids_count_per_speaker_in_turn_order(tmp_path):
    corpus = read_transcripts(write_csv(tmp_path / "t.csv", ROWS))
    assert corpus.dialogues["d1"].utterance_ids == ("d1_A000", "d1_B000", "d1_A001")
    assert corpus.dialogues["d4"].utterance_ids == ("d4_B000", "d4_A000")


def test_utterance_id_column_is_used(tmp_path):
    header = HEADER + ["utterance_id"]
    rows = [r + [f"u{i}"] for i, r in enumerate(ROWS)]
    corpus = read_transcripts(write_csv(tmp_path / "t.csv", rows, header))
    assert corpus.dialogues["d1"].utterance_ids == ("u0", "u1", "u2")


def test_line_numbers_count_multiline_text(tmp_path):
    rows = with_cell(ROWS, 0, "text", "First line,\nsecond line.")  # row 0 takes lines 2 and 3
    e = error_of(tmp_path, with_cell(rows, 2, "speaker", ""))
    assert e.line == 5 and "line 5: dialogue 'd1': field speaker" in str(e)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such transcripts file"):
        read_transcripts(tmp_path / "absent.csv")


# --------------------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("column", ["dialogue_id", "turn", "split", "text"])
def test_missing_column(tmp_path, column):
    header = [c for c in HEADER if c != column]
    rows = [[v for c, v in zip(HEADER, r) if c != column] for r in ROWS]
    e = error_of(tmp_path, rows, header)
    assert e.line == 1 and e.field == column
    assert f"line 1: field {column}: missing column(s) {column}" in str(e)


@pytest.mark.parametrize("column", ["dialogue_id", "speaker", "text"])
def test_blank_cells(tmp_path, column):
    e = error_of(tmp_path, with_cell(ROWS, 3, column, "   "))
    assert e.line == 5 and e.field == column and "must not be blank" in str(e)
    if column != "dialogue_id":
        assert f"line 5: dialogue 'd2': field {column}: must not be blank" in str(e)


@pytest.mark.parametrize("scheme", ["merged4", "standard4", "original6", "native"])
@pytest.mark.parametrize("no_label", ["", "xxx"])
def test_utterances_without_an_agreed_label_stay_as_unscored_context(tmp_path, scheme, no_label):
    from data_utils.dataset import from_corpus

    corpus = read_transcripts(write_csv(tmp_path / "t.csv", with_cell(ROWS, 1, "label", no_label)))
    assert corpus.dialogues["d1"].labels == ("neu", no_label, "neu")
    assert corpus.label_names == IEMOCAP6 + (no_label,)  # ids 0-5 stay IEMOCAP's
    ds = from_corpus(corpus, scheme)
    row = ds.dialogue_ids.index("d1")
    assert ds.present[row, :3].all()  # kept in the dialogue as context ...
    assert list(ds.mask[row, :3]) == [True, False, True] and ds.labels[row, 1] == -1  # ... never scored
    assert no_label not in ds.class_names
    if scheme == "native":
        assert ds.class_names == IEMOCAP6


def test_a_blank_label_round_trips_through_a_pickle(tmp_path):
    import dataclasses

    import numpy as np

    from data_utils.corpus import read_corpus, write_corpus

    corpus = read_transcripts(write_csv(tmp_path / "t.csv", with_cell(ROWS, 1, "label", " ")))
    corpus = dataclasses.replace(corpus, modalities=("text",), dialogues={
        k: dataclasses.replace(d, features={"text": np.zeros((len(d), 2), np.float32)})
        for k, d in corpus.dialogues.items()})
    again = read_corpus(write_corpus(corpus, tmp_path / "c.pkl"))
    assert again.dialogues["d1"].labels == ("neu", "", "neu") and again.label_names == corpus.label_names


def test_a_label_that_differs_only_by_case_is_named_with_its_known_spelling(tmp_path):
    from data_utils.dataset import from_corpus

    corpus = read_transcripts(write_csv(tmp_path / "t.csv", with_cell(ROWS, 1, "label", "Hap")))
    with pytest.raises(ValueError, match=r"labels \['Hap'\] are not covered by label scheme 'merged4'.*"
                                         r"case-sensitive: 'Hap' \(did you mean 'hap'\?\)"):
        from_corpus(corpus, "merged4")


def test_a_field_over_the_csv_modules_default_limit_is_read(tmp_path):
    long_text = "word " * 40_000  # 200,000 characters: over csv's default 131,072
    corpus = read_transcripts(write_csv(tmp_path / "t.csv", with_cell(ROWS, 2, "text", long_text)))
    assert corpus.dialogues["d1"].sentences[2] == long_text.strip()
    assert csv.field_size_limit() == 131072  # the process-wide limit is restored


def test_an_unclosed_quote_names_its_line(tmp_path, monkeypatch):
    import data_utils.transcripts as transcripts

    monkeypatch.setattr(transcripts, "MAX_FIELD_CHARS", 100_000)
    path = tmp_path / "t.csv"
    lines = [",".join(HEADER)] + [",".join(r) for r in ROWS[:3]] + ['d2,0,B,ang,train,"You are late'] + \
        ["d2,1,A,sad,train,I know"] * 10_000
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t\.csv: line 5: a field is longer than 100,000 characters"):
        read_transcripts(path)


def test_a_non_utf8_byte_is_named_by_line_and_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", ROWS)
    data = path.read_bytes().replace("What a lovely".encode(), b"What a l\xf6vely")  # latin-1 o-umlaut
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=r"t\.csv: line 3: byte 0xf6 at column 26 is not UTF-8"):
        read_transcripts(path)


def test_blank_utterance_id(tmp_path):
    header = HEADER + ["utterance_id"]
    rows = [r + [f"u{i}" if i != 2 else ""] for i, r in enumerate(ROWS)]
    e = error_of(tmp_path, rows, header)
    assert (e.line, e.dialogue, e.field) == (4, "d1", "utterance_id")


@pytest.mark.parametrize("turn, problem", [("1.5", "must be an integer, got '1.5'"), ("x", "must be an integer"),
                                           ("-1", "must be a non-negative integer, got -1")])
def test_bad_turn(tmp_path, turn, problem):
    e = error_of(tmp_path, with_cell(ROWS, 4, "turn", turn))
    assert f"line 6: dialogue 'd2': field turn: {problem}" in str(e)


def test_duplicate_turn(tmp_path):
    e = error_of(tmp_path, with_cell(ROWS, 2, "turn", "1"))
    assert "line 4: dialogue 'd1': field turn: duplicate turn 1 (also on line 3)" in str(e)


@pytest.mark.parametrize("index, missing, line", [(2, 2, 4), (0, 0, 3)])  # turns 0,1,3 and 3,1,2
def test_gap_in_turns(tmp_path, index, missing, line):
    e = error_of(tmp_path, with_cell(ROWS, index, "turn", "3"))
    assert (e.line, e.dialogue, e.field) == (line, "d1", "turn")
    assert f"turn {missing} is missing" in str(e) and "0..2 without gaps" in str(e)


def test_unknown_split(tmp_path):
    e = error_of(tmp_path, with_cell(ROWS, 5, "split", "dev"))
    assert "line 7: dialogue 'd3': field split: must be one of train, valid, test, got 'dev'" in str(e)


def test_dialogue_in_more_than_one_split(tmp_path):
    e = error_of(tmp_path, with_cell(ROWS, 1, "split", "test"))
    assert "line 3: dialogue 'd1': field split: the dialogue is in more than one split: 'test' here, " \
           "'train' on line 2" in str(e)


def test_dialogue_rows_with_mixed_splits_anywhere_in_the_file(tmp_path):
    rows = ROWS + [["d1", "3", "B", "neu", "valid", "Later on."]]
    e = error_of(tmp_path, rows)
    assert (e.line, e.dialogue, e.field) == (10, "d1", "split")


@pytest.mark.parametrize("split", ["train", "test"])
def test_train_and_test_are_required(tmp_path, split):
    rows = [r for r in ROWS if r[4] != split]
    e = error_of(tmp_path, rows)
    assert f"field split: no dialogue is in split {split!r}" in str(e)


def test_valid_is_optional(tmp_path):
    corpus = read_transcripts(write_csv(tmp_path / "t.csv", [r for r in ROWS if r[4] != "valid"]))
    assert corpus.splits["valid"] == ()


def test_duplicate_utterance_id_column(tmp_path):
    header = HEADER + ["utterance_id"]
    rows = [r + [f"u{i % 7}"] for i, r in enumerate(ROWS)]  # the last row repeats u0
    e = error_of(tmp_path, rows, header)
    assert "line 9: dialogue 'd4': field utterance_id: utterance id 'u0' is not unique: also on line 2" in str(e)


def test_derived_utterance_ids_that_collide(tmp_path):
    rows = ROWS + [["d1_A", "0", "x", "neu", "train", "Hi."], ["d1", "3", "A_x", "neu", "train", "Hi."]]
    e = error_of(tmp_path, rows)
    assert "utterance id 'd1_A_x000' is not unique" in str(e) and "add an utterance_id column" in str(e)


def test_wrong_number_of_fields(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[2].append("extra")
    assert "line 4: has 7 fields, the header has 6" in str(error_of(tmp_path, rows))


def test_header_only(tmp_path):
    assert "holds no utterances" in str(error_of(tmp_path, []))


# --------------------------------------------------------------------------------------------------- real data

def test_shared_iemocap_transcripts():
    if not SHARED_CSV.is_file():
        pytest.skip(f"{SHARED_CSV} is absent (shared data not checked out beside the repository)")
    corpus = read_transcripts(SHARED_CSV)
    assert len(corpus.dialogues) == 151
    assert sum(len(d) for d in corpus.dialogues.values()) == 7433
    assert {k: len(v) for k, v in corpus.splits.items()} == {"train": 108, "valid": 12, "test": 31}
    assert corpus.label_names == IEMOCAP6
    first = corpus.dialogues[corpus.splits["train"][0]]
    assert first.utterance_ids[0] == f"{first.id}_{first.speakers[0]}000"


def test_a_session_column_gives_each_dialogue_its_session(tmp_path):
    header = [*HEADER, "session"]
    session = {"d1": "S1", "d2": "S1", "d3": "S2", "d4": "S3"}
    rows = [r + [session[r[0]]] for r in ROWS]
    corpus = read_transcripts(write_csv(tmp_path / "t.csv", rows, header))
    assert {d: corpus.session(d) for d in corpus.dialogues} == session
    assert read_transcripts(write_csv(tmp_path / "no.csv", ROWS)).session("d1") == ""  # no column, no SesNN id
    err = error_of(tmp_path, with_cell(rows, 1, "session", "S9", header), header)
    assert err.line == 3 and err.dialogue == "d1" and err.field == "session"
    assert "the dialogue is in more than one session: 'S9' here, 'S1' on line 2" in str(err)


def test_native_classes_are_the_labels_a_csv_uses_even_when_they_are_iemocap_names(tmp_path):
    from data_utils.dataset import from_corpus

    corpus = read_transcripts(write_csv(tmp_path / "t.csv", ROWS))  # hap, sad, neu, ang, exc, fru all used
    used = [r for r in ROWS if r[3] not in ("exc", "fru")] + [["d4", "0", "B", "hap", "test", "We won."]]
    used = [r for r in used if not (r[0] == "d4" and r[5] == "We won the prize!")]
    ds = from_corpus(read_transcripts(write_csv(tmp_path / "u.csv", [r for r in used if r[0] != "d3"])), "native")
    assert ds.class_names == ("hap", "sad", "neu", "ang")  # not exc and fru, which no row uses
    assert from_corpus(corpus, "native").class_names == IEMOCAP6


def test_an_unclosed_quote_that_runs_to_the_end_of_the_file_names_its_line(tmp_path):
    path = tmp_path / "t.csv"
    lines = [",".join(HEADER)] + [",".join(r) for r in ROWS[:3]] + ['d2,0,B,ang,train,"You are late'] + \
        [",".join(r) for r in ROWS[4:]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t\.csv: line 5: a quoted field that starts here is never closed"):
        read_transcripts(path)


# --------------------------------------------------------------------------------------------------- issue 20

@pytest.mark.parametrize("column,value", [("speaker", "A\u200b"), ("label", "hap\x00"), ("dialogue_id", "\ufeffd1"),
                                          ("speaker", "B\u2060"), ("utterance_id", "u\u200d1")])
def test_invisible_characters_in_names_are_refused(tmp_path, column, value):
    """A NUL or zero-width character made 'A' and 'A\u200b' two speakers (or two classes, two dialogues)."""
    header = HEADER + ["utterance_id"] if column == "utterance_id" else HEADER
    rows = [r + [f"u{k}"] for k, r in enumerate(ROWS)] if column == "utterance_id" else ROWS
    error = error_of(tmp_path, with_cell(rows, 0, column, value, header), header)
    assert re.search(rf": line 2: .*field {column}: .*holds an invisible character, U\+", str(error)), str(error)


def test_whitespace_and_visible_unicode_in_names_are_read_as_before(tmp_path):
    rows = with_cell(with_cell(ROWS, 0, "speaker", "Mary Ann"), 1, "speaker", "  Zoë  ")
    corpus = read_transcripts(write_csv(tmp_path / "t.csv", rows))
    assert corpus.dialogues["d1"].speakers[:2] == ("Mary Ann", "Zoë")


@pytest.mark.parametrize("encode,hint", [
    (lambda text: text.encode("utf-16"), "looks like UTF-16 text (it starts with a UTF-16 byte-order mark); save it "
                                         "as UTF-8"),
    (lambda text: text.encode("utf-16-le"), "looks like UTF-16 text (every other byte is 0); save it as UTF-8"),
    (lambda text: __import__("gzip").compress(text.encode()), "looks gzip-compressed: decompress it first"),
])
def test_a_utf16_or_compressed_csv_says_what_it_is(tmp_path, encode, hint):
    text = (write_csv(tmp_path / "plain.csv", ROWS)).read_text(encoding="utf-8")
    path = tmp_path / "t.csv"
    path.write_bytes(encode(text))
    with pytest.raises(DataFormatError, match=re.escape(f"{path}: not a UTF-8 CSV file: it {hint}")):
        read_transcripts(path)


def test_a_transcripts_path_the_system_refuses_is_one_line(tmp_path):
    with pytest.raises(DataFormatError, match="cannot be read: File name too long"):
        read_transcripts(tmp_path / ("t" * 5000))
