import pandas as pd
import pytest
import yaml

from conftest import REPO
from synthecg.data.labels import ClassMap, chapman_codes, ptbxl_catalogue
from synthecg.errors import PipelineError


@pytest.fixture
def class_map():
    return ClassMap.from_config(yaml.safe_load((REPO / "config.yaml").read_text())["classes"])


def test_codes_map_to_one_class_or_give_the_reason(class_map):
    assert class_map.label("ptbxl", ["NORM", "SR"]) == ("SR", None)
    assert class_map.label("ptbxl", ["AFLT", "AFIB"]) == ("AFIB", None)  # two codes, one class
    assert class_map.label("ptbxl", ["SR", "AFIB"]) == (None, "multiple_classes")
    assert class_map.label("ptbxl", ["PACE", "NORM"]) == (None, "no_class")
    assert class_map.label("chapman", ["164889003", "59118001"]) == ("AFIB", None)
    assert class_map.label("chapman", ["427393009"]) == ("SR", None)  # sinus irregularity
    assert class_map.classes == ("SR", "SB", "AFIB", "GSVT")


def test_integer_codes_in_config_are_read_as_strings():
    class_map = ClassMap.from_config({"A": {"chapman": [426783006]}, "B": {"chapman": ["426177001"]}})
    assert class_map.label("chapman", ["426783006"]) == ("A", None)


def test_a_code_in_two_classes_is_a_config_error():
    with pytest.raises(PipelineError, match="classes: code 'SR' of dataset 'ptbxl'"):
        ClassMap.from_config({"A": {"ptbxl": ["SR"]}, "B": {"ptbxl": ["SR"]}})


def test_chapman_dx_line_drops_empty_items():
    comments = ["Age: 83", "Sex: Male", "Dx: 284470004,89792004,427084000,,427172004"]
    assert chapman_codes(comments) == ["284470004", "89792004", "427084000", "427172004"]
    assert chapman_codes(["Age: 1"]) == []


def test_ptbxl_catalogue_of_the_real_table(mirror, class_map):
    database = mirror / "ptb-xl" / "1.0.3" / "ptbxl_database.csv"
    catalogue = ptbxl_catalogue(database, class_map, 100)
    raw = pd.read_csv(database)
    assert len(catalogue) == len(raw)
    first = catalogue.iloc[0]  # ecg_id 1: {'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}
    assert (first.record_id, first.patient_id, first.label) == ("1", "15709", "SR")
    assert first.record_path == "records100/00000/00001_lr"
    assert first.fold == 3
    # SR with likelihood 0.0 still counts, and every record is either labelled or excused.
    assert ((catalogue.label != "") ^ (catalogue.reason != "")).all()
    assert set(catalogue.reason) <= {"", "no_class", "multiple_classes"}
    assert catalogue.label.value_counts()["SR"] > 200


def test_unparseable_ptbxl_row_names_file_and_line(tmp_path, class_map):
    bad = tmp_path / "ptbxl_database.csv"
    bad.write_text("ecg_id,patient_id,scp_codes,strat_fold,filename_lr\n1,2.0,{'SR': 0.0,3,records100/x\n")
    with pytest.raises(PipelineError, match=r"ptbxl_database.csv, line 2 \(ecg_id 1\)"):
        ptbxl_catalogue(bad, class_map, 100)
