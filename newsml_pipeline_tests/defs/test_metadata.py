"""UI metadata helpers: typed tables from frames/dicts, inline PNGs, code versions on assets."""

from __future__ import annotations

import base64
from pathlib import Path

import polars as pl

from newsml_pipeline.definitions import build_definitions
from newsml_pipeline.defs.metadata import metadata_table, png_markdown


def test_metadata_table_infers_types_from_a_frame_and_from_dicts() -> None:
    t = metadata_table(
        pl.DataFrame({"n": [1, 2], "f1": [0.5, None], "name": ["a", "b"], "ok": [True, False]})
    )
    assert [(c.name, c.type) for c in t.schema.columns] == [
        ("n", "int"),
        ("f1", "float"),
        ("name", "string"),
        ("ok", "bool"),
    ]
    assert t.records[1].data == {"n": 2, "f1": None, "name": "b", "ok": False}
    t = metadata_table([{"x": 1, "extra": {"k": [1]}}, {"x": 2.5, "long": "y" * 500}], width=20)
    types = {c.name: c.type for c in t.schema.columns}
    assert types == {"x": "float", "extra": "string", "long": "string"}  # int + float -> float
    assert t.records[0].data["extra"] == '{"k": [1]}'
    assert len(t.records[1].data["long"]) == 20 and t.records[1].data["long"].endswith("…")
    assert metadata_table([], ["a"]).records == []


def test_png_markdown_embeds_the_image_bytes(tmp_path: Path) -> None:
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    md = png_markdown(png, alt="chart").value
    assert md.startswith("![chart](data:image/png;base64,")
    assert base64.b64decode(md.split(",", 1)[1].rstrip(")")) == png.read_bytes()


def test_assets_outside_ingestion_carry_a_code_version(make_settings) -> None:  # noqa: ANN001
    defs = build_definitions(make_settings())
    graph = defs.resolve_asset_graph()
    versions = {
        key.to_user_string(): graph.get(key).code_version
        for key in graph.get_all_asset_keys()
        if not graph.get(key).is_external
    }
    for name in (
        "labeled_articles",
        "label_feedback",
        "dataset_splits",
        "candidate_model",
        "model_evaluation",
        "scored_articles",
    ):
        assert versions.get(name), f"{name} has no code_version"
