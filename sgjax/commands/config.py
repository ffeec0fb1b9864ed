"""Print the resolved config as YAML: the config.yaml a run with these arguments would write.

The defaults, then each --config file in order (later files win, key by key), then the --set
items, then the model's own defaults on the keys none of them set; every key is written, so
the output loads back to the same config (`sgjax config ... > my.yaml; sgjax train --config
my.yaml`). A bad file, key or value is one line on stderr naming the file (and line) or --set
item it came from, exit status 2. Training's keys and their docs: sgjax train --help.
"""

from __future__ import annotations

import argparse

from sgjax.commands import add_config_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    import sys

    from sgjax.config import load_config, to_yaml

    sys.stdout.write(to_yaml(load_config(args.config, args.overrides)))
    return 0
