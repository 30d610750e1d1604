"""CHGNet and GPAW formation energies of the dft-binaries space, computed once for the multi-fidelity benchmark.

    python benchmarks/make_binaries_table.py [--minutes 20] [--out benchmarks/data/binaries_chgnet_gpaw.csv]

Every binary of ``agent/templates/funnel-binaries.yaml``'s space (rocksalt, zincblende and cesium chloride
decorated with Li/Na/K/Cu/Ag and F/Cl, volumes from the crystal generator's data-mined scaling) is measured
through the campaign's own two adapters with the template's settings: the ``mlip`` instrument (CHGNet,
batched relaxation) and the ``dft`` local queue (GPAW). CHGNet goes first for all of them (seconds each);
GPAW jobs are queued in order until ``--minutes`` have passed, and the rows finished by then are written.
The settings go to a sidecar ``<out>.settings.json``. Rows are written as they finish, so an interrupted run
leaves a valid table of what it computed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.spec import load_campaign  # noqa: E402
from generators.crystal.prototypes import named_prototype  # noqa: E402
from generators.crystal.volume import TemplateVolumes  # noqa: E402
from lab_adapters.dft import make_dft_adapter  # noqa: E402
from lab_adapters.dft.config import dft_settings  # noqa: E402
from lab_adapters.mlip import make_mlip_adapter  # noqa: E402
from matloop.types import Candidate, CandidateKind, JobRequest, JobStatus, make_idempotency_key  # noqa: E402

TEMPLATE = ROOT / "agent" / "templates" / "funnel-binaries.yaml"
NOTE = (
    "CHGNet relaxes positions and cell (fmax 0.1 eV/Å) before its energy; GPAW computes the template's task "
    "(static: the generated geometry, unrelaxed), so the GPAW numbers include each structure's relaxation energy "
    "and are highest where the generated volume is furthest off (e.g. CuCl, AgCl in cesium chloride); each side's "
    "elemental references use its own settings"
)
COLUMNS = ["formula", "prototype", "natoms", "chgnet_formation_energy", "gpaw_formation_energy", "gpaw_status"]


def binaries(campaign) -> list[tuple[str, object]]:
    """(prototype, structure) for every decoration of the campaign's space, DLS-scaled like the generator's."""
    space = campaign.space
    out = []
    for proto in space.prototypes:
        template = named_prototype(proto)
        volumes = TemplateVolumes(template)
        for a in space.sites["A"]:
            for x in space.sites["X"]:
                fill = {"A": [a] * template.multiplicity("A"), "X": [x] * template.multiplicity("X")}
                structure = template.decorate(fill)
                structure.scale_lattice(volumes.predict([site.specie.symbol for site in structure]))
                out.append((proto, structure))
    return out


def job(structure, fidelity: str) -> JobRequest:
    candidate = Candidate(kind=CandidateKind.STRUCTURE, structure=structure.as_dict(), origin="binaries-table")
    key = make_idempotency_key("binaries-table", candidate.fingerprint, fidelity, 0)
    return JobRequest(idempotency_key=key, campaign="binaries-table", candidate=candidate, fidelity=fidelity,
                      properties=["formation_energy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="stop queueing GPAW jobs after this long")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "binaries_chgnet_gpaw.csv")
    parser.add_argument("--work-dir", type=Path, default=None, help="job directories (default: a temporary one)")
    args = parser.parse_args()
    start = time.monotonic()
    campaign = load_campaign(TEMPLATE)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="binaries-table-"))
    mlip_cfg = campaign.adapters["mlip"].model_copy(update={"work_dir": str(work / "mlip")})
    dft_cfg = dft_settings(campaign.adapters["dft"]).model_copy(update={"work_dir": str(work / "dft")})
    mlip = make_mlip_adapter("mlip", mlip_cfg)
    dft = make_dft_adapter("dft", "local", dft_cfg)
    rows = binaries(campaign)

    mlip_ids = [mlip.submit(job(s, "chgnet")) for _, s in rows]
    mlip.poll(mlip_ids)  # all relaxed in one batch
    chgnet = [mlip.fetch(i) for i in mlip_ids]
    print(f"CHGNet: {len(rows)} binaries in {time.monotonic() - start:.0f} s", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    sidecar = args.out.with_suffix(".settings.json")
    sidecar.write_text(json.dumps({
        "template": str(TEMPLATE.relative_to(ROOT)),
        "mlip": {**mlip_cfg.model_dump(exclude={"work_dir", "cache_dir"}), "potential_name": chgnet[0].raw.get("potential")},
        "dft": dft_cfg.recipe.model_dump(),
        "structures": "named prototype decorated, volume by data-mined bond-length scaling (generators/crystal/volume)",
        "command": f"python benchmarks/make_binaries_table.py --minutes {args.minutes:g}",
        "note": NOTE,
    }, indent=1, default=str))

    pending: dict[str, int] = {}
    done: dict[int, tuple[float | None, str]] = {}
    next_row = 0
    with args.out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        while next_row < len(rows) or pending:
            while next_row < len(rows) and len(pending) < dft_cfg.max_workers and \
                    time.monotonic() - start < args.minutes * 60:
                pending[dft.submit(job(rows[next_row][1], "gpaw-fast"))] = next_row
                next_row += 1
            if next_row < len(rows) and time.monotonic() - start >= args.minutes * 60 and not pending:
                break
            for ext, status in dft.poll(list(pending)).items():
                if status.is_terminal:
                    i = pending.pop(ext)
                    res = dft.fetch(ext) if status == JobStatus.SUCCEEDED else None
                    value = res.properties["formation_energy"].value if res and "formation_energy" in res.properties \
                        else None
                    done[i] = (value, status.value)
                    proto, s = rows[i]
                    fe = chgnet[i].properties.get("formation_energy")
                    writer.writerow([s.composition.reduced_formula, proto, len(s),
                                     f"{fe.value:.4f}" if fe else "", f"{value:.4f}" if value is not None else "",
                                     status.value])
                    fh.flush()
                    print(f"{s.composition.reduced_formula:>6} {proto:<16} chgnet {fe.value if fe else float('nan'):+.3f}"
                          f"  gpaw {value if value is not None else float('nan'):+.3f}  {status.value}", flush=True)
            time.sleep(2)
    print(f"summary: binaries={len(done)}/{len(rows)} minutes={(time.monotonic() - start) / 60:.1f} out={args.out}")


if __name__ == "__main__":
    main()
