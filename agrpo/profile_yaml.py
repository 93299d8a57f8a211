"""Profile files: strict YAML reading (errors name the file and line), ``extends`` chains, and the merges that
combine profiles and overrides. ``agrpo.config.load_config`` turns the result into a validated ``ProfileConfig``."""

from __future__ import annotations

from pathlib import Path

import yaml

from agrpo.config import ConfigError


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (which it would silently let the last one win)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"line {line}: duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path``; syntax errors and duplicate keys name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except ConfigError as e:
        raise ConfigError(f"{path}:{str(e).removeprefix('line ')}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_profile(path: str | Path, _chain: tuple = ()) -> dict:
    """A profile YAML as a mapping; ``extends: <file>`` (relative to this file) starts from another profile and
    deep-merges this one over it; a key set to null (`~`) in the extending file removes the base's key (e.g. a
    data source of a task the variant does not train). Without ``extends`` a file stands alone over the dataclass
    defaults."""
    path = Path(path)
    if path.resolve() in _chain:
        raise ConfigError(f"{path}: `extends` goes round in a circle ({' -> '.join(str(p) for p in _chain)})")
    data = read_yaml(path)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: extends: expected a file path, got {base!r}")
    base_path = Path(base) if Path(base).is_absolute() else path.parent / base
    return merge_removing(read_profile(base_path, _chain + (path.resolve(),)), data)


def merge_removing(base: dict, over: dict) -> dict:
    """``deep_merge``, where a null in ``over`` removes the key from ``base``."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_removing(out[k], v)
        else:
            out[k] = v
    return out


def dotted(overrides: dict) -> dict:
    """``{"rl": {"iterations": 20}}`` or ``{"rl.iterations": 20}`` → ``{"rl.iterations": 20}``."""
    out = {}
    for k, v in overrides.items():
        if isinstance(v, dict) and v:
            out.update({f"{k}.{kk}": vv for kk, vv in dotted(v).items()})
        else:
            out[k] = v
    return out
