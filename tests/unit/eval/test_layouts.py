"""Published layouts: Parquet with Image structs, base64 images, pandas' notion of an empty cell."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlmtune.eval.layouts import IMAGE_STRUCT, image_bytes, is_missing, parquet_bytes, read_parquet_rows


def test_parquet_carries_the_datasets_feature_metadata(tmp_path):
    schema = pa.schema([("question", pa.string()), ("image", IMAGE_STRUCT)])
    path = tmp_path / "x.parquet"
    path.write_bytes(parquet_bytes([{"question": "q", "image": {"bytes": b"png", "path": "a.png"}}], schema))
    features = json.loads(pq.read_schema(path).metadata[b"huggingface"])["info"]["features"]
    assert features == {"question": {"dtype": "string", "_type": "Value"}, "image": {"_type": "Image"}}
    assert read_parquet_rows(str(path)) == [{"question": "q", "image": {"bytes": b"png", "path": "a.png"}}]


def test_a_folder_means_its_own_files_never_its_subfolders(tmp_path):
    # lmms-lab/POPE holds `data/` and `Full/` side by side: reading both would score every question twice.
    schema = pa.schema([("question", pa.string())])
    for folder, names in (("data", ["a", "b"]), ("Full", ["a", "b", "c"])):
        (tmp_path / "POPE" / folder).mkdir(parents=True)
        (tmp_path / "POPE" / folder / "test-00000-of-00001.parquet").write_bytes(
            parquet_bytes([{"question": n} for n in names], schema)
        )
    assert [row["question"] for row in read_parquet_rows(str(tmp_path / "POPE" / "data"))] == ["a", "b"]
    with pytest.raises(FileNotFoundError) as caught:
        read_parquet_rows(str(tmp_path / "POPE"))
    assert "give the split folder itself" in str(caught.value)
    assert f"{tmp_path}/POPE/Full, {tmp_path}/POPE/data" in str(caught.value)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_parquet_rows(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .parquet file"):
        read_parquet_rows(str(tmp_path / "empty"))


def test_image_values_in_every_published_form():
    assert image_bytes({"bytes": b"a", "path": None}) == b"a"
    assert image_bytes(b"b") == b"b"
    assert image_bytes("aGk=") == b"hi"
    assert image_bytes("nan") is None and image_bytes(None) is None


@pytest.mark.parametrize(
    ("value", "missing"),
    [
        (None, True),
        (float("nan"), True),
        ("", True),
        ("nan", True),
        ("None", True),
        ("NA", True),
        ("none", False),
        ("0", False),
        ("None of the above", False),
        (" ", False),
    ],
)
def test_empty_cells_are_what_pandas_reads_as_nan(value, missing):
    assert is_missing(value) is missing
