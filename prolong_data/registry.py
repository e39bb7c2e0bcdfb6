"""A registry of classes by name, filled by the modules of one package as they are imported.

Source kinds (`prolong_data.sources`), pack modes (`prolong_data.packing`) and executors
(`pipelines.executors`) each keep one: a new kind, mode or executor is one module of its package
that registers its class, and the registry imports the package's modules on the first lookup.
"""

from __future__ import annotations

import importlib
import pkgutil


class Registry(dict):
    """Classes by name; `what` names an entry in messages ("pack mode"), `package` is the package
    whose modules register them."""

    def __init__(self, what: str, package: str):
        super().__init__()
        self.what = what
        self.package = package

    def add(self, name: str, cls: type) -> type:
        """Register `cls` as `name`; ValueError when another class already holds the name."""
        if name in self and self[name] is not cls:
            raise ValueError(
                f"{self.what} {name!r} is registered twice: {self[name].__name__} and {cls.__name__}"
            )
        self[name] = cls
        return cls

    def load(self) -> None:
        """Import every module of the package, so each has registered its classes."""
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self.load()
        return sorted(self)

    def find(self, name: str) -> type | None:
        """The class registered as `name`, loading the package first if needed; None if none is."""
        if name not in self:
            self.load()
        return self.get(name)
