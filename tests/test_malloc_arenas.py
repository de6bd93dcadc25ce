"""The engine caps glibc's malloc arenas unless MALLOC_ARENA_MAX already says how many."""

from __future__ import annotations

import ctypes
import os

import pytest

from notifier import app


class _Libc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


@pytest.fixture
def libc(monkeypatch: pytest.MonkeyPatch) -> _Libc:
    fake = _Libc()
    monkeypatch.setattr(ctypes, "CDLL", lambda _name: fake)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    return fake


def test_two_arenas_on_glibc(libc: _Libc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "confstr", lambda _name: "glibc 2.36")
    app.limit_malloc_arenas()
    assert libc.calls == [(-8, 2)]


def test_an_explicit_setting_wins(libc: _Libc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    app.limit_malloc_arenas()
    assert libc.calls == []


def test_nothing_off_glibc(libc: _Libc, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_confstr(_name: str) -> str:
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(os, "confstr", no_confstr)
    app.limit_malloc_arenas()
    assert libc.calls == []


def test_harmless_for_real() -> None:
    app.limit_malloc_arenas()  # twice, on whatever libc runs the tests
    app.limit_malloc_arenas()
