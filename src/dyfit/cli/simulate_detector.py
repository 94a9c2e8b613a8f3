"""``dyfit simulate-detector``: pass truth μ+μ− events from a file through the spectrometer.

Example:
    dyfit simulate-detector --truth pythia.root:dimuons -o reco.parquet \\
        --columns true_mup_E=mup_E,true_mup_px=mup_px,...
"""

from __future__ import annotations

import click

from dyfit.cli.options import (
    columns_option,
    config_option,
    output_option,
    seed_option,
    smearing_option,
)
from dyfit.errors import InputError

__all__ = ["command"]


@click.command(name="simulate-detector")
@click.option(
    "--truth",
    "truth_spec",
    required=True,
    metavar="FILE[:TREE]",
    help="truth events with true_mup_E ... true_mum_pz (GeV, lab frame): .parquet, .root, .csv.",
)
@output_option
@seed_option
@smearing_option
@config_option
@columns_option
@click.option("--beam-energy", type=float, default=120.0, show_default=True, help="GeV.")
@click.option("--drop-invalid", is_flag=True, help="drop truth events with NaN/inf momenta.")
def command(truth_spec, output, seed, smearing, config, columns, beam_energy, drop_invalid):
    """Simulate and reconstruct the detector response to truth dimuons; write the accepted ones."""
    if not beam_energy > 0:
        raise InputError(f"--beam-energy must be positive (GeV), got {beam_energy}")
    import numpy as np

    from dyfit.config import load_toml
    from dyfit.data.columns import TRUTH_LEPTON_COLUMNS
    from dyfit.data.io import check_finite, event_format, read_events, write_events
    from dyfit.detector import SpectrometerConfig, simulate_detector

    event_format(output)
    detector = load_toml(config, SpectrometerConfig, "detector") if config else SpectrometerConfig()
    truth = read_events(truth_spec, columns=columns)
    missing = [c for c in TRUTH_LEPTON_COLUMNS if c not in truth]
    if missing:
        raise InputError(
            f"{truth_spec} lacks truth column(s) {', '.join(missing)}; map them with "
            f"--columns {missing[0]}=NAME,... (the file has {', '.join(truth.names)})"
        )
    truth = check_finite(truth, TRUTH_LEPTON_COLUMNS, drop_invalid=drop_invalid)
    events, summary = simulate_detector(
        truth, detector, np.random.default_rng(seed), beam_energy=beam_energy, smearing=smearing
    )
    if len(events) == 0:
        raise InputError(f"none of the {len(truth):,} truth events passed; nothing written")
    events.meta = {
        **truth.meta,
        **events.meta,
        "source": "dyfit simulate-detector",
        "truth_file": str(truth_spec),
        "detector_config": detector.model_dump(mode="json"),
        "beam_energy": beam_energy,
        "smearing": smearing,
        "seed": seed,
        "n_generated": len(truth),
        "acceptance": len(events) / len(truth),
    }
    write_events(events, output)
    click.echo(str(summary))
    click.echo(
        f"accepted {len(events):,} of {len(truth):,} events "
        f"(acceptance {len(events) / len(truth):.3%}); wrote {output}"
    )
