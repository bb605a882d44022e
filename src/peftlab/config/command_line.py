"""One-line errors for command-line arguments that are neither Hydra flags nor valid overrides.

Hydra answers ``python train.py --epochs 3`` with argparse's usage block and ``python train.py
data.batch_size`` with a multi-line grammar error (exit status 1); users get one ``error:`` line
naming the argument and what is allowed instead. Everything Hydra accepts passes untouched.
"""

from __future__ import annotations

from typing import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser

# Hydra 1.3's command-line flags (hydra/_internal/utils.py get_args_parser; not a public API, so
# listed here): those that take a value, and those that do not.
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}
FLAGS_WITH_OPTIONAL_VALUE = {"--info", "-i"}
INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
FLAGS = {"-h", "--help", "--hydra-help", "--version", "--resolve", "--run", "-r", "--multirun", "-m", "--shell-completion", "-sc"}


def misused_argument(args: Sequence[str]) -> str | None:
    """The error line for the first argument Hydra would reject as a flag or override, else None."""
    parser = OverridesParser.create()
    expect_value = False
    for i, arg in enumerate(args):
        if expect_value:
            expect_value = False
            continue
        if arg.startswith("-"):
            flag = arg.split("=", 1)[0]
            if flag in FLAGS_WITH_VALUE:
                expect_value = "=" not in arg
            elif flag in FLAGS_WITH_OPTIONAL_VALUE:
                expect_value = "=" not in arg and i + 1 < len(args) and args[i + 1] in INFO_VALUES
            elif flag not in FLAGS:
                return f"{arg}: not an option; settings are key=value overrides (e.g. trainer.max_epochs=3), flags are -m/--multirun, --cfg job, --info, --help"
            continue
        try:
            parser.parse_overrides([arg])
        except Exception as err:
            if "=" not in arg and not arg.startswith("~"):
                return f"{arg}: an override needs a value: {arg}=<value> (python train.py --cfg job lists the keys)"
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
            return f"{arg.split('=', 1)[0]}: not a valid override ({detail}); see https://hydra.cc/docs/advanced/override_grammar/basic/"
    return None
