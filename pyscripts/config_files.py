"""The recipe's YAML configs as files: read strictly, and the chain of files one config is made of.

A config may name other configs relative to itself: `base: FILE` (read first, then updated key by key)
or, for the joint model, `network: FILE`. A stage's result depends on every file of that chain, so its
fingerprint (pyscripts/fingerprint.py) covers them all.
"""
from pathlib import Path

import yaml

from pyscripts.errors import DataError

INCLUDE_KEYS = ("base", "network")


class _StrictLoader(yaml.SafeLoader):
    """YAML without duplicate keys: PyYAML keeps the last of two `training:` blocks and drops the
    first without a word."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DataError(f"{self.name}: line {key_node.start_mark.line + 1}: key '{key}' given twice "
                                f"(first on line {seen[key] + 1}): keep one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml(path):
    """The YAML document of `path` ({} when empty); unreadable files, bad YAML and duplicate keys are
    DataErrors naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"cannot read config {path}: {err.strerror}") from None
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data() or {}
    except yaml.YAMLError as err:
        raise DataError(f"cannot read config {path}: {err}") from None
    finally:
        loader.dispose()


def config_chain(path):
    """`path` and every config it includes (base:, network:), depth first, each once."""
    chain, todo = [], [Path(path)]
    while todo:
        current = todo.pop()
        if current in chain:
            continue
        chain.append(current)
        doc = read_yaml(current)
        if isinstance(doc, dict):
            todo += [current.parent / str(doc[k]) for k in reversed(INCLUDE_KEYS) if doc.get(k)]
    return chain
