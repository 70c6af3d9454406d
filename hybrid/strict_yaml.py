"""YAML read strictly: a key given twice in one mapping is an error, not a silent overwrite.

PyYAML keeps the last copy of a duplicated key, so a second `smoothness:` study, a second
`seeds:` or a repeated key inside `vary` quietly replaces the first. `load_yaml` refuses
them, and every error (syntax or duplicate) names the file, line and column. Merge keys
(`<<: *defaults`, or `<<: [*a, *b]`) work as in PyYAML's SafeLoader: a key written in the
mapping overrides a merged one, and of several merged mappings the earlier wins; only a key
written twice in the mapping itself is refused.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class ConfigFileError(ValueError):
    """A config file that cannot be read as YAML: the message names the file and the line."""


MERGE_TAG, VALUE_TAG = "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping.

    The check sits in `flatten_mapping`, which SafeLoader runs on every mapping before building
    it and on every mapping merged in, before it splices merged pairs into `node.value` in
    place. Checked there, once per node, only the keys as written count: `<<` is skipped and an
    explicit key overriding a merged one is no duplicate.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._checked_nodes: set[int] = set()

    def flatten_mapping(self, node):
        if id(node) not in self._checked_nodes:
            self._checked_nodes.add(id(node))
            self._refuse_duplicates(node)
        super().flatten_mapping(node)

    def _refuse_duplicates(self, node):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = key_node.value if key_node.tag == VALUE_TAG else self.construct_object(key_node)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: construct_mapping names it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found key {key!r} again (first at line {first + 1}); YAML keeps only "
                    "the last copy: merge the two or rename one", key_node.start_mark)
            seen[key] = key_node.start_mark.line


def _where(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def parse_yaml(text: str, source: str = "<string>"):
    """The YAML document in `text`; errors say `source`, the line and what is wrong."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigFileError(f"{source}: {_where(err)}{problem}") from None


def load_yaml(path: str | Path):
    """The YAML document in the file at `path`, read strictly (see the module doc). A path
    that is missing, a directory or not text is a ConfigFileError naming it."""
    path = Path(path)
    if not path.exists():
        raise ConfigFileError(f"{path}: no such file")
    if path.is_dir():
        raise ConfigFileError(f"{path}: is a directory, not a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path}: not a text file (not UTF-8); give the YAML config") from None
    return parse_yaml(text, str(path))
