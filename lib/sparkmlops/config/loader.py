"""Loading settings: the packaged defaults, the project's conf dir, ``--set`` overrides.

The files are merged in this order, later over earlier: the packaged ``base.yml``,
the packaged ``<env>.yml``, the project's ``base.yml`` and ``<env>.yml`` (both
optional), the project's ``datasets/<name>.yml``, then ``--set key.path=value``;
``$SPARKMLOPS_STATE_DIR``, ``$MLFLOW_TRACKING_URI`` and ``$MLFLOW_REGISTRY_URI``
win over the files. The result is validated into typed settings; an unknown or
missing key fails at load with its key path.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sparkmlops.config.confdir import (
    ConfDir,
    check_name,
    find_conf_dir,
    is_uri,
    join,
    open_conf_dir,
    packaged_location,
    packaged_text,
    parent,
)
from sparkmlops.config.settings import ConfigOrigin, Settings, SparkSettings
from sparkmlops.errors import ConfigError

log = logging.getLogger(__name__)

STATE_DIR_ENV = "SPARKMLOPS_STATE_DIR"
# Keys renamed so that a stage has one name in its folder, its command and its config
# (validate/, `sparkmlops validate`, `validate:`). The old keys still load, with a
# warning naming the new one; a file that has both is refused.
RENAMED_KEYS = {"quality": "validate"}  # in an env file
RENAMED_DATASET_KEYS = {"quality": "validate", "promotion": "promote",
                        "monitoring": "monitor", "maintenance": "maintain"}


def load_settings(
    env: str,
    dataset: str,
    *,
    overrides: list[str] | None = None,
    conf_dir: str | Path | None = None,
    spark: Any = None,
) -> Settings:
    """Load, merge and validate the settings of ``env`` for ``dataset``.

    ``conf_dir`` is the project's conf dir (default: ``$SPARKMLOPS_CONF_DIR``, else
    ``./conf``). A Hadoop URI is read through ``spark``: a SparkSession, or a function
    returning one, called only for a URI (``sparkmlops.preflight.load_checked_settings``
    passes one that starts the session the env would use). Relative paths resolve
    against the conf dir's parent, the project dir, unless the config sets ``project_dir``.

    This checks what the YAML itself can say; run ``sparkmlops.preflight.check_settings``
    after it for what needs the estimator and feature code.

    Raises:
        ConfigError: a file is missing, a key is unknown or missing, or a value is
            of the wrong type; the message names the key path.
    """
    check_name("--env", env)
    check_name("--dataset", dataset)
    conf = open_conf_dir(find_conf_dir(conf_dir), spark=_session_factory(spark))
    merged = _merge_env_layers(conf, env)
    dataset_file = f"datasets/{dataset}.yml"
    merged["dataset"] = renamed_keys(
        _parse_yaml(conf.read(dataset_file), conf.path(dataset_file)), RENAMED_DATASET_KEYS,
        conf.path(dataset_file))
    merged["env"] = env
    if os.environ.get(STATE_DIR_ENV):
        merged["state_dir"] = os.environ[STATE_DIR_ENV]
    for override in overrides or []:
        _apply_override(merged, override)
    # A conf dir kept apart from its project (conf in a workspace folder, data in a
    # bucket) names the root with `project_dir`; by default it is the conf dir's parent.
    project = str(merged.get("project_dir") or ".")
    merged["project_dir"] = project if is_uri(project) else join(parent(conf.location), project)
    # MLflow's own variables win over the files, as they do for MLflow itself
    for variable, key in (("MLFLOW_TRACKING_URI", "tracking_uri"),
                          ("MLFLOW_REGISTRY_URI", "registry_uri")):
        if os.environ.get(variable):
            merged.setdefault("tracking", {})[key] = os.environ[variable]
    merged = _substitute(merged, env=env, dataset=dataset)
    origin = ConfigOrigin(conf.location, env, dataset)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    settings._origin = origin
    return settings


def _session_factory(spark: Any) -> Callable[[], Any] | None:
    if spark is None or callable(spark):
        return spark
    return lambda: spark


def _merge_env_layers(conf: ConfDir, env: str) -> dict[str, Any]:
    """packaged base < packaged <env> < project base < project <env>."""
    packaged = packaged_location()
    layers = [(f"{packaged}/base.yml", packaged_text("base.yml")),
              (f"{packaged}/{env}.yml", packaged_text(f"{env}.yml")),
              (conf.path("base.yml"), conf.read("base.yml")),
              (conf.path(f"{env}.yml"), conf.read(f"{env}.yml"))]
    if layers[1][1] is None and layers[3][1] is None:
        raise ConfigError(f"unknown env {env!r}: no {env}.yml in the packaged defaults "
                          f"({packaged}) nor in the project conf dir ({conf.location})")
    merged: dict[str, Any] = {}
    for where, text in layers:
        if text is not None:
            merged = _deep_merge(merged, renamed_keys(_parse_yaml(text, where), RENAMED_KEYS,
                                                      where))
    return merged


def renamed_keys(section: dict[str, Any], renames: dict[str, str], where: str) -> dict[str, Any]:
    """``section`` with each deprecated key of ``renames`` under its new name (a warning
    for each); a ConfigError when a section holds a key under both names."""
    for old, new in renames.items():
        if old not in section:
            continue
        if new in section:
            raise ConfigError(f"{where}: both {old!r} and {new!r}; {old!r} is the old name "
                              f"of {new!r}: keep only {new!r}")
        log.warning("%s: the key %r is deprecated; rename it %r (it still loads)",
                    where, old, new)
        section = {(new if key == old else key): value for key, value in section.items()}
    return section


def packaged_spark_settings(env: str, dataset: str) -> SparkSettings:
    """The ``spark`` section of the packaged ``base.yml`` + ``<env>.yml``: what a session
    that reads a URI conf dir is started from, before the project's overlays are read
    (on a cluster, ``use_existing_session``, that is the platform's own session anyway)."""
    section: dict[str, Any] = {}
    for name in ("base.yml", f"{env}.yml"):
        text = packaged_text(name)
        if text is not None:
            section = _deep_merge(section, _parse_yaml(text, name).get("spark") or {})
    return SparkSettings.model_validate(_expand(section, {"env": env, "dataset": dataset}))


def _parse_yaml(text: str | None, where: str) -> dict[str, Any]:
    if text is None:
        raise ConfigError(f"config file not found: {where}")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    return data


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for what PyYAML found wrong, with the 1-based line and column.

    PyYAML's own text spans four or more lines (context, snippet, caret), which would
    break the one-line error contract of the CLI.
    """
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}" + (f" ({context})" if context else "")


def _override_value(key: str, raw: str) -> Any:
    """The YAML value of ``--set key=raw``; a value YAML cannot read is a ConfigError."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {key}: {raw!r} is not a YAML value: {yaml_problem(exc)}") from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(merged: dict[str, Any], override: str) -> None:
    """Apply ``key.path=value`` (list items by index: ``validate.expectations.0.severity``)."""
    if "=" not in override:
        raise ConfigError(f"--set {override!r}: expected key.path=value")
    key, raw = override.split("=", 1)
    node: Any = merged
    parts = _renamed_path(key.strip().split("."))
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: {part} is not an index of a {len(node)}-item list")
            if last:
                node[int(part)] = _override_value(key, raw)
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = _override_value(key, raw)
            else:
                # a null section (`serverless: null` in an overlay) is an unset one: setting
                # one of its keys starts it
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(f"--set {key}: {parts[depth - 1]} is not a mapping or list")


