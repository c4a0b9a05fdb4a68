"""The results table: models as rows, datasets as columns, FID with its n in every cell."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

MODEL_NAMES = {
    "fpa_untrained": "FPA (untrained)",
    "fpa": "FPA v2",
    "fpa_unet": "FPA v2 + U-Net",
}


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def fid_table(records: list[dict[str, Any]]) -> str:
    """Markdown table; a cell reads `FID (n_fake vs n_real)`."""
    datasets = sorted({f"{r['dataset']} {r['image_size']}px" for r in records})
    models = [m for m in MODEL_NAMES if any(r["model"] == m for r in records)]
    models += sorted({r["model"] for r in records} - set(models))
    rows = []
    for model in models:
        cells = []
        for dataset in datasets:
            found = [
                r
                for r in records
                if r["model"] == model and f"{r['dataset']} {r['image_size']}px" == dataset
            ]
            cells.append(
                f"{found[0]['fid']:.2f} ({found[0]['n_fake']} vs {found[0]['n_real']})"
                if found
                else ""
            )
        rows.append((MODEL_NAMES.get(model, model), cells))
    return "\n".join(_markdown(rows, datasets))


def render_report(records: list[dict[str, Any]]) -> str:
    protocol = records[0]["protocol"] if records else {}
    settings = ", ".join(f"{k}: {v}" for k, v in protocol.items() if k not in ("n_real", "n_fake"))
    return "\n".join(
        [
            "# Results",
            "",
            "FID (lower is better) of each generator's EMA weights; in brackets the number of",
            "generated images vs real images in the reference statistics.",
            "",
            fid_table(records),
            "",
            f"FID protocol: {settings}.",
            "",
        ]
    )


# The paper's tables: datasets as columns, the paper's models as rows

ROW_LABELS = {"lightgan": "LightGAN", "fpa-v1": "FPA v1", "fpa-v2": "FPA v2"}
MISSING = "—"


class EnteredFIDsError(ValueError):
    """A file of hand-entered FIDs that cannot be read; the message says what to fix."""


ENTERED_KEYS = {"fid", "n", "protocol", "source"}


def load_entered(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Hand-entered FIDs: {row: {dataset: {fid, n, protocol, source}}}, checked key by key."""
    if not path.is_file():
        return {}
    try:
        entered = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise EnteredFIDsError(f"{path} is not valid YAML; fix its syntax") from None
    if not isinstance(entered, dict):
        raise EnteredFIDsError(f"{path} must map row names to datasets, like its comments show")
    for row, values in entered.items():
        for dataset, value in (values or {}).items():
            where = f"{path}: {row}.{dataset}"
            if not isinstance(value, dict) or not set(value) <= ENTERED_KEYS:
                raise EnteredFIDsError(
                    f"{where} must be a mapping of {', '.join(sorted(ENTERED_KEYS))}"
                )
            fid = value.get("fid")
            if fid is not None and (
                isinstance(fid, bool)
                or not isinstance(fid, int | float)
                or not math.isfinite(fid)
                or fid < 0
            ):
                raise EnteredFIDsError(f"{where}.fid must be a non-negative number (got {fid!r})")
    return {row: values or {} for row, values in entered.items()}


def read_table_metrics(folder: Path) -> list[dict[str, Any]]:
    """metrics/table/<dataset>/<model>.json, each record told its table dataset (the folder)."""
    return [
        {**json.loads(path.read_text()), "table_dataset": path.parent.name}
        for path in sorted(folder.glob("*/*.json"))
    ]


def cell(record: dict[str, Any]) -> str:
    """`FID (n generated/real, protocol)`: a value never travels without its n and protocol."""
    n = f"n {record['n_fake']}/{record['n_real']}"
    return f"{record['fid']:.2f} ({n}, {record['protocol']['name']})"


def _markdown(rows: list[tuple[str, list[str]]], datasets: list[str]) -> list[str]:
    lines = ["| model | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return lines


def _row(records: list[dict[str, Any]], datasets: list[str]) -> list[str]:
    by_dataset = {r["table_dataset"]: r for r in records}
    return [cell(by_dataset[d]) if d in by_dataset else MISSING for d in datasets]


def _entered_cell(value: dict[str, Any] | None) -> str:
    if not value or value.get("fid") is None:
        return MISSING
    details = ", ".join(str(value[k]) for k in ("n", "protocol") if value.get(k))
    return f"{float(value['fid']):.2f}" + (f" ({details})" if details else "")


def paper_tables(
    records: list[dict[str, Any]],
    *,
    datasets: list[str],
    models: list[str],
    steps_set_by: set[str],
    entered: dict[str, dict[str, dict[str, Any]]],
) -> str:
    """Markdown of the paper's two tables from our runs.

    Table 1: one row per model of `models` (those in `steps_set_by` change T and only appear in
    table 2), each followed by its U-Net row when one was trained, under the rows of FIDs a user
    entered by hand (`entered`: row -> dataset -> {fid, n, protocol, source}). Table 2: every
    FPA v2 with the delta rule, by number of painting steps T."""
    measured = [r for r in records if r["table_dataset"] in datasets]
    rows = [(f"{name} (entered)", [_entered_cell(values.get(d)) for d in datasets])
            for name, values in entered.items()]  # fmt: skip
    for model in models:
        if model in steps_set_by:
            continue
        for unet in (False, True):
            found = [r for r in measured if r["variant"] == model and r["unet"] == unet]
            if found or not unet:
                label = ROW_LABELS.get(model, model) + (" + U-Net" if unet else "")
                rows.append((label, _row(found, datasets)))
    painters = [r for r in measured if r["kind"] == "fpa" and r["input_generator"] == "v2"]
    painters = [r for r in painters if r.get("rule", "delta") == "delta"]
    steps_rows = [
        (f"FPA v2{' + U-Net' if unet else ''}, T = {steps}",
         _row([r for r in painters if (r["unet"], r["steps"]) == (unet, steps)], datasets))
        for unet, steps in sorted({(r["unet"], r["steps"]) for r in painters})
    ]  # fmt: skip
    sources = sorted(
        {f"{name}: {value['source']}" for name, values in entered.items()
         for value in values.values() if value and value.get("source")}
    )  # fmt: skip
    lines = [
        "# The paper's tables, from our runs",
        "",
        "FID (lower is better) of each generator's EMA weights; in brackets the number of",
        "generated vs real images and the FID protocol. Rows marked (entered) hold values typed",
        f"into the reference file by hand, never measured here; {MISSING}: no value yet.",
        "",
        "## FID by dataset",
        "",
        *_markdown(rows, datasets),
        "",
        "## Painting steps T (FPA v2)",
        "",
        *(_markdown(steps_rows, datasets) if steps_rows else ["No FPA v2 runs in the table."]),
        "",
    ]
    if sources:
        lines += ["Sources of entered values: " + "; ".join(sources) + ".", ""]
    return "\n".join(lines)
