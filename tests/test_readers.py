"""Annotation readers: small files in each dataset's original format, and counts on the real files."""

import csv
import json
import os
import pickle
import warnings

import pytest

from tvr.data import load_annotations
from tvr.data.readers import FEATURES, LSMDC_BROKEN_CLIPS


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    return str(path)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def write_json(path, data):
    with open(path, "w") as file:
        json.dump(data, file)


def as_rows(dataset, *columns):
    return [tuple(row[c] for c in columns) for row in dataset]


# ------------------------------------------------------------------------------------------------------ MSR-VTT
@pytest.fixture
def msrvtt(tmp_path):
    ann, videos = tmp_path / "ann", tmp_path / "videos"
    ann.mkdir()
    write_csv(ann / "MSRVTT_train.9k.csv", ["video_id"], [["video0"], ["video2"], ["video1"]])
    write_csv(ann / "MSRVTT_train.7k.csv", ["video_id"], [["video1"]])
    write_csv(ann / "MSRVTT_test.full.csv", ["video_id"], [["video9"]])
    write_csv(ann / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"],
              [["ret0", "msr9", "video9", "a man sings"], ["ret1", "msr7", "video7", "a dog, running"]])
    sentences = [("video1", "one a"), ("video0", "zero a"), ("video9", "nine a"), ("video0", "zero b"),
                 ("video2", "two a"), ("video1", "one b"), ("video9", "nine b")]
    write_json(ann / "MSRVTT_data.json", {
        "info": {"contributor": "test", "version": "1.0", "year": "2016"},
        "videos": [{"category": 9, "url": f"https://www.youtube.com/watch?v=x{i}", "video_id": f"video{i}",
                    "start time": 1.0, "end time": 11.0, "split": "train", "id": i} for i in (0, 1, 2, 7, 9)],
        "sentences": [{"caption": c, "video_id": v, "sen_id": i} for i, (v, c) in enumerate(sentences)],
    })
    paths = {"video0": touch(videos / "video0.mp4"), "video1": touch(videos / "video1.webm"),
             "video9": touch(videos / "video9.mp4"), "video7": touch(videos / "video7.mp4")}
    touch(videos / "video9.webm")  # .mp4 wins over .webm
    return ann, videos, paths


def test_msrvtt_train_one_row_per_video_with_all_captions(msrvtt):
    ann, videos, paths = msrvtt
    with pytest.warns(UserWarning, match=r"1 of 3 videos not found \(video2\)"):
        train = load_annotations("msrvtt", ann, videos, "train")
    assert set(train.column_names) == set(FEATURES) | {"captions"}
    assert as_rows(train, "video_id", "caption", "captions", "video_path") == [
        ("video0", "zero a", ["zero a", "zero b"], paths["video0"]),
        ("video2", "two a", ["two a"], ""),
        ("video1", "one a", ["one a", "one b"], paths["video1"]),  # .webm fallback
    ]
    assert train["start"] == [None] * 3 and train["caption_index"] == [0, 0, 0]
    seven = load_annotations("msrvtt", ann, videos, "train", train_list="7k")
    assert seven["video_id"] == ["video1"]


def test_msrvtt_train_expanded_follows_json_order(msrvtt):
    ann, videos, paths = msrvtt
    with pytest.warns(UserWarning, match=r"1 of 3 videos not found \(video2\); dropping their rows"):
        train = load_annotations("msrvtt", ann, videos, "train", expand_sentences=True, missing="drop")
    # video2 has no file: dropped; sentences of test video9 are not training rows
    assert as_rows(train, "video_id", "caption", "caption_index") == [
        ("video1", "one a", 0), ("video0", "zero a", 0), ("video0", "zero b", 1), ("video1", "one b", 1)]
    assert "captions" not in train.column_names
    with pytest.raises(FileNotFoundError, match="video2"):
        load_annotations("msrvtt", ann, videos, "train", missing="error")


