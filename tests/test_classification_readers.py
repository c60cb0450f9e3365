"""The classification readers on small files written here in each benchmark's published layout: exact rows, class
ids in the benchmark's own order, missing videos listed (never silent), bad files named."""

import json

import pytest

from tvr.data.classification import (
    CLASSIFICATION_READERS,
    class_names,
    default_split,
    kinetics_clip_id,
    load_classification,
    ssv2_class,
)


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


def rows(dataset):
    return [(row["video_id"], row["label"], row["label_id"], row["split"]) for row in dataset]


# ------------------------------------------------------------------------------------------------- Kinetics
KINETICS_VAL = """label,youtube_id,time_start,time_end,split
zumba,--6bJUbfpnQ,17,27,val
abseiling,0wR5jVB-WPk,417,427,val
"baking cookies",-0Rk7wk0cWc,0,10,val
"""
KINETICS_TRAIN = """label,youtube_id,time_start,time_end,split
air drumming,-VtLx-mcPds,14,24,train
"""


def test_kinetics_csv_clip_names_class_order_and_missing(tmp_path):
    annotations = tmp_path / "k400" / "annotations"
    annotations.mkdir(parents=True)
    (annotations / "validate.csv").write_text(KINETICS_VAL)
    (annotations / "train.csv").write_text(KINETICS_TRAIN)
    videos = tmp_path / "k400" / "videos"
    zumba = touch(videos / "zumba" / "--6bJUbfpnQ_000017_000027.mp4")  # the downloader's per-class folders
    abseiling = touch(videos / "0wR5jVB-WPk.mp4")  # named after the youtube id alone
    with pytest.warns(UserWarning, match=r"1 of 3 videos not found \(-0Rk7wk0cWc_000000_000010\)"):
        dataset = load_classification("kinetics400", annotations, videos)
    # the val split by default; classes: every label of the folder's CSVs, sorted (train's 'air drumming' too)
    assert class_names(dataset) == ["abseiling", "air drumming", "baking cookies", "zumba"]
    assert rows(dataset) == [("--6bJUbfpnQ_000017_000027", "zumba", 3, "val"),
                             ("0wR5jVB-WPk_000417_000427", "abseiling", 0, "val"),
                             ("-0Rk7wk0cWc_000000_000010", "baking cookies", 2, "val")]
    assert dataset["video_path"] == [zumba, abseiling, ""]
    assert kinetics_clip_id("abc", "14.0", "24") == "abc_000014_000024"
    # a class list given: its order is the ids', and a label outside it is an error naming the line
    classes_file = tmp_path / "label_map.txt"
    classes_file.write_text("zumba\nbaking cookies\nabseiling\nair drumming\n")
    dataset = load_classification("kinetics700", annotations / "validate.csv", None, "val",
                                  classes_file=classes_file)
    assert dataset["label_id"] == [0, 2, 1] and dataset["video_path"] == ["", "", ""]
    classes_file.write_text("zumba\nabseiling\n")
    with pytest.raises(ValueError, match=r"validate.csv line 4: label 'baking cookies' is not one of the 2 classes"):
        load_classification("kinetics400", annotations, None, "val", classes_file=classes_file)
    with pytest.raises(FileNotFoundError, match="no test CSV"):
        load_classification("kinetics400", annotations, None, "test")
    (annotations / "test.csv").write_text("youtube_id,time_start,time_end,split\nabc,0,10,test\n")
    with pytest.raises(ValueError, match="no 'label' column"):
        load_classification("kinetics400", annotations, None, "test")


