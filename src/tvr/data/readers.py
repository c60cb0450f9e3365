"""Annotation readers: each dataset's original files -> a ``datasets.Dataset`` of (video, caption) rows.

Every reader returns the columns

- ``video_id`` (str): the dataset's id of the video; evaluation groups rows by it, videos in first-appearance order.
- ``video_path`` (str): the video file found under ``video_dir``; ``""`` when ``video_dir`` is ``None`` or the
  file is missing (with ``missing="warn"``).
- ``caption`` (str): one sentence (multi-caption sets: one row per (video, caption)) or one paragraph (ActivityNet,
  DiDeMo: one row per video).
- ``caption_index`` (int): position of the caption among the rows of its video (0, 1, ...).
- ``start``, ``end`` (float seconds or ``None`` for the whole video): the clip to decode.

MSR-VTT training without ``expand_sentences`` has one row per video and adds ``captions`` (all its sentences) so
that training can draw a random one each epoch, as the original does; ``caption`` is then the first of them.

Which rows exist and in which order follows the original loaders (CLIP4Clip, EMCL-Net, InternVideo, CLIP2Video);
each reader's docstring says where it differs.

Bad annotation files are errors, never fewer rows: every reader error names the file and the record (line, or
the record's id / position) and says what was expected: text that is not UTF-8 (a UTF-8 BOM is fine), truncated
JSON, a CSV without its header or columns, a line cut short, a list where a mapping belongs, a missing field,
a caption that is not a string, a duration or clip time that is not a number >= 0, and a split with no rows.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import pickle
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .videos import MissingPolicy, first_existing, index_video_files, resolve_video_paths

if TYPE_CHECKING:
    from datasets import Dataset, Features


@functools.cache
def _features() -> Features:
    """The columns every reader gives (:data:`FEATURES`); built on first use, so that importing the readers (``tvr eval
    --help`` lists them) does not import ``datasets``."""
    from datasets import Features, Value

    return Features({"video_id": Value("string"), "video_path": Value("string"), "caption": Value("string"),
                     "caption_index": Value("int32"), "start": Value("float64"), "end": Value("float64")})


def __getattr__(name: str):
    if name == "FEATURES":
        return _features()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# a generic annotation file named after one of these holds that split
SPLIT_NAMES = ("train", "val", "test")
# EMCL-Net skips these LSMDC clips: their video files are broken in the released data.
LSMDC_BROKEN_CLIPS = (
    "0017_Pianist_00.23.28.872-00.23.34.843",
    "0017_Pianist_00.30.36.767-00.30.38.009",
    "3064_SPARKLE_2012_01.41.07.000-01.41.11.793",
)
# DiDeMo videos were annotated on their first 30 s (5-s chunks); the original decodes [0, 31] s of every video.
DIDEMO_CLIP = (0.0, 31.0)


def _row(video_id: str, caption: str, caption_index: int = 0, start: float | None = None,
         end: float | None = None, **extra: Any) -> dict[str, Any]:
    return dict(video_id=video_id, caption=caption, caption_index=caption_index, start=start, end=end, **extra)


def _build_dataset(
    rows: list[dict[str, Any]],
    find: Callable[[str], str | None] | None,
    missing: MissingPolicy,
    where: str,
    extra_features: dict[str, Any] | None = None,
    source: str = "",
    describe: Callable[[str], str] | None = None,
) -> Dataset:
    """Attach ``video_path`` to ``rows`` (``find`` is ``None`` when there is no video folder) and build the Dataset.

    ``source`` names the annotation file(s) read, for the error when the split has no rows.
    """
    if not rows:
        raise ValueError(f"{where}: no rows for this split in {source or 'the annotation files'}; expected at least "
                         "one (video, caption) record")
    if find is None:
        paths = [""] * len(rows)
    else:
        paths = resolve_video_paths([row["video_id"] for row in rows], find, missing, where, describe)
        if missing == "drop":
            rows, paths = [r for r, p in zip(rows, paths) if p], [p for p in paths if p]
            if not rows:
                raise ValueError(f"{where}: none of the split's videos was found (missing='drop' left no rows)")
    import pyarrow as pa
    from datasets import Dataset, Features

    features = Features({**_features(), **(extra_features or {})})
    columns = {name: [row.get(name) for row in rows] for name in features if name != "video_path"}
    columns["video_path"] = paths
    # an Arrow table with the features' schema: from_dict(features=...) would encode every value in Python (~10x slower)
    return Dataset(pa.Table.from_pydict({name: columns[name] for name in features}, schema=features.arrow_schema))


def _stem_finder(video_dir: str | os.PathLike | None) -> Callable[[str], str | None] | None:
    if video_dir is None:
        return None
    return index_video_files(video_dir, "stem").get


def _check_split(split: str, allowed: Iterable[str], dataset: str) -> None:
    allowed = tuple(allowed)
    if split not in allowed:
        raise ValueError(f"{dataset}: split={split!r}; expected one of {allowed}")


def _read_text(path: str) -> str:
    """A UTF-8 text file (a BOM is dropped); any other encoding is an error naming the line."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ValueError(f"{path} line {line}: byte 0x{data[error.start]:02x} is not UTF-8; expected a UTF-8 text "
                         "file (re-save it as UTF-8)") from None


