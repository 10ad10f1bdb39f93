"""Click options built from the Config's own field descriptions (``pyro_vae.config.hyper``).

Syntax is click's: a fixed set of values is a ``click.Choice`` (``--help`` shows ``[a|b|c]`` and a
bad value is refused with the list), numbers are ``IntRange``/``FloatRange``, the device a small
``ParamType``. Meaning (a network too large, a CUDA device this machine lacks) stays with the Config
and the code that uses it.
"""

from __future__ import annotations

import dataclasses
import re

import click

from pyro_vae.config import Config, parse_hidden_dims
from pyro_vae.errors import PyroVAEError

DEFAULTS = Config()


class DeviceType(click.ParamType):
    """auto, cpu, cuda or cuda:N; whether this machine has that device is checked when it is used."""

    name = "device"

    def get_metavar(self, param, ctx=None):
        return "[auto|cpu|cuda|cuda:N]"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            return value
        self.fail(f"{value!r} is not a device; use auto, cpu, cuda or cuda:N", param, ctx)


class HiddenDimsType(click.ParamType):
    """'512,512' -> (512, 512)."""

    name = "W[,W...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            widths = parse_hidden_dims(value, flag_of(param.name) if param is not None else "--hidden-dims")
        except PyroVAEError as error:
            self.fail(str(error), param, ctx)
        if any(width <= 0 for width in widths):
            self.fail(f"every width must be a positive integer, got {value!r}", param, ctx)
        return widths


class ChoiceList(click.ParamType):
    """Comma-separated values, each one of ``choices``: 'bernoulli,normal' -> ['bernoulli', 'normal']."""

    def __init__(self, choices: tuple[str, ...]):
        self.choices = choices
        self.name = "[" + "|".join(choices) + "],..."

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in self.choices]
        if unknown or not names:
            self.fail(f"{','.join(unknown) or repr(value)} is not a comma-separated list of "
                      f"{', '.join(self.choices)}", param, ctx)  # fmt: skip
        return names


class IntChoice(click.Choice):
    """A fixed set of integers (``--channels 1|3``), given and returned as ints."""

    def __init__(self, choices):
        super().__init__([str(choice) for choice in choices])

    def convert(self, value, param, ctx):
        return int(super().convert(str(value), param, ctx))


DEVICE = DeviceType()
HIDDEN_DIMS = HiddenDimsType()


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def param_type(field: dataclasses.Field):
    """The click type that checks a field's syntax, from its description."""
    meta = field.metadata
    if field.name == "device":
        return DEVICE
    if field.name in ("hidden_dims", "conv_channels", "upper_z_dims"):
        return HIDDEN_DIMS
    if meta["choices"] is not None:
        return IntChoice(meta["choices"]) if meta["kind"] is int else click.Choice(meta["choices"])
    if meta["kind"] is int:
        return click.IntRange(meta["minimum"], meta["maximum"])
    if meta["kind"] is float:
        if meta["positive"]:
            return click.FloatRange(0, None, min_open=True)
        opened = meta["open_interval"]
        return click.FloatRange(meta["minimum"], meta["maximum"], min_open=opened, max_open=opened)
    if meta["kind"].__name__ == "Path":
        return click.Path()
    return str


def flag_of(name: str) -> str:
    """The command-line spelling of Config field ``name`` (``learning_rate`` -> ``--lr``)."""
    field = {f.name: f for f in dataclasses.fields(Config)}.get(name)
    return (field and field.metadata["flag"]) or "--" + name.replace("_", "-")


def config_option(name: str, **overrides):
    """A click option that fills Config field ``name``; it defaults to None so that only the fields
    a user gave reach the Config (the rest keep the Config's defaults, shown in the help)."""
    field = {f.name: f for f in dataclasses.fields(Config)}[name]
    meta = field.metadata
    flag = flag_of(name)
    default = getattr(DEFAULTS, name)
    help_text = meta["help"]
    if meta["kind"] is bool:
        declaration = f"{flag}/{meta['secondary']}" if meta["secondary"] else flag
        extra = dict(default=None) if meta["secondary"] else dict(is_flag=True, default=None)
        help_text += f" [default: {meta['secondary'] if meta['secondary'] and not default else flag if default else 'off'}]"
    else:
        declaration = flag
        extra = dict(type=param_type(field), default=None)
        if default is not None:
            help_text += f" [default: {_show(default)}]"
    return click.option(declaration, name, help=help_text, **{**extra, **overrides})


def config_options(*names: str):
    """Decorator: the options of several Config fields, in the order given."""

    def decorate(command):
        for name in reversed(names):
            command = config_option(name)(command)
        return command

    return decorate


def given(values: dict) -> dict:
    """The options a user actually gave (click passes None for the rest)."""
    return {name: value for name, value in values.items() if value is not None}


# The words after `pyro-vae`, kept by main() for `--nproc`, which starts the same command on N processes.
ARGUMENTS: list[str] = []


def nproc_option(command):
    return click.option(
        "--nproc", type=click.IntRange(min=1), default=1, show_default=True,
        help="Processes to run on this machine, started by torch.distributed.run as `torchrun --standalone "
             "--nproc-per-node N` would (several machines: run torchrun yourself; see docs/guide/scaling-out.md).",
    )(command)  # fmt: skip


def launch_elsewhere(nproc: int) -> bool:
    """With ``--nproc N`` > 1 outside torchrun, run this command on N processes through
    torch.distributed.run and return True once they are done; else False (run it here)."""
    from pyro_vae.distributed import launch, launched_size, without_nproc

    if nproc == 1:
        return False
    if launched_size() > 1:
        raise PyroVAEError(f"--nproc {nproc} under torchrun, which already started {launched_size()} processes; "
                           f"give one or the other")  # fmt: skip
    launch(nproc, without_nproc(ARGUMENTS))
    return True
