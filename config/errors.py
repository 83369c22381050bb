"""Errors raised while reading the YAML configuration.

``ConfigError`` is the only one: the admin must edit the file (or the environment) and try
again. It carries every problem found, not just the first, so one run of
``clm-sync validate-config`` lists all of them. Each problem names the place in the file the
way editors do (``file:line:column``, 1-based), what is wrong, and how to fix it. Messages
never contain a value that came from ``${ENV}`` or ``${file:...}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in the configuration.

    ``line`` and ``column`` are 1-based; both are ``None`` when the problem concerns the file
    as a whole (it is missing or unreadable).
    """

    file: Path
    line: int | None
    column: int | None
    message: str
    hint: str

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None and self.column is not None:
            where = f"{where}:{self.line}:{self.column}"
        return f"{where}: {self.message}; {self.hint}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` says where, what and how to fix it."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("a ConfigError needs at least one problem")
        super().__init__("\n".join(str(problem) for problem in self.problems))
