"""``dyfit generate``: simulate N accepted detector-level events and write them to a file.

Example:
    dyfit generate --events 100000 --theta 1,0,0.1 --target d -o events.parquet
    dyfit generate --events 200000 --theta-curve nu_rising_with_pt.toml -o curve.parquet
"""

from __future__ import annotations

import click

from dyfit.cli.options import (
    config_option,
    output_option,
    resolve_theta,
    seed_option,
    smearing_option,
    theta_options,
    workers_option,
)
from dyfit.errors import InputError

__all__ = ["command"]

PROGRESS_FROM = 100_000  # events; below this a run takes seconds and a bar is noise


@click.command(name="generate")
@click.option("-n", "--events", "n_events", type=int, required=True, help="events after cuts.")
@theta_options
@click.option(
    "--theta-curve",
    metavar="FILE.toml",
    help="theta as a function of a truth variable (dyfit.physics.curves.ThetaCurve), per event.",
)
@click.option("--target", type=click.Choice(["p", "d"]), help="target: p (LH2) or d (LD2).")
@seed_option
@smearing_option
@config_option
@workers_option
@output_option
def command(
    n_events,
    lambda_,
    mu,
    nu,
    theta,
    prior,
    theta_curve,
    target,
    seed,
    smearing,
    config,
    workers,
    output,
):
    """Simulate N events at a fixed theta, with theta drawn per event from a prior, or on a
    theta curve of the truth kinematics."""
    if n_events <= 0:
        raise InputError(f"--events must be a positive number of events, got {n_events}")
    if theta_curve is not None:
        if any(x is not None for x in (lambda_, mu, nu, theta, prior)):
            raise InputError("give either --theta-curve or a theta (--theta/--prior/...), not both")
        from dyfit.physics.curves import load_curve

        theta = load_curve(theta_curve)
    else:
        theta, prior = resolve_theta(lambda_, mu, nu, theta, prior)
    from dyfit.data.io import event_format, write_events

    event_format(output)  # an unusable output name fails now, not after the simulation
    generator, detector = _configs(config, target)
    from dyfit.simulation import simulate

    table = simulate(
        n_events,
        theta=theta,
        prior=prior,
        generator=generator,
        detector=detector,
        smearing=smearing,
        seed=seed,
        workers=workers,
        progress=n_events >= PROGRESS_FROM,
    )
    write_events(table, output)
    click.echo(f"wrote {len(table):,} events to {output}")


def _configs(path: str | None, target: str | None):
    """The [generator] and [detector] tables of ``path`` (None: the defaults), with --target."""
    if path is None and target is None:
        return None, None
    from dyfit.config import load_toml, validate
    from dyfit.detector import SpectrometerConfig
    from dyfit.physics.generator import GeneratorConfig

    generator = load_toml(path, GeneratorConfig, table="generator") if path else GeneratorConfig()
    detector = load_toml(path, SpectrometerConfig, table="detector") if path else None
    if target is not None:
        fields = {**generator.model_dump(by_alias=True), "target": target}
        generator = validate(GeneratorConfig, fields, source="--target")
    return generator, detector
