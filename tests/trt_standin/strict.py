"""Strict attribute access: a name TensorRT's Python API does not have raises AttributeError, as the real module
would (setting one too); a name it has but the stand-in does not simulate raises NotImplementedError (so a test
cannot pass by `hasattr` quietly skipping an unsimulated call, and the stand-in says what to add).

The API of the version being stood in is one of the JSON files beside this module (see __init__.py for how
they were made); `load_api(version)` makes it current for every class and module here.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

HERE = Path(__file__).parent
CURRENT: dict = {}


def load_api(version: str) -> dict:
    api = json.loads((HERE / f"tensorrt-{version}.json").read_text())
    CURRENT.clear()
    CURRENT.update(
        version=api["tensorrt_version"],
        module=set(api["module"]),
        classes={k: set(v) for k, v in api["classes"].items()},
        enums=api["enums"],
    )
    return CURRENT


def _check(owner: str, name: str, allowed: set[str] | None, found: bool):
    if allowed is None or name not in allowed:
        raise AttributeError(f"{owner!r} has no attribute {name!r} (not in TensorRT {CURRENT.get('version')}'s Python API)")
    if not found:
        raise NotImplementedError(f"the TensorRT stand-in does not simulate {owner}.{name}")


class StrictMeta(type):
    """Class attributes (enum members, methods looked up on the class) are checked against the API list."""

    def __getattribute__(cls, name):
        if name.startswith("_"):
            return super().__getattribute__(name)
        api_name = type.__getattribute__(cls, "_api_name")
        try:
            value = super().__getattribute__(name)
        except AttributeError:
            _check(api_name, name, CURRENT["classes"].get(api_name), False)
        _check(api_name, name, CURRENT["classes"].get(api_name), True)
        return value


class Strict(metaclass=StrictMeta):
    """Instance attributes are checked the same way; names starting with "_" are the stand-in's own."""

    _api_name = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a class of the code under test derived from a TensorRT class (a logger from trt.ILogger) keeps its
        # base's API: that is what TensorRT checks it against
        if "_api_name" not in cls.__dict__ and cls.__module__.startswith(__package__ or "trt_standin"):
            cls._api_name = cls.__name__

    def __getattribute__(self, name):
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        api_name = type(self)._api_name
        try:
            value = object.__getattribute__(self, name)
        except AttributeError:
            _check(api_name, name, CURRENT["classes"].get(api_name), False)
        _check(api_name, name, CURRENT["classes"].get(api_name), True)
        return value

    def __setattr__(self, name, value):
        if not name.startswith("_") and name not in CURRENT["classes"].get(type(self)._api_name, set()):
            raise AttributeError(
                f"{type(self)._api_name!r} has no attribute {name!r} (not in TensorRT {CURRENT.get('version')}'s Python API)"
            )
        object.__setattr__(self, name, value)


class StrictEnum(Strict):
    """A pybind11-style enum member: `.name`, `.value`, int(), comparable and hashable."""

    def __init__(self, name: str, value: int):
        self._name, self._value = name, value

    @property
    def name(self) -> str:
        return self._name

    @property
    def value(self) -> int:
        return self._value

    def __int__(self) -> int:
        return self._value

    __index__ = __int__

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._value == self._value

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._value))

    def __repr__(self) -> str:
        return f"<{type(self)._api_name}.{self._name}: {self._value}>"

    @classmethod
    def _install_members(cls) -> None:
        """Members and values of the current version (they differ: STRONGLY_TYPED is 1 in 10.x, 0 in 11.x)."""
        for name in [k for k, v in list(cls.__dict__.items()) if isinstance(v, StrictEnum)]:
            delattr(cls, name)
        for name, value in CURRENT["enums"].get(cls._api_name, {}).items():
            setattr(cls, name, cls(name, value))


class StrictModule(types.ModuleType):
    """A module whose public names are exactly the API list's (and simulated)."""

    def __getattribute__(self, name):
        if name.startswith("_"):
            return super().__getattribute__(name)
        try:
            value = super().__getattribute__(name)
        except AttributeError:
            _check("tensorrt", name, CURRENT["module"], False)
        _check("tensorrt", name, CURRENT["module"], True)
        return value
