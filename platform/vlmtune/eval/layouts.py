"""The published file layouts, read from and written to local folders or s3:// (the thin I/O edge).

- Parquet as the Hugging Face `datasets` library writes it (lmms-lab/MME, lmms-lab/POPE): one file or a
  folder of shards; an `Image` column is a struct `{bytes, path}`.
- MMBench TSV: tab-separated, a header row, images as base64 strings.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sys

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vlmtune import storage

IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
"""How `datasets` stores an `Image` feature in Parquet."""
# pandas' default NA strings (case-sensitive): VLMEvalKit reads MMBench with `pd.read_csv`, so an option cell
# holding one of these counts as absent there, and must here too.
PANDAS_NA = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


def read_parquet_rows(uri: str, split: str = "test") -> list[dict]:
    """Rows of a Parquet file, or of the `*.parquet` files directly in a split folder (shards in name order),
    or of a Hugging Face dataset (`hf://ORG/NAME` through the Hub cache, or a `save_to_disk` folder).

    Only the folder given is read, never its subfolders: a dataset repository holds several layouts of one
    benchmark side by side (lmms-lab/POPE: `data/` and `Full/`), and reading them all would score every question
    twice. An `hf://` repository is read through `datasets` with its default configuration and `split`, streamed
    row by row with images left encoded, as Parquet gives them.

    Raises:
        FileNotFoundError: no such file or folder, or a folder without .parquet files (naming its subfolders
            that have some).
        AnnotationError: a Hugging Face dataset without that split, or missing from the cache while offline.
    """
    if uri.startswith("hf://") or _saved_dataset(uri):
        from vlmtune.data.annotations import iter_hf_records

        return list(iter_hf_records(uri, split))
    fs, path = storage.resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{uri}: no such file or folder")
    files = [path] if info.type != pafs.FileType.Directory else _split_files(fs, uri, path)
    rows = []
    for file in files:
        with fs.open_input_file(file) as handle:
            rows.extend(pq.read_table(handle).to_pylist())
    return rows


def _saved_dataset(uri: str) -> bool:
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (local)."""
    local = storage.local_path(uri)
    return local is not None and ((local / "state.json").is_file() or (local / "dataset_dict.json").is_file())


def _split_files(fs: pafs.FileSystem, uri: str, path: str) -> list[str]:
    entries = fs.get_file_info(pafs.FileSelector(path))
    files = sorted(
        entry.path for entry in entries if entry.type == pafs.FileType.File and entry.path.endswith(".parquet")
    )
    if files:
        return files
    below = sorted(
        {
            entry.path[len(path) :].strip("/").split("/")[0]
            for entry in fs.get_file_info(pafs.FileSelector(path, recursive=True))
            if entry.type == pafs.FileType.File and entry.path.endswith(".parquet")
        }
    )
    if below:
        raise FileNotFoundError(
            f"{uri}: no .parquet file directly in this folder; give the split folder itself, "
            f"one of: {', '.join(f'{uri.rstrip(chr(47))}/{name}' for name in below[:5])}"
        )
    raise FileNotFoundError(f"{uri}: the folder holds no .parquet file")


def parquet_bytes(rows: list[dict], schema: pa.Schema) -> bytes:
    """A Parquet file holding `rows`, with the `datasets` feature metadata so `load_dataset` decodes images."""
    features = {
        field.name: (
            {"_type": "Image"} if field.type == IMAGE_STRUCT else {"dtype": _hf_dtype(field.type), "_type": "Value"}
        )
        for field in schema
    }
    schema = schema.with_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _hf_dtype(arrow_type: pa.DataType) -> str:
    return {pa.string(): "string", pa.int64(): "int64", pa.binary(): "binary"}.get(arrow_type, str(arrow_type))


def image_bytes(value) -> bytes | None:
    """Encoded image bytes from an `Image` struct, raw bytes, or a base64 string (MMBench)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("bytes")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and not is_missing(value):
        return base64.b64decode(value)
    return None


def image_struct(data: bytes, path: str) -> dict:
    return {"bytes": data, "path": path}


def read_tsv_rows(uri: str) -> list[dict]:
    """Rows of a TSV with a header line, as strings (pandas' `read_csv(sep='\\t')` quoting rules)."""
    text = storage.read_bytes(uri).decode("utf-8-sig")
    # Base64 images are far longer than csv's default 128 KiB field limit.
    csv.field_size_limit(sys.maxsize)
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t"))


def tsv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def is_missing(value) -> bool:
    """An empty cell: None, NaN, or a string pandas reads as NaN."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    return str(value) in PANDAS_NA


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
