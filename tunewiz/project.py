"""The project folder: `tunewiz.toml`, read, validated, saved atomically and locked.

A project is a folder. Its TOML file holds every choice; data and artefacts live
beside it (data/, runs/, exports/). Loading validates every key against
`schema.py` and names the key and the file in any error.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import fcntl
import functools
import os
import re
import sys
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import tomli_w

from tunewiz.errors import ConfigError, ProjectError, ProjectLockedError, disk_error, is_disk_error
from tunewiz.schema import SCHEMA_VERSION, SECTIONS

PROJECT_FILE = "tunewiz.toml"
LOCK_FILE = ".tunewiz.lock"


@dataclass
class Config:
    """Every section of the project file, with defaults for what the file leaves out."""

    project: Any = None
    base_model: Any = None
    generator: Any = None
    dataset: Any = None
    template: Any = None
    hardware: Any = None
    hyperparameters: Any = None
    evaluation: Any = None
    tracking: Any = None
    checkpoint: Any = None
    export: Any = None

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if getattr(self, name) is None:
                setattr(self, name, cls())

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for name in SECTIONS:
            data[name] = dataclasses.asdict(getattr(self, name))
        return data


# ---------------------------------------------------------------- validation

def _type_name(t: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(t, "a list of strings")


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY_LIKE = re.compile(r"(?:gsk|hf|ghp|gho|github_pat|r8|fw|pplx|nvapi)_\w{16,}"
                      r"|(?=\w*[a-z])(?=\w*[A-Z])(?=\w*\d)\w{20,}")
"""A value that is an API key rather than a variable's name: a provider's key prefix (Groq gsk_, Hugging
Face hf_, ...), or 20 characters or more mixing lower and upper case and digits (names are not)."""


SECRET_QUERY_NAME = re.compile(r"key|token|secret|password|passwd|pwd|auth|signature|sig|credential", re.I)


def secret_in_url(url: str) -> str:
    """What in `url` is a secret ('a password', 'a key in its query'), or '' for none."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    if parts.password:
        return "a password (user:password@)"
    if parts.username and (KEY_LIKE.fullmatch(parts.username) or parts.username.startswith("sk-")):
        return "a key as its user name (key@)"
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and (SECRET_QUERY_NAME.search(name) or KEY_LIKE.fullmatch(value) or value.startswith("sk-")):
            return f"a key in its query ({name}=...)"
    return ""


@functools.cache
def _field(section: str, key: str) -> tuple[dataclasses.Field, Any]:
    """A schema field and its type (resolving the annotations costs ~0.4 ms: once per field)."""
    cls = SECTIONS[section]
    return {f.name: f for f in dataclasses.fields(cls)}[key], typing.get_type_hints(cls)[key]


def check_value(section: str, key: str, value: Any) -> Any:
    """Check one value against the schema; return it (ints widened to floats where a number is due).

    Raises ValueError with a message naming `section.key`.
    """
    spec, want = _field(section, key)
    where = f"{section}.{key}"
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    elif want is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif want is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
    elif want is str:
        if spec.metadata.get("env_name") and isinstance(value, str) and value and (
                not ENV_NAME.fullmatch(value) or KEY_LIKE.fullmatch(value)):
            # Never echoed: what was typed here is most likely the key itself.
            raise ConfigError(f"{where} must be the name of an environment variable (letters, digits and _), "
                             "and this looks like a key itself: put the key in an environment variable "
                             "(`export MY_API_KEY=...`) and name the variable here")
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        secret = spec.metadata.get("url") and secret_in_url(value)
        if secret:  # never echoed
            raise ConfigError(f"{where} holds {secret}; secrets never go into the project file: put the key in "
                              "an environment variable (`export MY_API_KEY=...`) and name it in "
                              "generator.api_key_env (sent as the bearer token)")
        if spec.metadata.get("url") and value and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            raise ConfigError(f"{where} must be an http:// or https:// URL (e.g. http://localhost:11434/v1) or "
                              f"empty, got {value!r}")
    else:  # list[str]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}")
        if where == "hyperparameters.target_modules":
            if not value or not all(re.fullmatch(r"[A-Za-z_][\w.\-]*", name) for name in value):
                raise ConfigError(f"{where} must name at least one module: 'all-linear', or names such as "
                                  f"q_proj, v_proj; got {value!r}")
        if where == "hyperparameters.set_by_user":
            names = [f.name for f in dataclasses.fields(SECTIONS[section]) if f.name not in ("preset", key)]
            for name in value:
                if name not in names:
                    raise ConfigError(f"{where}: {name!r} is not a hyperparameter{_suggest(name, names)}")
    meta = spec.metadata
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ConfigError(f"{where} must be between {lo:g} and {hi:g}, got {value!r}")
    if choices and value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}; got {value!r}")
    return value


