"""The results table: models as rows, datasets as columns, FID with its n in every cell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    lines = [
        "| model | " + " | ".join(datasets) + " |",
        "|---|" + "---|" * len(datasets),
    ]
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
        lines.append(f"| {MODEL_NAMES.get(model, model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
