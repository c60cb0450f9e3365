"""Action-classification readers: the label files of Kinetics, UCF-101, HMDB-51, Something-Something v2, a folder
per class or a CSV -> a ``datasets.Dataset`` of labelled videos, for zero-shot classification
(:func:`tvr.evaluation.zero_shot.evaluate_zero_shot`, ``tvr eval --task zero-shot-classification``).

Every reader returns one row per video with the columns

- ``video_id`` (str): the benchmark's id of the video (Kinetics ``{youtube_id}_{start:06d}_{end:06d}``, UCF-101 the
  list's relative path, HMDB-51 the file name, SSv2 the numeric id, a folder or CSV the path);
- ``video_path`` (str): the file found under the video folder; ``""`` when it is missing (``missing="warn"``, the
  default: the missing videos are listed in a warning, and evaluation leaves them out and lists them again);
- ``label`` (str): the class name; ``label_id`` (``datasets.ClassLabel``): its id, whose ``names`` are every class of
  the benchmark in id order (classes without a video in the split included: zero-shot scores all of them);
- ``split`` (str): the split read.

Class ids follow the benchmark's own index where it ships one (UCF-101 ``classInd.txt``, SSv2 ``labels.json``),
else the sorted class names (Kinetics: every label of the folder's CSVs, or ``classes_file``; HMDB-51: the class
names of its split files; folder: the sub-folder names; CSV: the file's labels, or ``classes.txt`` beside it).
Errors name the file, the line and what was expected.
"""

from __future__ import annotations

import functools
import glob
import os
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..processing.compress import VIDEO_EXTENSIONS
from ..utils.values import did_you_mean
from .readers import _check_split, _expect, _field, _read_csv, _read_json, _read_lines
from .videos import MissingPolicy, first_existing, index_video_files, resolve_video_paths

if TYPE_CHECKING:
    from datasets import Dataset

#: the split each reader reads when none is given (``tvr eval --task zero-shot-classification`` without ``--split``)
DEFAULT_SPLITS = {"kinetics": "val", "ucf101": "test", "hmdb51": "test", "ssv2": "val", "folder": "test",
                  "csv": "test"}


def _classification_dataset(rows: list[dict[str, str]], classes: list[str],
                            find: Callable[[str], str | None] | None, missing: MissingPolicy, where: str, source: str,
                            describe: Callable[[str], str] | None = None) -> Dataset:
    """``rows`` (``video_id``, ``label``, ``split``) with ``video_path`` and ``label_id`` attached, as a Dataset whose
    ``label_id`` is a ``ClassLabel`` of ``classes``; ``find`` is ``None`` without a video folder (labels only)."""
    if not rows:
        raise ValueError(f"{where}: no videos for this split in {source}; expected at least one labelled video")
    if len(set(classes)) != len(classes):
        repeated = sorted({name for name in classes if classes.count(name) > 1})
        raise ValueError(f"{where}: class names repeat in {source} ({repeated[:5]}); each class must be named once")
    ids = {name: number for number, name in enumerate(classes)}
    paths = [""] * len(rows)
    if find is not None:
        paths = resolve_video_paths([row["video_id"] for row in rows], find, missing, where, describe)
    if find is not None and missing == "drop":
        rows, paths = [r for r, p in zip(rows, paths) if p], [p for p in paths if p]
        if not rows:
            raise ValueError(f"{where}: none of the split's videos was found (missing='drop' left no rows)")
    import pyarrow as pa
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"video_id": Value("string"), "video_path": Value("string"), "label": Value("string"),
                         "label_id": ClassLabel(names=list(classes)), "split": Value("string")})
    columns = {"video_id": [row["video_id"] for row in rows], "video_path": paths,
               "label": [row["label"] for row in rows], "label_id": [ids[row["label"]] for row in rows],
               "split": [row["split"] for row in rows]}
    return Dataset(pa.Table.from_pydict(columns, schema=features.arrow_schema))


