"""YAML read strictly: a key given twice in one mapping is an error, not a silent overwrite.

PyYAML keeps the last copy of a duplicated key, so a second `smoothness:` study, a second
`seeds:` or a repeated key inside `vary` quietly replaces the first. `load_yaml` refuses
them, and every error (syntax or duplicate) names the file, line and column.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class ConfigFileError(ValueError):
    """A config file that cannot be read as YAML: the message names the file and the line."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found key {key!r} again (first at line {seen[key] + 1}); YAML keeps only "
                    "the last copy: merge the two or rename one", mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


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
