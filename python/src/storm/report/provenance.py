"""Where a report's numbers come from: storm's version and commit, Nextflow's, the parameters,
the datasets (spec, size, split strategy) and the software every step ran."""

from __future__ import annotations

import datetime
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import __version__, io
from ..errors import InputError


@dataclass
class Provenance:
    run: dict = field(default_factory=dict)  # the pipeline's run information
    qc: dict[str, dict] = field(default_factory=dict)  # dataset id -> its qc.json
    versions: dict = field(default_factory=dict)  # process -> {package: version}

    @classmethod
    def read(cls, run_info: str | os.PathLike | None, qc_files: list[str | os.PathLike],
             versions_file: str | os.PathLike | None) -> "Provenance":
        run = io.read_json(run_info) if run_info else {}
        qc = {}
        for path in qc_files:
            data = io.read_json(path)
            qc[data.get("dataset") or Path(path).stem] = data
        versions = {}
        if versions_file:
            try:
                versions = yaml.safe_load(Path(versions_file).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise InputError(f"cannot read {versions_file}: {exc}") from exc
        return cls(run, qc, versions)

    def html(self) -> str:
        """The report's opening section."""
        when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        facts = [("storm", f"{self.run.get('storm', __version__)} (commit {self.run.get('commit') or 'unknown'})"),
                 ("Nextflow", self.run.get("nextflow", "(not run by the pipeline)")),
                 ("report written", when)]
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
        parts = [f"<h2>Provenance</h2><table class='facts'>{rows}</table>"]
        datasets = self.run.get("datasets", [])
        if datasets:
            lines = []
            for d in datasets:
                meta = d.get("meta", {})
                qc = self.qc.get(meta.get("id"), {})
                spec = ", ".join(f"{k}={v}" for k, v in meta.get("spec", {}).items() if v is not None)
                size = (f"{qc['n_cells']:,} cells × {qc['n_genes']:,} genes, {qc.get('n_perturbations', '?')} "
                        f"perturbations, {qc.get('n_cell_types', '?')} cell types; X: {qc.get('scale', '?')}"
                        if "n_cells" in qc else "")
                subset = f"; cell types {', '.join(d['cell_types'])}" if d.get("cell_types") else ""
                cells = [meta.get("id", ""), d.get("path") or "storm synth", spec, size,
                         f"{d.get('split_strategy', '')}{subset}"]
                lines.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
            parts.append("<h3>Datasets</h3><table><tr><th>id</th><th>path</th><th>spec</th><th>size "
                         "(as validated)</th><th>split</th></tr>" + "".join(lines) + "</table>")
        params = self.run.get("params", {})
        if params:
            shown = {k: v for k, v in params.items() if v not in (None, "")}
            parts.append("<details><summary>Parameters</summary><pre>"
                         + html.escape(json.dumps(shown, indent=2, sort_keys=True)) + "</pre></details>")
        if self.versions:
            parts.append("<details><summary>Software versions, per step</summary><pre>"
                         + html.escape(yaml.safe_dump(self.versions, sort_keys=True)) + "</pre></details>")
        return "".join(parts)