def class_names(dataset: Any) -> list[str]:
    """The classes of a classification dataset in id order: its ``label_id`` ``ClassLabel`` names, else (a dataset
    built by hand) the sorted ``label`` values."""
    feature = getattr(dataset, "features", {}).get("label_id") if hasattr(dataset, "features") else None
    names = getattr(feature, "names", None)
    if names:
        return list(names)
    return sorted(set(dataset["label"]))


def _label(name: str, classes: dict[str, int] | Iterable[str], where: str) -> str:
    if name not in classes:
        raise ValueError(f"{where}: label {name!r} is not one of the {len(list(classes))} classes; check the class "
                         "list (or the annotation file) for a typo")
    return name


def _folder_of(annotation_path: str | os.PathLike) -> str:
    path = os.fspath(annotation_path)
    return path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))


# -------------------------------------------------------------------------------------------------- Kinetics
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def kinetics_clip_id(youtube_id: str, time_start: str | float, time_end: str | float, where: str = "") -> str:
    """How the common Kinetics downloader names a clip: ``{youtube_id}_{start:06d}_{end:06d}`` (whole seconds)."""
    try:
        start, end = int(float(time_start)), int(float(time_end))
    except ValueError:
        raise ValueError(f"{where}: time_start / time_end must be numbers of seconds, got {time_start!r}, "
                         f"{time_end!r}") from None
    return f"{youtube_id}_{start:06d}_{end:06d}"


def _kinetics_split_file(path: str, split: str) -> str:
    """The CSV of ``split``: ``path`` itself when it is a file, else ``{split}.csv`` in the folder (``val``: also
    ``validate.csv``), or a file named ``..._{split}.csv`` (``kinetics_400_val.csv``)."""
    if os.path.isfile(path):
        return path
    stems = [split] + (["validate", "validation"] if split == "val" else [])
    for stem in stems:
        found = first_existing(os.path.join(path, f"{stem}.csv"))
        if found:
            return found
    for stem in stems:
        found = sorted(glob.glob(os.path.join(glob.escape(path), f"*_{stem}.csv")))
        if found:
            return found[0]
    raise FileNotFoundError(f"kinetics: no {split} CSV in {path!r} (looked for {', '.join(f'{s}.csv' for s in stems)} "
                            f"and *_{split}.csv); pass the CSV file itself as the annotations")