def test_msrvtt_test_sets(msrvtt):
    ann, videos, paths = msrvtt
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every test video exists: no warning
        test = load_annotations("msrvtt", ann, videos, "test")
        val = load_annotations("MSR-VTT", ann, videos, "val")
    assert as_rows(test, "video_id", "caption", "video_path") == [
        ("video9", "a man sings", paths["video9"]), ("video7", "a dog, running", paths["video7"])]
    assert val.to_list() == test.to_list()
    full = load_annotations("msrvtt", ann, None, "test", test_list="full")
    assert as_rows(full, "video_id", "caption", "caption_index", "video_path") == [
        ("video9", "nine a", 0, ""), ("video9", "nine b", 1, "")]
    with pytest.raises(ValueError, match="train_list='10k'"):
        load_annotations("msrvtt", ann, None, "train", train_list="10k")


# --------------------------------------------------------------------------------------------------------- MSVD
@pytest.fixture
def msvd(tmp_path):
    captions = {"abc_1_5": ["a cat sits", "a cat is sitting"], "x.y_2_9": ["someone cooks"], "zz_0_3": ["unused"]}
    pkl_dir, json_dir, videos = tmp_path / "pkl", tmp_path / "json", tmp_path / "videos"
    for folder in (pkl_dir, json_dir):
        folder.mkdir()
        for split, ids in {"train": ["zz_0_3"], "test": ["x.y_2_9", "abc_1_5"]}.items():
            (folder / f"{split}_list.txt").write_text("\n".join(ids) + "\n")
    with open(pkl_dir / "raw-captions.pkl", "wb") as file:  # CLIP4Clip's format: lists of tokens
        pickle.dump({k: [c.split(" ") for c in v] for k, v in captions.items()}, file)
    write_json(json_dir / "captions_msvd.json", captions)
    paths = {"abc_1_5": touch(videos / "a" / "abc_1_5.avi"), "x.y_2_9": touch(videos / "x.y_2_9.avi")}
    return pkl_dir, json_dir, videos, paths


def test_msvd_every_caption_is_a_row_in_both_caption_formats(msvd):
    pkl_dir, json_dir, videos, paths = msvd
    from_pkl = load_annotations("msvd", pkl_dir, videos, "test")
    from_json = load_annotations("msvd", json_dir, videos, "test")
    assert from_pkl.to_list() == from_json.to_list()
    assert as_rows(from_pkl, "video_id", "caption", "caption_index", "video_path") == [
        ("x.y_2_9", "someone cooks", 0, paths["x.y_2_9"]),
        ("abc_1_5", "a cat sits", 0, paths["abc_1_5"]),  # found in a sub-folder
        ("abc_1_5", "a cat is sitting", 1, paths["abc_1_5"]),
    ]


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_msvd_caption_pickle_cannot_run_code(msvd, tmp_path, monkeypatch):
    pkl_dir, _, videos, _ = msvd
    monkeypatch.chdir(tmp_path)
    with open(pkl_dir / "raw-captions.pkl", "wb") as file:
        pickle.dump({"abc_1_5": [["a", "cat"]], "evil": _RunsCode()}, file)
    with pytest.raises(ValueError, match="refusing to load .*system from a caption pickle"):
        load_annotations("msvd", pkl_dir, videos, "test")
    assert not (tmp_path / "pwned.txt").exists()


def test_msvd_listed_video_without_captions_raises(msvd):
    pkl_dir, json_dir, videos, paths = msvd
    (json_dir / "val_list.txt").write_text("abc_1_5\nnot_there\n")
    with pytest.raises(ValueError, match="1 ids of val_list.txt have no captions.*not_there"):
        load_annotations("msvd", json_dir, videos, "val")