def _read_lines(path: str) -> list[str]:
    return [line.strip() for line in _read_text(path).splitlines() if line.strip()]


def _read_csv(path: str, columns: Iterable[str] = ()) -> list[dict[str, str]]:
    """The records of a CSV file with a header line holding ``columns``; a record with another number of fields than
    the header (a line cut short) is an error naming its line."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file; expected a CSV header line with columns {list(columns)}")
        header = [name.strip() for name in header]
        absent = [name for name in columns if name not in header]
        if absent:
            raise ValueError(f"{path} line 1: the header lacks columns {absent}; it has {header}")
        records = []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise ValueError(f"{path} line {reader.line_num}: {len(fields)} fields, expected {len(header)} "
                                 f"({', '.join(header)}); is the line cut short?")
            records.append(dict(zip(header, fields)))
    except csv.Error as error:
        raise ValueError(f"{path} line {reader.line_num}: not valid CSV ({error}); is the file cut short?") from None
    return records


def _read_json(path: str) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} line {error.lineno} column {error.colno}: not valid JSON ({error.msg}); is the file "
                         "truncated or damaged?") from None


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    """``value`` if it is a ``kind``; else an error naming ``where`` and the expected ``what``."""
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple)
                                                                                else (kind,))):
        raise ValueError(f"{where}: expected {what}, got {_show(value)}")
    return value


def _field(record: Any, key: str, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    """``record[key]``, checked to be a ``kind``; errors name ``where`` (file and record)."""
    _expect(record, dict, where, "a JSON object")
    if key not in record:
        raise ValueError(f"{where}: no {key!r} field ({what} expected); it has {sorted(record)[:10]}")
    return _expect(record[key], kind, f"{where} field {key!r}", what)


def _caption(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a caption (a non-empty string), got {_show(value)}")
    return value


def _seconds(value: Any, where: str, what: str) -> float:
    """A time in seconds: a finite number >= 0 (a numeric string too, as CSV cells are)."""
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{where}: {what} must be a number of seconds >= 0, got {_show(value)}")
    return seconds


def _number_captions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``caption_index`` to the running count of each video's rows."""
    seen: dict[str, int] = defaultdict(int)
    for row in rows:
        row["caption_index"] = seen[row["video_id"]]
        seen[row["video_id"]] += 1
    return rows