def parse_value(section: str, key: str, text: str) -> Any:
    """Turn the text a person typed (CLI `set`, a TUI input) into a checked value."""
    if section not in SECTIONS:
        raise ConfigError(f"unknown section '{section}'{_suggest(section, SECTIONS)}")
    names = [f.name for f in dataclasses.fields(SECTIONS[section])]
    if key not in names:
        raise ConfigError(f"unknown key '{section}.{key}'{_suggest(key, names)}")
    want = _field(section, key)[1]
    raw = text.strip()
    value: Any
    try:
        if want is bool:
            lowered = raw.lower()
            if lowered not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                raise ValueError
            value = lowered in ("true", "yes", "on", "1")
        elif want is int:
            value = int(raw)
        elif want is float:
            value = float(raw)
        elif want is str:
            value = text
        elif raw.startswith("[") and raw.endswith("]"):  # written as in the TOML file: ["docs", "notes.md"]
            value = tomllib.loads(f"v = {raw}")["v"]
        else:
            value = [part.strip() for part in raw.split(",") if part.strip()]
    except (ValueError, tomllib.TOMLDecodeError):
        raise ConfigError(f"{section}.{key} must be {_type_name(want)}, got {text!r}") from None
    return check_value(section, key, value)


def check_dotted_key(dotted: str) -> None:
    """A key of the project file is `section.key`; a bare key that one section has is answered with it
    (the wizard's forms label fields by their key alone)."""
    if "." in dotted or dotted in SECTIONS:  # a whole section is shown too
        return
    owners = [f"{name}.{dotted}" for name, cls in SECTIONS.items()
              if dotted in {f.name for f in dataclasses.fields(cls)}]
    hint = f" (did you mean {' or '.join(repr(o) for o in owners)}?)" if owners else _suggest(dotted, SECTIONS)
    raise ConfigError(f"unknown key '{dotted}': keys are written section.key{hint}")


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def config_from_dict(data: dict[str, Any], source: str) -> Config:
    """Validate a parsed TOML document; every error names `source` and the key."""
    version = data.get("schema_version")
    if version is None:
        raise ProjectError(f"{source}: missing key 'schema_version' (this file was not written by tunewiz?)")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProjectError(f"{source}: schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ProjectError(f"{source}: schema_version {version} is newer than this tunewiz understands "
                           f"({SCHEMA_VERSION}); upgrade tunewiz")
    if version < 1:
        raise ProjectError(f"{source}: schema_version must be at least 1, got {version}")
    config = Config()
    for name, body in data.items():
        if name == "schema_version":
            continue
        if name not in SECTIONS:
            raise ProjectError(f"{source}: unknown section [{name}]{_suggest(name, SECTIONS)}")
        if not isinstance(body, dict):
            raise ProjectError(f"{source}: [{name}] must be a table, got {body!r}")
        cls = SECTIONS[name]
        names = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for key, value in body.items():
            if key not in names:
                raise ProjectError(f"{source}: unknown key '{name}.{key}'{_suggest(key, names)}")
            try:
                values[key] = check_value(name, key, value)
            except ValueError as exc:
                raise ProjectError(f"{source}: {exc}") from None
        setattr(config, name, cls(**values))
    return config


# ---------------------------------------------------------------- the project