# --------------------------------------------------------------------------------------------------- UCF-101
def test_ucf101_class_index_and_split_lists(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 ApplyLipstick\n3 HandstandPushups\n")
    (lists / "testlist01.txt").write_text(
        "ApplyLipstick/v_ApplyLipstick_g01_c01.avi\r\n"
        "HandstandPushups/v_HandStandPushups_g01_c01.avi\r\n"
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi\r\n")
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n")
    videos = tmp_path / "UCF-101"
    lipstick = touch(videos / "ApplyLipstick" / "v_ApplyLipstick_g01_c01.avi")
    pushups = touch(videos / "flat" / "v_HandStandPushups_g01_c01.avi")  # found by name anywhere
    with pytest.warns(UserWarning, match=r"1 of 3 videos not found \(ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi\)"):
        test = load_classification("ucf101", lists, videos)
    assert class_names(test) == ["ApplyEyeMakeup", "ApplyLipstick", "HandstandPushups"]  # classInd order
    assert rows(test) == [("ApplyLipstick/v_ApplyLipstick_g01_c01.avi", "ApplyLipstick", 1, "test"),
                          ("HandstandPushups/v_HandStandPushups_g01_c01.avi", "HandstandPushups", 2, "test"),
                          ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi", "ApplyEyeMakeup", 0, "test")]
    assert test["video_path"] == [lipstick, pushups, ""]
    with pytest.raises(FileNotFoundError, match="1 of 3 videos not found"):
        load_classification("ucf101", lists, videos, missing="error")
    assert rows(load_classification("ucf101", lists, None, "train")) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup", 0, "train")]
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\n")
    with pytest.raises(ValueError, match=r"trainlist01.txt line 1: class id 2 but the folder 'ApplyEyeMakeup' is "
                                         r"class 1"):
        load_classification("ucf101", lists, None, "train")
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n3 ApplyLipstick\n")
    with pytest.raises(ValueError, match=r"classInd.txt line 2: class id 3, expected 2"):
        load_classification("ucf101", lists)
    with pytest.raises(ValueError, match="fold=4"):
        load_classification("ucf101", lists, fold=4)


# --------------------------------------------------------------------------------------------------- HMDB-51
def test_hmdb51_per_class_split_files(tmp_path):
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "ride_bike_test_split1.txt").write_text("Bike_ride_1.avi 2 \nBike_ride_2.avi 1 \nBike_ride_3.avi 0 \n")
    (splits / "brush_hair_test_split1.txt").write_text("Brushing_hair_a.avi 1 \nBrushing_hair_b.avi 2 \n")
    (splits / "brush_hair_test_split2.txt").write_text("Brushing_hair_a.avi 2 \nBrushing_hair_b.avi 1 \n")
    videos = tmp_path / "hmdb51"
    bike = touch(videos / "ride_bike" / "Bike_ride_1.avi")
    with pytest.warns(UserWarning, match=r"1 of 2 videos not found \(Brushing_hair_b.avi\)"):
        test = load_classification("hmdb51", splits, videos)
    assert class_names(test) == ["brush_hair", "ride_bike"]  # sorted class names
    # class by class (sorted), in file order; code 2 = test
    assert rows(test) == [("Brushing_hair_b.avi", "brush_hair", 0, "test"), ("Bike_ride_1.avi", "ride_bike", 1, "test")]
    assert test["video_path"] == ["", bike]
    assert rows(load_classification("hmdb51", splits, None, "train")) == [
        ("Brushing_hair_a.avi", "brush_hair", 0, "train"), ("Bike_ride_2.avi", "ride_bike", 1, "train")]
    assert load_classification("hmdb51", splits, None, "test", fold=2)["video_id"] == ["Brushing_hair_a.avi"]
    (splits / "ride_bike_test_split1.txt").write_text("Bike_ride_1.avi 3\n")
    with pytest.raises(ValueError, match=r"ride_bike_test_split1.txt line 1: expected '<video>.avi <0\|1\|2>'"):
        load_classification("hmdb51", splits)
    with pytest.raises(FileNotFoundError, match="no '<class>_test_split3.txt' files"):
        load_classification("hmdb51", splits, fold=3)


# ---------------------------------------------------------------------------------------------------- SSv2
def test_ssv2_labels_json_and_templates(tmp_path):
    annotations = tmp_path / "ssv2"
    annotations.mkdir()
    (annotations / "labels.json").write_text(json.dumps({
        "Holding something": "0", "Putting something on a surface": "2", "Spinning something that quickly stops "
        "spinning": "1"}))
    (annotations / "validation.json").write_text(json.dumps([
        {"id": "74225", "label": "spinning cube that quickly stops spinning",
         "template": "Spinning [something] that quickly stops spinning", "placeholders": ["cube"]},
        {"id": "116154", "label": "putting a pen on a table", "template": "Putting [something] on a surface",
         "placeholders": ["a pen"]},
    ]))
    (annotations / "test.json").write_text(json.dumps([{"id": "1420"}]))
    videos = tmp_path / "20bn-something-something-v2"
    spinning = touch(videos / "74225.webm")
    with pytest.warns(UserWarning, match=r"1 of 2 videos not found \(116154\); looked for 116154.webm"):
        val = load_classification("ssv2", annotations, videos)
    assert class_names(val) == ["Holding something", "Spinning something that quickly stops spinning",
                                "Putting something on a surface"]  # labels.json ids
    assert rows(val) == [("74225", "Spinning something that quickly stops spinning", 1, "val"),
                         ("116154", "Putting something on a surface", 2, "val")]
    assert val["video_path"] == [spinning, ""]
    assert ssv2_class("Putting [something] on [something]") == "Putting something on something"
    with pytest.raises(ValueError, match=r"test.json item 0: no 'template'.*evaluate the val split"):
        load_classification("ssv2", annotations, None, "test")
    (annotations / "labels.json").write_text(json.dumps({"Holding something": "0", "Other": "2"}))
    with pytest.raises(ValueError, match=r"class ids must be 0..1, each once"):
        load_classification("ssv2", annotations)


# ------------------------------------------------------------------------------------------------ folder, csv
def test_folder_per_class(tmp_path):
    root = tmp_path / "clips"
    cat = touch(root / "test" / "cat" / "a.mp4")
    dog = touch(root / "test" / "dog" / "sub" / "b.webm")
    touch(root / "test" / "dog" / "notes.txt")  # not a video: ignored
    touch(root / "train" / "bird" / "c.mp4")
    test = load_classification("folder", root)
    assert class_names(test) == ["cat", "dog"]
    assert rows(test) == [("cat/a.mp4", "cat", 0, "test"), ("dog/sub/b.webm", "dog", 1, "test")]
    assert test["video_path"] == [cat, dog]
    assert rows(load_classification("folder", root, split="train")) == [("bird/c.mp4", "bird", 0, "train")]


def test_csv_with_split_column_and_class_file(tmp_path):
    folder = tmp_path / "mine"
    cat = touch(folder / "clips" / "cat.mp4")
    (folder / "labels.csv").write_text("video_path,label,split\nclips/cat.mp4,cat,test\nclips/dog.mp4,dog,test\n"
                                       "clips/owl.mp4,owl,train\n")
    with pytest.warns(UserWarning, match=r"1 of 2 videos not found \(clips/dog.mp4\); looked for .*clips/dog.mp4"):
        test = load_classification("csv", folder / "labels.csv")
    assert class_names(test) == ["cat", "dog", "owl"]  # every row's label, sorted
    assert rows(test) == [("clips/cat.mp4", "cat", 0, "test"), ("clips/dog.mp4", "dog", 1, "test")]
    assert test["video_path"] == [cat, ""]
    with pytest.raises(ValueError, match="no videos for this split"):
        load_classification("csv", folder / "labels.csv", split="val")
    (folder / "classes.txt").write_text("owl\ndog\ncat\n")  # beside the CSV: its order is the ids'
    with pytest.warns(UserWarning, match="dropping their rows"):
        assert load_classification("csv", folder / "labels.csv", missing="drop")["label_id"] == [2]
    (folder / "labels.csv").write_text("video_path,label\nclips/cat.mp4,lion\n")
    with pytest.raises(ValueError, match=r"labels.csv line 2: label 'lion' is not one of the 3 classes"):
        load_classification("csv", folder / "labels.csv")


def test_registry_and_default_splits():
    assert sorted(CLASSIFICATION_READERS) == ["csv", "folder", "hmdb51", "kinetics400", "kinetics600", "kinetics700",
                                              "ssv2", "ucf101"]
    assert [default_split(name) for name in ("kinetics600", "ssv2", "ucf101", "hmdb51")] == ["val", "val", "test",
                                                                                          "test"]
    with pytest.raises(ValueError, match=r"unknown classification dataset 'ucf-10' \(did you mean 'ucf101'\?\)"):
        load_classification("ucf-10", ".")