def load_kinetics(
    annotation_path: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "val",
    *,
    classes_file: str | os.PathLike | None = None,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """Kinetics-400 / 600 / 700 (one reader: the releases share their format).

    Files: the release's CSVs with the header ``label,youtube_id,time_start,time_end,split`` (``train.csv``,
    ``validate.csv`` or ``val.csv``, ``test.csv``; or ``kinetics_400_val.csv``-style names), in ``annotation_path`` (a
    folder, or the CSV itself). Videos: ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4`` as the common downloader
    names the clips (any extension), anywhere under ``video_dir`` (per-class folders too); a file named after the
    ``youtube_id`` alone is taken when there is no clip file.

    Class ids: the lines of ``classes_file`` (one class name a line, e.g. a ``label_map_k400.txt``) when given, else
    the sorted labels of every CSV in the folder (so train / val / test agree).
    """
    _check_split(split, ("train", "val", "test"), "kinetics")
    path = os.fspath(annotation_path)
    source = _kinetics_split_file(path, split)
    records = _read_csv(source, ("youtube_id", "time_start", "time_end"))
    if records and "label" not in records[0]:
        raise ValueError(f"{source}: no 'label' column: Kinetics' test CSVs of some releases carry no labels; "
                         "evaluate the val split (validate.csv) or a CSV with labels")
    if classes_file is not None:
        classes = _read_lines(os.fspath(classes_file))
    else:
        csv_files = sorted(glob.glob(os.path.join(glob.escape(_folder_of(source)), "*.csv")))
        labels = {record["label"] for file in csv_files for record in _read_csv(file)
                  if record.get("label")} if os.path.isdir(path) else {record["label"] for record in records}
        classes = sorted(labels | {record["label"] for record in records})
    known = set(classes)
    rows = []
    for number, record in enumerate(records, 2):
        where = f"{source} line {number}"
        label = _label(record["label"].strip(), known, where)
        rows.append({"video_id": kinetics_clip_id(record["youtube_id"], record["time_start"], record["time_end"],
                                                  where),
                     "label": label, "split": split, "youtube_id": record["youtube_id"]})
    find = None
    if video_dir is not None:
        stems = index_video_files(video_dir, "stem")
        youtube_ids = {row["video_id"]: row["youtube_id"] for row in rows}
        find = lambda clip: stems.get(clip) or stems.get(youtube_ids[clip])  # noqa: E731
    return _classification_dataset(rows, classes, find, missing, f"kinetics {split} under {video_dir!s}",
                                   source, describe=lambda clip: f"{clip}.* under {video_dir!s}")


# --------------------------------------------------------------------------------------------------- UCF-101
def read_ucf101_classes(path: str) -> list[str]:
    """``classInd.txt``: lines ``"1 ApplyEyeMakeup"``, ids 1, 2, ... in order -> class names by 0-based id."""
    classes = []
    for number, line in enumerate(_read_lines(path), 1):
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise ValueError(f"{path} line {number}: expected '<id> <ClassName>' (e.g. '1 ApplyEyeMakeup'), got "
                             f"{line!r}")
        if int(fields[0]) != len(classes) + 1:
            raise ValueError(f"{path} line {number}: class id {fields[0]}, expected {len(classes) + 1} (ids count "
                             "up from 1)")
        classes.append(fields[1])
    return classes


def load_ucf101(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    fold: int = 1,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """UCF-101 (the ``ucfTrainTestlist`` folder).

    Files: ``classInd.txt`` (``"1 ApplyEyeMakeup"``: class ids, 0-based here), ``testlist0{fold}.txt``
    (``"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"``) and ``trainlist0{fold}.txt`` (the same plus the 1-based class
    id). The class of a video is the folder of its path (matched to ``classInd.txt`` ignoring case: the release spells
    ``HandstandPushups`` both ways). Videos: ``video_dir/<the list's path>``, else the file with its name anywhere
    under ``video_dir`` (a flat folder).

    Args:
        fold: the official split, 1, 2 or 3.
    """
    _check_split(split, ("train", "test"), "ucf101")
    if fold not in (1, 2, 3):
        raise ValueError(f"ucf101: fold={fold!r}; expected 1, 2 or 3 (the official splits)")
    annotation_dir = os.fspath(annotation_dir)
    classes = read_ucf101_classes(os.path.join(annotation_dir, "classInd.txt"))
    by_lower = {name.lower(): name for name in classes}
    source = os.path.join(annotation_dir, f"{split}list0{fold}.txt")
    rows = []
    for number, line in enumerate(_read_lines(source), 1):
        where = f"{source} line {number}"
        fields = line.split()
        relative = fields[0].replace("\\", "/")
        folder = relative.split("/")[0] if "/" in relative else ""
        label = by_lower.get(folder.lower())
        if label is None:
            raise ValueError(f"{where}: {relative!r} is not under a class folder of classInd.txt "
                             "('<ClassName>/v_<ClassName>_gXX_cXX.avi' expected)")
        if split == "train" and len(fields) > 1 and fields[1] != str(classes.index(label) + 1):
            raise ValueError(f"{where}: class id {fields[1]} but the folder {folder!r} is class "
                             f"{classes.index(label) + 1} in classInd.txt")
        rows.append({"video_id": relative, "label": label, "split": split})
    find = None
    if video_dir is not None:
        root = os.fspath(video_dir)
        names = index_video_files(root, "name")
        find = lambda relative: first_existing(os.path.join(root, relative)) or names.get(  # noqa: E731
            os.path.basename(relative))
    return _classification_dataset(rows, classes, find, missing, f"ucf101 {split} under {video_dir!s}",
                                   source)


# --------------------------------------------------------------------------------------------------- HMDB-51
HMDB51_SPLIT_CODES = {"train": "1", "test": "2"}  # 0: not used in this split


def load_hmdb51(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    fold: int = 1,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """HMDB-51 (the ``testTrainMulti_7030_splits`` folder).

    Files: one ``<class>_test_split{fold}.txt`` per class, lines ``"<video>.avi <code>"`` with code 1 (train),
    2 (test) or 0 (unused in this fold). Class ids: the sorted class names. Rows: class by class, in file order.
    Videos: ``video_dir/<class>/<video>``, else the file with its name anywhere under ``video_dir``.

    Args:
        fold: the official split, 1, 2 or 3.
    """
    _check_split(split, ("train", "test"), "hmdb51")
    if fold not in (1, 2, 3):
        raise ValueError(f"hmdb51: fold={fold!r}; expected 1, 2 or 3 (the official splits)")
    annotation_dir = os.fspath(annotation_dir)
    suffix = f"_test_split{fold}.txt"
    files = {os.path.basename(path)[:-len(suffix)]: path
             for path in glob.glob(os.path.join(glob.escape(annotation_dir), f"*{suffix}"))}
    if not files:
        raise FileNotFoundError(f"hmdb51: no '<class>{suffix}' files in {annotation_dir!r}; pass the folder of the "
                                "split files (testTrainMulti_7030_splits)")
    classes = sorted(files)
    rows, class_of = [], {}
    for label in classes:
        for number, line in enumerate(_read_lines(files[label]), 1):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{files[label]} line {number}: expected '<video>.avi <0|1|2>' (1 train, 2 test, "
                                 f"0 unused), got {line!r}")
            if fields[1] == HMDB51_SPLIT_CODES[split]:
                rows.append({"video_id": fields[0], "label": label, "split": split})
                class_of[fields[0]] = label
    find = None
    if video_dir is not None:
        root = os.fspath(video_dir)
        names = index_video_files(root, "name")
        find = lambda name: first_existing(os.path.join(root, class_of[name], name)) or names.get(name)  # noqa: E731
    return _classification_dataset(rows, classes, find, missing, f"hmdb51 {split} under {video_dir!s}",
                                   f"{annotation_dir}/*{suffix}")


# ----------------------------------------------------------------------------------------- Something-Something
SSV2_FILES = {"train": ("train.json", "something-something-v2-train.json"),
              "val": ("validation.json", "something-something-v2-validation.json"),
              "test": ("test.json", "something-something-v2-test.json")}
SSV2_LABELS = ("labels.json", "something-something-v2-labels.json")


def ssv2_class(template: str) -> str:
    """The class of an SSv2 video: its ``template`` with the placeholder brackets removed
    (``"Putting [something] on [something]"`` -> ``"Putting something on something"``)."""
    return re.sub(r"\[|\]", "", template)


def load_ssv2(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "val",
    *,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """Something-Something v2.

    Files: ``labels.json`` (``{"Holding something": "0", ...}``: class ids) and ``train.json`` / ``validation.json``
    (``[{"id": "74225", "label": "...", "template": "Spinning [something] that quickly stops spinning",
    "placeholders": [...]}]``; ``something-something-v2-*.json`` names too). A video's class is its ``template``
    without the brackets. The test split's labels are not published (``test.json`` holds ids only): evaluate
    ``val``. Videos: ``{id}.webm`` (any extension) anywhere under ``video_dir``.
    """
    _check_split(split, ("train", "val", "test"), "ssv2")
    annotation_dir = os.fspath(annotation_dir)
    labels_path = first_existing(*(os.path.join(annotation_dir, name) for name in SSV2_LABELS))
    if labels_path is None:
        raise FileNotFoundError(f"ssv2: no labels.json in {annotation_dir!r}")
    labels = _expect(_read_json(labels_path), dict, labels_path, 'a mapping {"Holding something": "0", ...}')
    ids = {}
    for name, value in labels.items():
        if not str(value).isdigit():
            raise ValueError(f"{labels_path} class {name!r}: id {value!r} is not a non-negative integer")
        ids[name] = int(value)
    if sorted(ids.values()) != list(range(len(ids))):
        raise ValueError(f"{labels_path}: class ids must be 0..{len(ids) - 1}, each once")
    classes = sorted(ids, key=ids.get)
    source = first_existing(*(os.path.join(annotation_dir, name) for name in SSV2_FILES[split]))
    if source is None:
        raise FileNotFoundError(f"ssv2: no {SSV2_FILES[split][0]} in {annotation_dir!r}")
    records = _expect(_read_json(source), list, source, "a list of {id, label, template, placeholders} objects")
    rows = []
    for number, record in enumerate(records):
        where = f"{source} item {number}"
        video_id = str(_field(record, "id", (str, int), where, "the video id"))
        if "template" not in record:
            raise ValueError(f"{where}: no 'template' (the class); {split} labels are not published in "
                             f"{os.path.basename(source)}: evaluate the val split (validation.json)")
        template = _field(record, "template", str, where, "the class template, e.g. 'Putting [something] on a "
                                                          "surface'")
        rows.append({"video_id": video_id, "label": _label(ssv2_class(template), ids, where), "split": split})
    find = None if video_dir is None else index_video_files(video_dir, "stem").get
    return _classification_dataset(rows, classes, find, missing, f"ssv2 {split} under {video_dir!s}",
                                   source, describe=lambda video_id: f"{video_id}.webm under {video_dir!s}")


# ---------------------------------------------------------------------------------------------- folder / csv
def load_video_folder(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """A folder per class: ``<root>/<class>/<video>`` (videos in sub-folders of a class folder count too), where
    ``root`` is ``video_dir`` (default ``annotation_dir``), or its ``<split>`` sub-folder when it has one
    (``root/test/<class>/...``). Class ids: the sorted class folder names. Files are videos by their extension."""
    root = os.fspath(video_dir if video_dir is not None else annotation_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"folder: {root!r} is not a folder; expected <root>/<class>/<video> files")
    if os.path.isdir(os.path.join(root, split)):
        root = os.path.join(root, split)
    classes = sorted(name for name in os.listdir(root)
                     if os.path.isdir(os.path.join(root, name)) and not name.startswith("."))
    rows, path_of = [], {}
    for label in classes:
        for video_id, path in index_video_files(os.path.join(root, label), "name").items():
            if os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS:
                relative = os.path.relpath(path, root)
                rows.append({"video_id": relative, "label": label, "split": split})
                path_of[relative] = path
    return _classification_dataset(rows, classes, path_of.get, missing, f"folder {split} under {root}",
                                   f"{root}/<class>/<video> (extensions {sorted(VIDEO_EXTENSIONS)})")


def load_classification_csv(
    annotation_path: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    classes_file: str | os.PathLike | None = None,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """Your own labelled videos: a CSV file with a header and the columns ``video_path`` (or ``video_id``) and
    ``label``; an optional ``split`` column keeps the rows of ``split``.

    ``annotation_path`` is the file, or a folder holding ``{split}.csv``. Relative video paths are taken under
    ``video_dir`` (default: the CSV's folder); a ``video_id`` without a path is the file whose stem or name it is.
    Class ids: the lines of ``classes_file``, else of ``classes.txt`` beside the CSV, else the sorted labels of every
    row of the file (all splits).

    Example (``labels.csv``)::

        video_path,label
        clips/cat.mp4,cat
        clips/dog.mp4,dog
    """
    path = os.fspath(annotation_path)
    if os.path.isdir(path):
        found = first_existing(os.path.join(path, f"{split}.csv"))
        if found is None:
            raise FileNotFoundError(f"csv: no {split}.csv in {path!r}")
        path = found
    records = _read_csv(path, ("label",))
    if records and not {"video_id", "video_path"} & set(records[0]):
        raise ValueError(f"{path} line 1: the header needs a 'video_path' or 'video_id' column; it has "
                         f"{list(records[0])}")
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), "classes.txt")
    classes_file = classes_file if classes_file is not None else (beside if os.path.isfile(beside) else None)
    if classes_file is not None:
        classes = _read_lines(os.fspath(classes_file))
    else:
        classes = sorted({record["label"].strip() for record in records if record["label"].strip()})
    known = set(classes)
    rows, file_of = [], {}
    for number, record in enumerate(records, 2):
        where = f"{path} line {number}"
        if "split" in record and record["split"].strip() != split:
            continue
        video_id = (record.get("video_id") or record.get("video_path") or "").strip()
        if not video_id:
            raise ValueError(f"{where}: no video_path / video_id")
        if record.get("video_path"):
            file_of[video_id] = record["video_path"].strip()
        rows.append({"video_id": video_id, "label": _label(record["label"].strip(), known, where), "split": split})
    root = os.fspath(video_dir) if video_dir is not None else os.path.dirname(os.path.abspath(path))
    lookup = functools.cache(lambda: {**index_video_files(root, "stem"), **index_video_files(root, "name")})

    def find(video_id: str) -> str | None:
        if video_id in file_of:
            return first_existing(os.path.join(root, file_of[video_id]))
        return lookup().get(video_id) if os.path.isdir(root) else None

    return _classification_dataset(rows, classes, find, missing, f"csv {path} ({split})", path,
                                   describe=lambda video_id: os.path.join(root, file_of.get(video_id, video_id)))


# -------------------------------------------------------------------------------------------------- registry
CLASSIFICATION_READERS: dict[str, Callable[..., Dataset]] = {
    "kinetics400": load_kinetics,
    "kinetics600": load_kinetics,
    "kinetics700": load_kinetics,
    "ucf101": load_ucf101,
    "hmdb51": load_hmdb51,
    "ssv2": load_ssv2,
    "folder": load_video_folder,
    "csv": load_classification_csv,
}


def default_split(name: str) -> str:
    """The split a benchmark is evaluated on by default: Kinetics and SSv2 ``val`` (their test labels are not
    public), the others ``test``."""
    return DEFAULT_SPLITS["kinetics" if name.startswith("kinetics") else name]


def load_classification(
    name: str,
    annotation_path: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str | None = None,
    **options: Any,
) -> Dataset:
    """Read a classification benchmark's labels into a ``datasets.Dataset`` (columns: see the module docstring).

    Args:
        name: one of :data:`CLASSIFICATION_READERS` (``kinetics400`` / ``600`` / ``700``, ``ucf101``, ``hmdb51``,
            ``ssv2``, ``folder``, ``csv``).
        annotation_path: the benchmark's label folder (Kinetics, CSV: or the file).
        video_dir: the video folder; ``None``: labels only (``video_path`` is ``""``; ``folder``: the annotation
            folder is the video folder).
        split: default :func:`default_split`.
        **options: reader options: ``missing="warn" | "error" | "drop"``, ``fold=1`` (UCF-101, HMDB-51),
            ``classes_file=`` (Kinetics, CSV).

    Example::

        test = load_classification("ucf101", "data/ucfTrainTestlist", "data/UCF-101")  # 3,783 videos, 101 classes
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in CLASSIFICATION_READERS:
        raise ValueError(f"unknown classification dataset {name!r}{did_you_mean(key, CLASSIFICATION_READERS)}; "
                         f"expected one of {sorted(CLASSIFICATION_READERS)}")
    return CLASSIFICATION_READERS[key](annotation_path, video_dir, split or default_split(key), **options)


__all__ = ["CLASSIFICATION_READERS", "DEFAULT_SPLITS", "class_names", "default_split", "kinetics_clip_id",
           "load_classification", "load_classification_csv", "load_hmdb51", "load_kinetics", "load_ssv2",
           "load_ucf101", "load_video_folder", "read_ucf101_classes", "ssv2_class"]