@dataclass
class Project:
    """A project folder and its validated configuration."""

    root: Path
    config: Config = field(default_factory=Config)
    _lock_fd: int | None = field(default=None, repr=False)
    read_only: str = field(default="", repr=False)
    """Why this project is open read-only ('' when it is not): another process holds its write lock."""

    @property
    def file(self) -> Path:
        return self.root / PROJECT_FILE

    def path(self, relative: str) -> Path:
        """A path from the project file, resolved against the project folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def pairs_path(self) -> Path:
        return self.path(self.config.dataset.pairs_file)

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def name(self) -> str:
        return self.config.project.name or self.root.resolve().name

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """Whether `path` is one of the files tunewiz keeps for this project (the project file, the pairs
        file, anything under data/, runs/ or exports/): a command that writes a file the user names must
        not write over these."""
        target = Path(path).expanduser().resolve()
        if target in (self.file.resolve(), self.pairs_path.resolve()):
            return True
        return any(target.is_relative_to(folder.resolve())
                   for folder in (self.root / "data", self.runs_dir, self.exports_dir))

    # -- loading and saving

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> "Project":
        root = Path(root)
        if root.name == PROJECT_FILE:
            root = root.parent
        file = root / PROJECT_FILE
        if not file.exists():
            below = sorted(p.parent.name for p in root.glob(f"*/{PROJECT_FILE}"))[:5] if root.is_dir() else []
            if below:  # the folder that holds projects, not one: name them rather than offer a new one
                raise ProjectError(f"{file}: no project here; the folders below hold "
                                   f"{', '.join(below)}: name one with -p (e.g. `-p {below[0]}`)")
            raise ProjectError(f"{file}: no project here (create one with `tunewiz new {root}`)")
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ProjectError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ProjectError(f"{file}: not valid TOML: {exc}") from None
        return cls(root=root, config=config_from_dict(data, str(file)))

    def check_writable(self) -> None:
        """Refuse a change to a project opened read-only, saying who holds it."""
        if self.read_only:
            raise ProjectLockedError(f"read-only ({self.read_only}): nothing was changed")

    def save(self) -> None:
        """Write the project file atomically: a temp file beside it, fsync, rename."""
        self.check_writable()
        try:
            atomic_write_text(self.file, tomli_w.dumps(self.config.to_dict()))
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            raise disk_error(exc, f"{self.file} is unchanged", self.file) from None

    def set(self, dotted_key: str, value: Any) -> None:
        """Set `section.key` to a value (checked) in memory; call save() to keep it."""
        section, _, key = dotted_key.partition(".")
        if section not in SECTIONS:
            raise ConfigError(f"unknown section '{section}'{_suggest(section, SECTIONS)}")
        names = [f.name for f in dataclasses.fields(SECTIONS[section])]
        if key not in names:
            raise ConfigError(f"unknown key '{dotted_key}'{_suggest(key, names)}")
        setattr(getattr(self.config, section), key, check_value(section, key, value))

    def get(self, dotted_key: str) -> Any:
        section, _, key = dotted_key.partition(".")
        return getattr(getattr(self.config, section), key)

    # -- the write lock

    def open_read_only_if_locked(self, holder: str = "tunewiz") -> "Project":
        """Take the write lock, or open read-only when another process holds it (see `read_only`)."""
        try:
            return self.lock(holder)
        except ProjectLockedError as exc:
            self.read_only = f"open for writing by {exc.holder}"
            return self

    def lock(self, holder: str = "tunewiz") -> "Project":
        """Take the project's write lock or raise ProjectLockedError naming who holds it.

        The lock is an flock on a file in the project folder, so it dies with its
        process: a crash never leaves a stale lock behind.
        """
        if self._lock_fd is not None:
            return self
        path = self.root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            raise disk_error(exc, "the project cannot be changed from here (reading it still works)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            locked = ProjectLockedError(f"{self.root}: the project is open for writing by {who}; "
                                        "close it there first (reading is still fine)")
            locked.holder = who
            raise locked from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} ({holder})".encode())
        except OSError:
            pass  # a full disk: the lock holds without the note of who holds it
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def __enter__(self) -> "Project":
        return self.lock()

    def __exit__(self, *exc: object) -> None:
        self.unlock()


def find_project_root(start: str | os.PathLike[str]) -> Path | None:
    """The project folder holding `start` (itself or a folder above it), or None."""
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    return None


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves either the old or the new file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def create_project(root: str | os.PathLike[str], values: dict[str, Any] | None = None) -> Project:
    """Create a new project folder with its TOML file and data folder.

    `values` are dotted keys (`base_model.model`, ...) with checked values.
    Refuses to touch a folder that already holds a project.
    """
    root = Path(root)
    if (root / PROJECT_FILE).exists():
        raise ProjectError(f"{root / PROJECT_FILE}: a project already exists here; nothing was changed")
    project = Project(root=root)
    project.config.project.name = root.resolve().name
    project.config.project.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    for key, value in (values or {}).items():
        project.set(key, value)
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    project.save()
    return project