# -------------------------------------------------------------------------------------------------------- LSMDC
def test_lsmdc_tab_separated_lines(tmp_path):
    lines = [
        ("1004_Juno_00.00.32.849-00.00.35.458", "00.00.32.849", "00.00.35.458", "00.00.32.849", "00.00.35.458",
         "SOMEONE sits on the couch."),
        (LSMDC_BROKEN_CLIPS[0], "00.23.28.872", "00.23.34.843", "00.23.28.872", "00.23.34.843", "Broken clip."),
        ("1004_Juno_00.00.35.642-00.00.45.231", "00.00.35.642", "00.00.45.231", "00.00.35.642", "00.00.45.231",
         "He smiles, then walks away."),
        ("1004_Juno_00.00.32.849-00.00.35.458", "00.00.32.849", "00.00.35.458", "00.00.32.849", "00.00.35.458",
         "She looks up."),
    ]
    (tmp_path / "LSMDC16_annos_training.csv").write_text("".join("\t".join(line) + "\n" for line in lines))
    videos = tmp_path / "videos"
    path = touch(videos / "1004_Juno" / "1004_Juno_00.00.32.849-00.00.35.458.avi")  # dots inside the id
    with pytest.warns(UserWarning, match=r"1 of 2 videos not found \(1004_Juno_00.00.35.642-00.00.45.231\)"):
        train = load_annotations("lsmdc", tmp_path, videos, "train")
    assert as_rows(train, "video_id", "caption", "caption_index", "video_path", "start", "end") == [
        (lines[0][0], "SOMEONE sits on the couch.", 0, path, None, None),
        (lines[2][0], "He smiles, then walks away.", 0, "", None, None),
        (lines[0][0], "She looks up.", 1, path, None, None),
    ]
    kept = load_annotations("lsmdc", tmp_path, None, "train", skip_broken=False)
    assert kept["caption"][1] == "Broken clip."

    (tmp_path / "LSMDC16_annos_val.csv").write_text("a\tb\tc\n")
    with pytest.raises(ValueError, match="line 1 has 3 tab-separated fields"):
        load_annotations("lsmdc", tmp_path, None, "val")


# -------------------------------------------------------------------------------------------------- ActivityNet
def test_activitynet_paragraphs(tmp_path):
    write_json(tmp_path / "val_ids.json", ["v_bbb", "v_nocaption", "v_a-1", "v_bbb"])
    write_json(tmp_path / "val_1.json", {
        "v_a-1": {"duration": 55.15, "timestamps": [[0.28, 55.15], [13.79, 54.32]],
                  "sentences": ["A weight lifting tutorial is given.", "  The coach helps the guy."]},
        "v_bbb": {"duration": 73.0, "timestamps": [[0, 10.2]], "sentences": ["A man speaks."]},
        "v_notlisted": {"duration": 3.0, "timestamps": [[0, 1]], "sentences": ["x"]},
    })
    videos = tmp_path / "videos"
    a_path = touch(videos / "a-1.mp4")  # CLIP4Clip layout: id without "v_"
    b_path = touch(videos / "v_bbb.mkv")  # EMCL-Net layout: the full id
    for split in ("val", "test"):
        test = load_annotations("activitynet", tmp_path, videos, split)
        assert as_rows(test, "video_id", "caption", "caption_index", "start", "end", "video_path") == [
            ("v_bbb", "A man speaks.", 0, 0.0, 73.0, b_path),
            ("v_a-1", "A weight lifting tutorial is given.   The coach helps the guy.", 0, 0.0, 56.0, a_path),
        ]
    with pytest.raises(ValueError, match="split='dev'"):
        load_annotations("activitynet", tmp_path, videos, "dev")


