"""Prompt-derived features: removal intent, scripts, and whether on-image text is asked for."""

from __future__ import annotations

import re

_REMOVAL = re.compile(
    r"\b(remove|erase|delete|get rid of|take (?:out|away)|clean ?up|eliminate|cut out|wipe)\b"
    r"|去掉|去除|删除|删掉|消除|移除|抹去|取り除|消して|削除|지워|제거",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"\"[^\"]+\"|“[^”]+”|「[^」]+」|『[^』]+』|'[^']{2,}'")
_SCRIPTS = {
    "cjk": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
    "kana": re.compile(r"[\u3040-\u30ff]"),
    "hangul": re.compile(r"[\u1100-\u11ff\uac00-\ud7af]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "arabic": re.compile(r"[\u0600-\u06ff]"),
    "latin": re.compile(r"[A-Za-z]"),
}
_TEXT_SCRIPTS = frozenset({"cjk", "kana", "hangul"})


def is_removal(prompt: str) -> bool:
    return bool(_REMOVAL.search(prompt))


def scripts_of(prompt: str) -> tuple[str, ...]:
    return tuple(name for name, pattern in _SCRIPTS.items() if pattern.search(prompt))


def wants_text(prompt: str, scripts: tuple[str, ...]) -> bool:
    """Quoted text or a CJK/kana/hangul prompt usually means text to render on the image."""
    return bool(_QUOTED.search(prompt)) or bool(_TEXT_SCRIPTS.intersection(scripts))