def _renamed_path(parts: list[str]) -> list[str]:
    """A ``--set`` key path with a deprecated section name replaced (and a warning)."""
    renames, at = ((RENAMED_DATASET_KEYS, 1) if parts[:1] == ["dataset"] else (RENAMED_KEYS, 0))
    if len(parts) > at and parts[at] in renames:
        new = [*parts[:at], renames[parts[at]], *parts[at + 1:]]
        log.warning("--set %s: the key %r is deprecated; use %s (it still applies)",
                    ".".join(parts), parts[at], ".".join(new))
        return new
    return parts


def _substitute(merged: dict[str, Any], **names: str) -> dict[str, Any]:
    """Expand ``{state_dir}``, ``{project_dir}``, ``{env}`` and ``{dataset}`` in strings.

    ``state_dir`` is expanded first (it may itself hold ``{env}``) and made absolute
    against the project dir, then used in every other value.
    """
    project = str(merged.get("project_dir", ""))
    state = str(_expand(str(merged.get("state_dir", "")), {**names, "project_dir": project}))
    if state and not is_uri(state) and not Path(state).is_absolute():
        state = join(project, state)
    values = {**names, "project_dir": project}
    if state:
        values["state_dir"] = state
    expanded = {k: _expand(v, values) for k, v in merged.items()}
    if state:
        expanded["state_dir"] = state
    return expanded


def _expand(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: _expand(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, names) for v in value]
    return value


def _describe(exc: ValidationError, origin: ConfigOrigin) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        loc = re.sub(r"\bschema_\b", "schema", loc)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{origin.where(loc)}: {message}")
    return "invalid config: " + "; ".join(problems)


def settings_error(settings: Settings, problems: list[tuple[str, str]]) -> ConfigError:
    """One ``ConfigError`` line for problems found after load, as (key path, message)
    pairs (``dataset.model.estimator.type``), worded like a problem found at load."""
    origin = settings.origin or ConfigOrigin(join(settings.project_dir, "conf"), settings.env,
                                             settings.dataset.name)
    return ConfigError("invalid config: " + "; ".join(
        f"{origin.where(key)}: {message}" for key, message in problems))