# ------------------------------------------------------------------------------------------------------- DiDeMo
def test_didemo_paragraphs(tmp_path):
    (tmp_path / "test_list.txt").write_text("1@N0_7_f.mov\n2@N0_8_e.\n")
    item = dict(num_segments=6, dl_link="https://www.flickr.com/video_download.gne?id=7")
    write_json(tmp_path / "test_data.json", [
        dict(item, description="person in white is backing up.", times=[[2, 2], [1, 2]], video="2@N0_8_e.",
             annotation_id=31),
        dict(item, description="someone kicks the bug", times=[[4, 4]], video="1@N0_7_f.mov", annotation_id=1),
        dict(item, description="an unlisted video", times=[[0, 0]], video="3@N0_9_g.mp4", annotation_id=5),
        dict(item, description="then comes back", times=[[1, 1]], video="2@N0_8_e.", annotation_id=40),
    ])
    videos = tmp_path / "videos"
    paths = [touch(videos / "2@N0_8_e."), touch(videos / "1@N0_7_f.mov"), touch(videos / "1@N0_7_f.mp4")]
    test = load_annotations("didemo", tmp_path, videos, "test")
    assert as_rows(test, "video_id", "caption", "start", "end", "video_path") == [
        ("2@N0_8_e.", "person in white is backing up. then comes back", 0.0, 31.0, paths[0]),
        ("1@N0_7_f.mov", "someone kicks the bug", 0.0, 31.0, paths[1]),  # the full file name, not the stem
    ]


# -------------------------------------------------------------------------------------------------------- VATEX
def test_vatex_official_and_clip2video_formats(tmp_path):
    ids = ["Ptf_2VRj-V0_000122_000132", "CBL6uetTPHg_000089_000099"]
    (tmp_path / "test_list.txt").write_text("\n".join(ids) + "\n")
    (tmp_path / "extra_list.txt").write_text(ids[1] + "\n")
    entries = [
        {"videoID": ids[0], "enCap": ["A man plays.", "Someone plays a drum."], "chCap": ["一个男人在玩。", "有人打鼓。"]},
        {"videoID": ids[1], "enCap": ["A girl dances."], "chCap": ["一个女孩在跳舞。"], "path": "ceph/b.mp4"},
        {"videoID": "unused_000000_000010", "enCap": ["x"], "chCap": ["x"]},
    ]
    write_json(tmp_path / "vatex_validation_v1.0.json", entries)
    write_json(tmp_path / "vatex_data.json", {e["videoID"]: {k: e[k] for k in ("enCap", "chCap")} for e in entries})
    videos = tmp_path / "videos"
    a_path, b_path = touch(videos / f"{ids[0]}.mp4"), touch(videos / "ceph" / "b.mp4")
    test = load_annotations("vatex", tmp_path, videos, "test")
    assert as_rows(test, "video_id", "caption", "caption_index", "video_path") == [
        (ids[0], "A man plays.", 0, a_path), (ids[0], "Someone plays a drum.", 1, a_path),
        (ids[1], "A girl dances.", 0, b_path),  # the entry's own path
    ]
    other = load_annotations("vatex", tmp_path, None, "test", caption_file="vatex_data.json")
    assert as_rows(other, "video_id", "caption") == as_rows(test, "video_id", "caption")
    assert load_annotations("vatex", tmp_path, None, "val", id_list="extra_list.txt")["caption"] == ["A girl dances."]
    (tmp_path / "val_list.txt").write_text("nope_000000_000010\n")
    with pytest.raises(ValueError, match="1 listed ids have no entry"):
        load_annotations("vatex", tmp_path, None, "val")