# --------------------------------------------------------------------------------------------------- MSR-VTT
def load_msrvtt(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    train_list: str = "9k",
    test_list: str = "jsfusion",
    expand_sentences: bool = False,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """MSR-VTT.

    Files: ``MSRVTT_train.{9k,7k,full}.csv`` (column ``video_id``), ``MSRVTT_data.json`` (official:
    ``sentences`` = [{``video_id``, ``caption``, ``sen_id``}]), ``MSRVTT_JSFUSION_test.csv`` (columns
    ``key, vid_key, video_id, sentence``; the 1k-A test, one caption per video), ``MSRVTT_{val,test}.full.csv``.
    Videos: ``<video_dir>/<video_id>.mp4``, else ``.webm``.

    Args:
        split: ``"train"``; ``"val"`` / ``"test"`` (the original has one evaluation set, JSFusion, used for both).
        train_list: ``"9k"``, ``"7k"`` or ``"full"`` (official 6,513) training ids.
        test_list: ``"jsfusion"`` (1,000 (video, sentence) pairs) or ``"full"`` (the official 497 val / 2,990 test
            videos with all their sentences from ``MSRVTT_data.json``; multi-caption).
        expand_sentences: training only. ``False`` (default): one row per video in csv order with every sentence
            in ``captions``; ``True``: one row per (video, sentence), in ``MSRVTT_data.json`` order (the original's
            ``--expand_msrvtt_sentences``).
    """
    _check_split(split, ("train", "val", "test"), "msrvtt")
    if split == "train" and train_list not in ("9k", "7k", "full"):
        raise ValueError(f"msrvtt: train_list={train_list!r}; expected '9k', '7k' or 'full'")
    if split != "train" and test_list not in ("jsfusion", "full"):
        raise ValueError(f"msrvtt: test_list={test_list!r}; expected 'jsfusion' or 'full'")
    annotation_dir = os.fspath(annotation_dir)
    extra_features = None
    if split != "train" and test_list == "jsfusion":
        source = os.path.join(annotation_dir, "MSRVTT_JSFUSION_test.csv")
        records = _read_csv(source, ("video_id", "sentence"))
        rows = _number_captions([_row(record["video_id"], _caption(record["sentence"], f"{source} record {number}"))
                                 for number, record in enumerate(records, 1)])
    else:
        ids_file = f"MSRVTT_train.{train_list}.csv" if split == "train" else f"MSRVTT_{split}.full.csv"
        video_ids = [record["video_id"] for record in _read_csv(os.path.join(annotation_dir, ids_file), ("video_id",))]
        sentences = read_msrvtt_sentences(os.path.join(annotation_dir, "MSRVTT_data.json"))
        source = f"{ids_file} + MSRVTT_data.json in {annotation_dir}"
        if split == "train" and expand_sentences:
            wanted = set(video_ids)
            rows = _number_captions([_row(video_id, caption) for video_id, caption in sentences if video_id in wanted])
        else:
            by_video: dict[str, list[str]] = defaultdict(list)
            for video_id, caption in sentences:
                by_video[video_id].append(caption)
            uncaptioned = [video_id for video_id in video_ids if not by_video.get(video_id)]
            if uncaptioned:
                raise ValueError(f"msrvtt: {len(uncaptioned)} videos of {ids_file} have no sentence in "
                                 f"MSRVTT_data.json (first: {uncaptioned[:5]})")
            if split == "train":
                rows = [_row(v, by_video[v][0], captions=by_video[v]) for v in video_ids]
                from datasets import Sequence, Value

                extra_features = {"captions": Sequence(Value("string"))}
            else:
                rows = [_row(v, caption, i) for v in video_ids for i, caption in enumerate(by_video[v])]

    find = None
    if video_dir is not None:
        root = os.fspath(video_dir)
        find = lambda video_id: first_existing(  # noqa: E731
            os.path.join(root, f"{video_id}.mp4"), os.path.join(root, f"{video_id}.webm"))
    return _build_dataset(rows, find, missing, f"msrvtt {split} under {video_dir!s}", extra_features, source)


def read_msrvtt_sentences(path: str) -> list[tuple[str, str]]:
    """``(video_id, caption)`` of every entry of ``MSRVTT_data.json``'s ``sentences``, in file order."""
    sentences = _field(_read_json(path), "sentences", list, path, "a list of {video_id, caption} objects")
    return [(_field(sentence, "video_id", str, f"{path} sentences[{number}]", "a string"),
             _caption(_field(sentence, "caption", str, f"{path} sentences[{number}]", "a string"),
                      f"{path} sentences[{number}]"))
            for number, sentence in enumerate(sentences)]


# ------------------------------------------------------------------------------------------------------ MSVD
class _DataOnlyUnpickler(pickle.Unpickler):
    """Reads a pickle of plain data (dicts, lists, strings, numbers) and refuses anything that names a class or a
    function, which is how a pickle runs code: the published ``raw-captions.pkl`` holds data only."""

    def __init__(self, file, path: str):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        raise ValueError(f"{self.path}: refusing to load {module}.{name} from a caption pickle: MSVD's "
                         "raw-captions.pkl holds only {video_id: [[token, ...], ...]} (use captions_msvd.json "
                         "otherwise)")


def read_msvd_captions(path: str | os.PathLike) -> dict[str, list[str]]:
    """MSVD captions as ``{video_id: [sentence, ...]}`` from either published format.

    ``raw-captions.pkl`` (CLIP4Clip): ``{id: [[token, ...], ...]}``, tokens joined with single spaces.
    ``captions_msvd.json`` (X-Pool): ``{id: [sentence, ...]}``, the same sentences already joined.
    """
    path = os.fspath(path)
    if path.endswith(".pkl"):
        with open(path, "rb") as file:
            captions = _DataOnlyUnpickler(file, path).load()
    else:
        captions = _read_json(path)
    _expect(captions, dict, path, "a mapping {video_id: [caption, ...]}")
    result = {}
    for video_id, video_captions in captions.items():
        where = f"{path} video {video_id!r}"
        _expect(video_captions, list, where, "a list of captions (strings or lists of tokens)")
        result[video_id] = [
            _caption(caption if isinstance(caption, str) else " ".join(
                _expect(token, str, f"{where} caption {number}", "a token string")
                for token in _expect(caption, list, f"{where} caption {number}", "a string or a list of tokens")),
                f"{where} caption {number}")
            for number, caption in enumerate(video_captions)]
    return result


def load_msvd(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    caption_file: str | None = None,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """MSVD: every caption of every video is a row, in all splits (multi-caption evaluation).

    Files: ``{train,val,test}_list.txt`` (one id per line) and ``raw-captions.pkl``; when the pkl is absent,
    ``captions_msvd.json`` (same sentences, see :func:`read_msvd_captions`). Videos: any file under ``video_dir``
    whose name without extension is the id (the original walks the folder).

    Args:
        caption_file: caption file name or path inside ``annotation_dir`` (default: the pkl, else the json).
    """
    _check_split(split, ("train", "val", "test"), "msvd")
    annotation_dir = os.fspath(annotation_dir)
    if caption_file is None:
        candidates = [os.path.join(annotation_dir, name) for name in ("raw-captions.pkl", "captions_msvd.json")]
        caption_path = first_existing(*candidates)
        if caption_path is None:
            raise FileNotFoundError(f"msvd: neither raw-captions.pkl nor captions_msvd.json in {annotation_dir!r}")
    else:
        caption_path = os.path.join(annotation_dir, caption_file)
    captions = read_msvd_captions(caption_path)
    video_ids = _read_lines(os.path.join(annotation_dir, f"{split}_list.txt"))
    uncaptioned = [video_id for video_id in video_ids if video_id not in captions]
    if uncaptioned:
        raise ValueError(f"msvd: {len(uncaptioned)} ids of {split}_list.txt have no captions in "
                         f"{caption_path} (first: {uncaptioned[:5]})")
    rows = [_row(v, caption, i) for v in video_ids for i, caption in enumerate(captions[v])]
    return _build_dataset(rows, _stem_finder(video_dir), missing, f"msvd {split} under {video_dir!s}",
                          source=f"{split}_list.txt + {caption_path}")


# ----------------------------------------------------------------------------------------------------- LSMDC
LSMDC_FILES = {
    "train": "LSMDC16_annos_training.csv",
    "val": "LSMDC16_annos_val.csv",
    "test": "LSMDC16_challenge_1000_publictect.csv",
}


def load_lsmdc(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    skip_broken: bool = True,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """LSMDC: one row per line of the tab-separated file, the whole clip.

    Lines: ``clip_id \\t start_aligned \\t end_aligned \\t start_extracted \\t end_extracted \\t sentence``
    (``LSMDC16_annos_training.csv``, ``LSMDC16_annos_val.csv``, ``LSMDC16_challenge_1000_publictect.csv`` = the 1k
    test). A clip id may have several sentences (training). Videos: file name without extension = clip id.

    Args:
        skip_broken: leave out the three clips whose videos are broken (:data:`LSMDC_BROKEN_CLIPS`), as EMCL-Net
            does; CLIP4Clip keeps them.
    """
    _check_split(split, LSMDC_FILES, "lsmdc")
    path = os.path.join(os.fspath(annotation_dir), LSMDC_FILES[split])
    skipped = set(LSMDC_BROKEN_CLIPS) if skip_broken else set()
    rows = []
    for line_number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split("\t")
        if len(fields) != 6:
            raise ValueError(f"lsmdc: {path} line {line_number} has {len(fields)} tab-separated fields, "
                             "expected 6 (clip_id, 4 time stamps, sentence)")
        if fields[0] not in skipped:
            rows.append(_row(fields[0], _caption(fields[5], f"{path} line {line_number}")))
    return _build_dataset(_number_captions(rows), _stem_finder(video_dir), missing,
                          f"lsmdc {split} under {video_dir!s}", source=path)


# ----------------------------------------------------------------------------------------------- ActivityNet
def load_activitynet(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """ActivityNet Captions, paragraph-to-video: one row per video, its sentences joined with ``" "``.

    Files: ``train_ids.json`` / ``val_ids.json`` (lists of ``"v_<youtube id>"``; the order of the rows) and
    ``train.json`` / ``val_1.json`` (``{id: {duration, timestamps, sentences}}``). ``val`` and ``test`` both read
    val_1 (the usual test set); ids without captions are left out as in the original. Clip: ``[0, ceil(duration)]``
    seconds. Videos: file stem = id without its first two characters (``"v_"``, CLIP4Clip); a stem equal to the
    full id (``v_<id>.*``, EMCL-Net's layout) is accepted too.
    """
    _check_split(split, ("train", "val", "test"), "activitynet")
    annotation_dir = os.fspath(annotation_dir)
    ids_file, captions_file = ("train_ids.json", "train.json") if split == "train" else ("val_ids.json", "val_1.json")
    captions_path, ids_path = os.path.join(annotation_dir, captions_file), os.path.join(annotation_dir, ids_file)
    captions = _expect(_read_json(captions_path), dict, captions_path, "a mapping {video_id: {duration, sentences}}")
    video_ids = _expect(_read_json(ids_path), list, ids_path, "a list of video ids")
    rows = []
    for number, video_id in enumerate(video_ids):
        _expect(video_id, str, f"{ids_path} item {number}", "a video id string")
    for video_id in dict.fromkeys(video_ids):  # dict: drop repeats, keep order
        if video_id in captions:
            where = f"{captions_path} video {video_id!r}"
            sentences = _field(captions[video_id], "sentences", list, where, "a list of sentences")
            text = " ".join(_caption(sentence, f"{where} sentence {number}")
                            for number, sentence in enumerate(sentences))
            duration = _seconds(_field(captions[video_id], "duration", (int, float, str), where, "a number"), where,
                                "duration")
            rows.append(_row(video_id, _caption(text, where), 0, 0.0, float(math.ceil(duration))))

    find = None
    if video_dir is not None:
        stems = index_video_files(video_dir, "stem")
        find = lambda video_id: stems.get(video_id[2:]) or stems.get(video_id)  # noqa: E731
    return _build_dataset(rows, find, missing, f"activitynet {split} under {video_dir!s}",
                          source=f"{ids_path} + {captions_path}")


# ---------------------------------------------------------------------------------------------------- DiDeMo
def load_didemo(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """DiDeMo, paragraph-to-video: one row per video, all its descriptions joined with ``" "``, clip [0, 31] s.

    Files: ``{train,val,test}_list.txt`` (video file names) and ``{train,val,test}_data.json`` (official list of
    {``video``, ``description``, ``times``, ...}). Rows follow the first appearance of each listed video in the
    json; descriptions keep json order. Videos: the file whose full name is the video key.
    """
    _check_split(split, ("train", "val", "test"), "didemo")
    annotation_dir = os.fspath(annotation_dir)
    listed = set(_read_lines(os.path.join(annotation_dir, f"{split}_list.txt")))
    data_path = os.path.join(annotation_dir, f"{split}_data.json")
    paragraphs: dict[str, list[str]] = {}
    items = _expect(_read_json(data_path), list, data_path, "a list of {video, description} objects")
    for number, item in enumerate(items):
        where = f"{data_path} item {number}"
        video = _field(item, "video", str, where, "a video file name")
        if video in listed:
            description = _caption(_field(item, "description", str, where, "a string"), where)
            paragraphs.setdefault(video, []).append(description)
    rows = [_row(video, " ".join(texts), 0, *DIDEMO_CLIP) for video, texts in paragraphs.items()]
    find = None if video_dir is None else index_video_files(video_dir, "name").get
    return _build_dataset(rows, find, missing, f"didemo {split} under {video_dir!s}",
                          source=f"{split}_list.txt + {data_path}")


# ----------------------------------------------------------------------------------------------------- VATEX
VATEX_CAPTION_FILES = {
    "train": "vatex_training_v1.0.json",
    "val": "vatex_validation_v1.0.json",
    "test": "vatex_validation_v1.0.json",
}


def read_vatex_captions(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """VATEX captions as ``{video_id: entry}`` where ``entry["enCap"]`` lists the English captions.

    Accepts the official v1.0 json (a list of {``videoID``, ``enCap``, ``chCap``}, optionally with InternVideo's
    ``path`` field) and CLIP2Video/EMCL's ``vatex_data.json`` (``{videoID: {"enCap": [...], ...}}``).
    """
    path = os.fspath(path)
    data = _read_json(path)
    if isinstance(data, list):
        return {_field(entry, "videoID", str, f"{path} item {number}", "a video id string"): entry
                for number, entry in enumerate(data)}
    return _expect(data, dict, path, "a list of {videoID, enCap} objects or a mapping {videoID: {enCap}}")


def load_vatex(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    caption_file: str | None = None,
    id_list: str | None = None,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """VATEX (English): every caption is a row, in all splits (multi-caption evaluation, 10 per video).

    Files: ``{train,val,test}_list.txt`` (ids ``<youtube id>_<start6>_<end6>``) and the official captions
    (``vatex_training_v1.0.json`` for train, ``vatex_validation_v1.0.json`` for val and test: the HGR split carves
    the 1,500 test videos out of the official validation set). Videos: the entry's ``path`` when it has one
    (relative paths under ``video_dir``), else the file under ``video_dir`` whose stem is the id.

    Args:
        caption_file: caption json inside ``annotation_dir`` (default: by split as above; ``vatex_data.json``
            works too).
        id_list: id list file inside ``annotation_dir`` (default ``{split}_list.txt``; e.g.
            ``test1k5_sec_list.txt``).
    """
    _check_split(split, ("train", "val", "test"), "vatex")
    annotation_dir = os.fspath(annotation_dir)
    caption_path = os.path.join(annotation_dir, caption_file or VATEX_CAPTION_FILES[split])
    captions = read_vatex_captions(caption_path)
    video_ids = _read_lines(os.path.join(annotation_dir, id_list or f"{split}_list.txt"))
    uncaptioned = [video_id for video_id in video_ids if video_id not in captions]
    if uncaptioned:
        raise ValueError(f"vatex: {len(uncaptioned)} listed ids have no entry in {caption_path} "
                         f"(first: {uncaptioned[:5]})")
    rows = []
    for video_id in video_ids:
        where = f"{caption_path} video {video_id!r}"
        english = _field(captions[video_id], "enCap", list, where, "a list of English captions")
        rows += [_row(video_id, _caption(caption, f"{where} enCap[{number}]"), number)
                 for number, caption in enumerate(english)]

    find = None
    if video_dir is not None:
        stems = index_video_files(video_dir, "stem")

        def find(video_id: str) -> str | None:
            path = captions[video_id].get("path")
            return first_existing(os.path.join(video_dir, path)) if path else stems.get(video_id)

    return _build_dataset(rows, find, missing, f"vatex {split} under {video_dir!s}",
                          source=f"{id_list or f'{split}_list.txt'} + {caption_path}")


# --------------------------------------------------------------------------------------------------- generic
def _optional_seconds(value: Any, where: str, what: str) -> float | None:
    if value is None or value == "":
        return None
    return _seconds(value, where, f"{what} (seconds, or empty for the whole video)")


def load_generic(
    annotation_path: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str | None = None,
    *,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """Your own videos: a ``.csv`` (with a header) or ``.jsonl`` file, one (video, caption) per line/record.

    Columns: ``caption``; ``video_id`` and/or ``video_path``; optional ``start``, ``end`` (seconds; empty or null
    for the whole video). A video with several captions has several rows.

    Videos: a relative ``video_path`` is taken under ``video_dir`` (default: the annotation file's folder); with
    only ``video_id``, the file under that folder whose name or stem is the id. Without ``video_id`` the id is
    ``video_path`` as written.

    Args:
        annotation_path: the file, or a folder holding ``{split}.jsonl`` or ``{split}.csv``.
        split: the split to read from a folder (default ``test``). For a file named after a split
            (``val.jsonl``) it must be that split (default: the file's), so results are never labelled with a split
            the file does not hold.

    Example::

        {"video_id": "cat", "video_path": "clips/cat.mp4", "caption": "a cat jumps", "start": 2.0, "end": 7.5}
    """
    path = os.fspath(annotation_path)
    file_split = os.path.splitext(os.path.basename(path))[0]
    if not os.path.isdir(path) and file_split in SPLIT_NAMES and split not in (None, file_split):
        raise ValueError(f"generic: annotation file {path!r} holds the {file_split!r} split, not {split!r}; pass "
                         f"split={file_split!r} (--split {file_split}) or the {split} file")
    split = split or "test"
    if os.path.isdir(path):
        found = first_existing(os.path.join(path, f"{split}.jsonl"), os.path.join(path, f"{split}.csv"))
        if found is None:
            raise FileNotFoundError(f"generic: no {split}.jsonl or {split}.csv in {path!r}")
        path = found
    if path.endswith(".jsonl"):
        records = []  # (where, record)
        for line_number, line in enumerate(_read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} line {line_number}: not a JSON object ({error.msg}); is the line cut "
                                 "short?") from None
            records.append((f"{path} line {line_number}", _expect(record, dict, f"{path} line {line_number}",
                                                                  "a JSON object {video_id / video_path, caption}")))
    elif path.endswith(".csv"):
        csv_records = _read_csv(path, ("caption",))
        if csv_records and not {"video_id", "video_path"} & set(csv_records[0]):
            raise ValueError(f"{path} line 1: the header needs a 'video_id' or 'video_path' column; it has "
                             f"{list(csv_records[0])}")
        records = [(f"{path} record {number}", record) for number, record in enumerate(csv_records, 1)]
    else:
        raise ValueError(f"generic: annotation file {path!r} must end in .jsonl or .csv")

    rows, file_of = [], {}
    for where, record in records:
        if not record.get("caption"):
            raise ValueError(f"{where}: no 'caption'")
        caption = _caption(record["caption"], f"{where} field 'caption'")
        video_id, video_path = record.get("video_id") or "", record.get("video_path") or ""
        if not (video_id or video_path):
            raise ValueError(f"{where}: needs 'video_id' or 'video_path'")
        if not isinstance(video_path, str):
            raise ValueError(f"{where}: video_path must be a string, got {_show(video_path)}")
        video_id = str(video_id or video_path)
        if video_path:
            file_of.setdefault(video_id, video_path)
        start = _optional_seconds(record.get("start"), where, "start")
        end = _optional_seconds(record.get("end"), where, "end")
        if start is not None and end is not None and end < start:
            raise ValueError(f"{where}: clip end ({end} s) is before its start ({start} s)")
        rows.append(_row(video_id, caption, 0, start, end))

    root = os.fspath(video_dir) if video_dir is not None else os.path.dirname(os.path.abspath(path))
    lookup: dict[str, str] = {}
    if len(file_of) < len({row["video_id"] for row in rows}) and os.path.isdir(root):
        lookup = {**index_video_files(root, "stem"), **index_video_files(root, "name")}

    annotation_folder = os.path.dirname(os.path.abspath(path))

    def candidates(video_id: str) -> list[str]:
        # under the video folder, else (for the paths of a file written next to its videos, as the demo's) under
        # the annotation file's folder; join keeps an absolute path as it is
        relative = file_of[video_id]
        return list(dict.fromkeys([os.path.join(root, relative), os.path.join(annotation_folder, relative)]))

    def find(video_id: str) -> str | None:
        if video_id in file_of:
            return first_existing(*candidates(video_id))
        return lookup.get(video_id)

    def tried(video_id: str) -> str:
        paths = candidates(video_id) if video_id in file_of else [os.path.join(root, f"{video_id}.*")]
        return f"{video_id} at {' and '.join(paths)}"

    return _build_dataset(_number_captions(rows), find, missing, f"generic {path}", source=path, describe=tried)


# -------------------------------------------------------------------------------------------------- registry
READERS: dict[str, Callable[..., Dataset]] = {
    "msrvtt": load_msrvtt,
    "msvd": load_msvd,
    "lsmdc": load_lsmdc,
    "activitynet": load_activitynet,
    "didemo": load_didemo,
    "vatex": load_vatex,
    "generic": load_generic,
}


def load_annotations(
    name: str,
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    **options: Any,
) -> Dataset:
    """Read a dataset's annotations into a ``datasets.Dataset`` (columns: see the module docstring).

    Args:
        name: one of :data:`READERS` (``msrvtt``, ``msvd``, ``lsmdc``, ``activitynet``, ``didemo``, ``vatex``,
            ``generic``).
        annotation_dir: folder with the dataset's annotation files (``generic``: the file itself, or a folder with
            ``{split}.jsonl`` / ``{split}.csv``).
        video_dir: folder with the videos; ``None`` reads annotations only (``video_path`` is ``""``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        **options: reader options, e.g. ``missing="warn" | "error" | "drop"``, MSR-VTT ``expand_sentences=True``.

    Example::

        test = load_annotations("msrvtt", "data/msrvtt", "data/msrvtt/videos", "test")  # 1,000 rows
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in READERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(READERS)}")
    return READERS[key](annotation_dir, video_dir, split, **options)