# ------------------------------------------------------------------------------------------------------ generic
def test_generic_jsonl_and_csv(tmp_path):
    videos = tmp_path / "videos"
    cat, dog, bird = touch(videos / "cat.mp4"), touch(videos / "sub" / "dog.webm"), touch(tmp_path / "abs" / "b.mp4")
    records = [
        {"video_id": "cat", "video_path": "cat.mp4", "caption": "a cat jumps", "start": 2, "end": 7.5},
        {"video_id": "dog", "caption": "a dog runs"},  # found by stem under video_dir
        {"video_path": bird, "caption": "a bird flies", "start": None},  # absolute path, id = the path
        {"video_id": "cat", "caption": "the cat lands"},
        {"video_id": "fish", "caption": "a fish swims"},
    ]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.warns(UserWarning, match=r"1 of 4 videos not found \(fish\)"):
        from_jsonl = load_annotations("generic", tmp_path, videos, "test")
    expected = [("cat", "a cat jumps", 0, 2.0, 7.5, cat), ("dog", "a dog runs", 0, None, None, dog),
                (bird, "a bird flies", 0, None, None, bird), ("cat", "the cat lands", 1, None, None, cat),
                ("fish", "a fish swims", 0, None, None, "")]
    columns = ("video_id", "caption", "caption_index", "start", "end", "video_path")
    assert as_rows(from_jsonl, *columns) == expected

    write_csv(tmp_path / "mine.csv", ["video_id", "video_path", "caption", "start", "end"],
              [[r.get("video_id", ""), r.get("video_path", ""), r["caption"], r.get("start") or "", r.get("end", "")]
               for r in records[:4]])
    from_csv = load_annotations("generic", tmp_path / "mine.csv", videos, missing="error")
    assert as_rows(from_csv, *columns) == expected[:4]

    (tmp_path / "bad.jsonl").write_text(json.dumps({"caption": "no video"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl line 1: needs 'video_id' or 'video_path'"):
        load_annotations("generic", tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError, match="no train.jsonl or train.csv"):
        load_annotations("generic", tmp_path, split="train")


def test_registry_rejects_unknown_names_and_policies(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'kinetics'"):
        load_annotations("kinetics", tmp_path)
    (tmp_path / "test.jsonl").write_text(json.dumps({"video_id": "a", "caption": "x"}) + "\n")
    with pytest.raises(ValueError, match="missing='ignore'"):
        load_annotations("generic", tmp_path, tmp_path, missing="ignore")


# ------------------------------------------------------------------------------------------- bad annotation files
def _truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def _replace_json(path, value):
    write_json(path, value)


BAD_MSRVTT_FILES = {
    # case: (how the file is damaged, split, error message it must give)
    "truncated json": (lambda ann: _truncate(ann / "MSRVTT_data.json"), "train",
                       r"MSRVTT_data.json line 1 column \d+: not valid JSON"),
    "renamed column": (lambda ann: write_csv(ann / "MSRVTT_train.9k.csv", ["vid"], [["video0"]]), "train",
                       r"MSRVTT_train.9k.csv line 1: the header lacks columns \['video_id'\]; it has \['vid'\]"),
    "list for a mapping": (lambda ann: _replace_json(ann / "MSRVTT_data.json", [1, 2]), "train",
                           "MSRVTT_data.json: expected a JSON object, got list"),
    "no sentences": (lambda ann: _replace_json(ann / "MSRVTT_data.json", {"videos": []}), "train",
                     "MSRVTT_data.json: no 'sentences' field"),
    "caption not a string": (lambda ann: _replace_json(ann / "MSRVTT_data.json", {"sentences": [
        {"video_id": "video0", "caption": "fine"}, {"video_id": "video0", "caption": 7}]}), "train",
        r"MSRVTT_data.json sentences\[1\] field 'caption': expected a string, got int 7"),
    "latin-1 bytes": (lambda ann: (ann / "MSRVTT_JSFUSION_test.csv").write_bytes(
        b"key,vid_key,video_id,sentence\nret0,msr9,video9,un caf\xe9\n"), "test",
        "MSRVTT_JSFUSION_test.csv line 2: byte 0xe9 is not UTF-8"),
    "cut mid-line": (lambda ann: (ann / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\nret0,msr9,video9,a man sings\nret1,msr7"), "test",
        r"MSRVTT_JSFUSION_test.csv line 3: 2 fields, expected 4 \(key, vid_key, video_id, sentence\)"),
    "empty csv": (lambda ann: (ann / "MSRVTT_JSFUSION_test.csv").write_text(""), "test",
                  "MSRVTT_JSFUSION_test.csv: empty file; expected a CSV header"),
    "header only": (lambda ann: (ann / "MSRVTT_JSFUSION_test.csv").write_text("key,vid_key,video_id,sentence\n"),
                    "test", "no rows for this split in .*MSRVTT_JSFUSION_test.csv"),
}


@pytest.mark.parametrize("case", BAD_MSRVTT_FILES)
def test_bad_annotation_files_name_the_file_and_record(msrvtt, case):
    ann, videos, _ = msrvtt
    damage, split, message = BAD_MSRVTT_FILES[case]
    damage(ann)
    with pytest.raises(ValueError, match=message):
        load_annotations("msrvtt", ann, None, split)


def test_bad_activitynet_durations_and_empty_lists(tmp_path):
    write_json(tmp_path / "val_ids.json", ["v_a", "v_b"])
    for duration, shown in (("abc", "str 'abc'"), (-5.0, "float -5.0"), (None, "NoneType None")):
        write_json(tmp_path / "val_1.json", {"v_a": {"duration": 3.0, "sentences": ["x"]},
                                             "v_b": {"duration": duration, "sentences": ["y"]}})
        with pytest.raises(ValueError, match=f"val_1.json video 'v_b'.*duration.*got {shown}"):
            load_annotations("activitynet", tmp_path, None, "test")
    write_json(tmp_path / "val_1.json", {"v_a": {"duration": 3.0}})
    with pytest.raises(ValueError, match="val_1.json video 'v_a': no 'sentences' field"):
        load_annotations("activitynet", tmp_path, None, "test")
    (tmp_path / "test_list.txt").write_text("\n")
    write_json(tmp_path / "test_data.json", [])
    with pytest.raises(ValueError, match="no rows for this split in .*test_list.txt"):
        load_annotations("didemo", tmp_path, None, "test")


def test_generic_files_with_a_bom_bad_records_and_negative_times(tmp_path):
    (tmp_path / "bom.csv").write_bytes("\ufeffvideo_id,caption\ncat,a cat jumps\n".encode("utf-8"))
    with pytest.warns(UserWarning, match="1 of 1 videos not found"):  # the header was read: video_id, caption
        assert load_annotations("generic", tmp_path / "bom.csv")["video_id"] == ["cat"]
    cases = {
        '{"video_id": "a", "caption": 5}': r"line 2 field 'caption': expected a caption \(a non-empty string\)",
        '["a", "x"]': "line 2: expected a JSON object",
        '{"video_id": "a", "caption": "x", "start": -1}': "line 2: start .* must be a number of seconds >= 0",
        '{"video_id": "a", "caption": "x", "start": 5, "end": 2}': r"line 2: clip end \(2.0 s\) is before",
        '{"video_id": "a", "capt': "line 2: not a JSON object",
    }
    for line, message in cases.items():
        (tmp_path / "test.jsonl").write_text('{"video_id": "ok", "caption": "fine"}\n' + line + "\n")
        with pytest.raises(ValueError, match=message):
            load_annotations("generic", tmp_path / "test.jsonl")
    (tmp_path / "test.jsonl").write_text("")
    with pytest.raises(ValueError, match="no rows for this split in .*test.jsonl"):
        load_annotations("generic", tmp_path / "test.jsonl")


# --------------------------------------------------------------------------------- real annotation files (shared)
def test_real_msrvtt(shared_annotations, tmp_path):
    ann = shared_annotations / "msrvtt"
    test = load_annotations("msrvtt", ann, None, "test")
    assert len(test) == 1000 and len(set(test["video_id"])) == 1000
    assert test[0]["video_id"] == "video9770" and test[0]["caption"] == "a person is connecting something to system"
    # MSRVTT_data.json is not available: a stand-in with the official structure and one sentence per video
    for name in ("MSRVTT_train.9k.csv", "MSRVTT_train.7k.csv"):
        os.symlink(ann / name, tmp_path / name)
    with open(ann / "MSRVTT_train.9k.csv") as file:
        ids = [row["video_id"] for row in csv.DictReader(file)]
    write_json(tmp_path / "MSRVTT_data.json", {"info": {}, "videos": [], "sentences": [
        {"caption": f"caption of {v}", "video_id": v, "sen_id": i} for i, v in enumerate(ids)]})
    assert len(load_annotations("msrvtt", tmp_path, None, "train")) == 9000
    assert len(load_annotations("msrvtt", tmp_path, None, "train", train_list="7k", expand_sentences=True)) == 7010


def test_real_msvd(shared_annotations):
    for split, videos, captions in (("train", 1200, 48774), ("val", 100, 4290), ("test", 670, 27763)):
        data = load_annotations("msvd", shared_annotations / "msvd", None, split)
        assert (len(set(data["video_id"])), len(data)) == (videos, captions)
    assert data[0]["video_id"] == "eyhzdC936uk_15_27"


def test_real_activitynet(shared_annotations, tmp_path):
    ann = shared_annotations / "activitynet"
    test = load_annotations("activitynet", ann, None, "test")
    # val_1.json has 4,917 videos; v_0dkIbKXXFzI is not in this val_ids.json, so the original loader reads 4,916
    assert len(test) == len(set(test["video_id"])) == 4916
    assert test[0]["video_id"] == "v_JDg--pjY5gg" and test[0]["end"] == 127.0
    assert len(load_annotations("activitynet", ann, None, "train")) == 10009
    # CenterCLIP's val_ids.json adds that id
    os.symlink(ann / "centerclip_variant" / "val_ids.json", tmp_path / "val_ids.json")
    os.symlink(ann / "val_1.json", tmp_path / "val_1.json")
    assert len(load_annotations("activitynet", tmp_path, None, "test")) == 4917


def test_real_didemo(shared_annotations):
    test = load_annotations("didemo", shared_annotations / "didemo", None, "test")
    assert len(test) == len(set(test["video_id"])) == 1004
    assert test[0]["video_id"] == "26292851@N04_4253489686_265c3c8051.m4v"
    assert test[0]["caption"].startswith("someone kicks the bug towards some rocks. ")
    assert len(load_annotations("didemo", shared_annotations / "didemo", None, "val")) == 1065


def test_real_vatex_id_lists(shared_annotations, tmp_path):
    # no VATEX captions are available: official-format caption files with 10 captions for every listed id
    ann = shared_annotations / "vatex"
    sizes = {"train_list.txt": 25991, "val_list.txt": 1500, "test_list.txt": 1500, "test1k5_sec_list.txt": 1500}
    ids = {name: (ann / name).read_text().split() for name in sizes}
    for name in sizes:
        os.symlink(ann / name, tmp_path / name)
    val_ids = sorted(set(ids["val_list.txt"]) | set(ids["test_list.txt"]) | set(ids["test1k5_sec_list.txt"]))
    write_json(tmp_path / "vatex_validation_v1.0.json",
               [{"videoID": v, "enCap": [f"{v} {i}" for i in range(10)], "chCap": []} for v in val_ids])
    write_json(tmp_path / "vatex_training_v1.0.json",
               [{"videoID": v, "enCap": [v], "chCap": []} for v in ids["train_list.txt"]])
    assert len(load_annotations("vatex", tmp_path, None, "train")) == 25991
    for split in ("val", "test"):
        data = load_annotations("vatex", tmp_path, None, split)
        assert (len(data), len(set(data["video_id"]))) == (15000, 1500)
    second = load_annotations("vatex", tmp_path, None, "test", id_list="test1k5_sec_list.txt")
    assert len(set(second["video_id"])) == 1500
