"""What a person chose on a page, kept in the URL (?epochs=5&seeds=1 …) so that a reload,
back/forward and a copied link restore it.

Each setting is a widget key and a query parameter. Before the widgets are drawn, a widget
with no state yet (a new tab, a reload, a return from another page) gets its value from the
URL, else from this tab's last visit to the page, else its default; after they are drawn,
every value that differs from its default is written back to the URL, all in one change of
the address (Streamlit adds one history entry per change). When the URL no longer says what
this page last wrote there and no widget changed, Back or Forward brought another entry
(Streamlit reruns the page with it): the URL then wins over what the widgets hold, so Back
undoes a change. A value in
the URL that the page does not offer is ignored, said once, and taken out of the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

_LAST_VISIT = "_settings_last_visit"
_WRITTEN = "_settings_written"  # widget key -> the text keep() last left in the URL (None: absent)


@dataclass(frozen=True)
class Setting:
    param: str  # the query parameter
    key: str  # the widget's key
    default: object
    read: Callable[[str], object]  # URL text -> value; raises ValueError if the page does not offer it
    write: Callable[[object], str] = str


def restore(settings: list[Setting]) -> None:
    """Call before drawing the widgets of `settings` (which then take no `value` argument)."""
    last_visit = st.session_state.setdefault(_LAST_VISIT, {})
    written = st.session_state.setdefault(_WRITTEN, {})
    on_page = {setting.key for setting in settings if setting.key in st.session_state}
    # A rerun asked for while the browser had not yet taken our last URL brings that older URL
    # too: a widget changed by the person in this rerun says it is not Back or Forward.
    changed = any(st.session_state[key] != last_visit.get(key, st.session_state[key]) for key in on_page)
    navigated = not changed and any(
        setting.key in written and written[setting.key] != st.query_params.get(setting.param)
        for setting in settings if setting.key in on_page)
    ignored = []
    for setting in settings:
        if setting.key in on_page and not navigated:
            continue
        if setting.key in on_page and st.query_params.get(setting.param) is None:
            st.session_state[setting.key] = setting.default
            continue
        value = last_visit.get(setting.key, setting.default)
        try:  # what this tab chose last may no longer be offered (say, a model of a run since unselected)
            setting.read(setting.write(value))
        except (ValueError, TypeError, KeyError):
            value = setting.default
        text = st.query_params.get(setting.param)
        if text is not None:
            try:
                value = setting.read(text)
            except (ValueError, TypeError):
                ignored.append(setting.param)
        st.session_state[setting.key] = value
    if ignored:
        said = [f"{param}={shown(st.query_params[param])}" for param in ignored]
        set_params(dict.fromkeys(ignored))  # not left in the address bar to be copied on
        st.toast(f"Ignored from the link (not offered here): {', '.join(said)}")


def shown(text: str, length: int = 40) -> str:
    """A value from a link as it can be said: printable, and cut short."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= length else text[:length] + "…"


def keep(settings: list[Setting], hidden: list[Setting] = ()) -> None:
    """Call after drawing the widgets: write what differs from the defaults into the URL, and
    take out the `hidden` settings (their widgets are not shown now; their last values stay in
    this tab's memory for when they are shown again)."""
    last_visit = st.session_state.setdefault(_LAST_VISIT, {})
    written = st.session_state.setdefault(_WRITTEN, {})
    texts = {}
    for setting in settings:
        value = st.session_state.get(setting.key, last_visit.get(setting.key, setting.default))
        last_visit[setting.key] = value
        text = None if value == setting.default else setting.write(value)
        texts[setting.param] = written[setting.key] = text
    for setting in hidden:
        texts[setting.param] = None
        written.pop(setting.key, None)
    set_params(texts)


def set_params(texts: dict[str, str | None]) -> None:
    """Give the URL these query parameters (None: absent) in one change: one history entry."""
    now = st.query_params.to_dict()
    wanted = {param: text for param, text in {**now, **texts}.items() if text is not None}
    if wanted != now:
        st.query_params.from_dict(wanted)


def one_of(choices) -> Callable[[str], object]:
    """A reader for a setting whose values are `choices` (numbers or words), given in the URL as text."""
    return one_of_named({str(choice): choice for choice in choices})


def one_of_named(values: dict[str, object]) -> Callable[[str], object]:
    """A reader for a setting written as one of the words (say, run keys) that name `values`."""
    def read(text: str):
        if text not in values:
            raise ValueError(text)
        return values[text]
    return read


def list_of(choices: list[str]) -> tuple[Callable[[str], list], Callable[[list], str]]:
    """Reader and writer for several of `choices` (words without commas), written comma-separated."""
    def read(text: str) -> list[str]:
        chosen = text.split(",") if text else []
        if any(word not in choices for word in chosen) or len(set(chosen)) != len(chosen):
            raise ValueError(text)
        return chosen
    return read, ",".join


def runs_named(keys: list[str], prefix: int = 8) -> tuple[Callable[[str], list], Callable[[list], str]]:
    """Reader and writer for a list of runs, written as their keys' first `prefix` characters,
    comma-separated; each must name one of `keys`, once."""
    def read(text: str) -> list[str]:
        chosen = []
        for start in text.split(",") if text else []:
            matching = [k for k in keys if k.startswith(start)] if len(start) >= prefix else []
            if len(matching) != 1 or matching[0] in chosen:
                raise ValueError(text)
            chosen.append(matching[0])
        return chosen
    return read, lambda chosen: ",".join(key[:prefix] for key in chosen)


def yes_no(text: str) -> bool:
    """A true/false setting as a link gives it: true or false, in any case."""
    words = {"true": True, "false": False}
    if text.lower() not in words:
        raise ValueError(text)
    return words[text.lower()]


def named(names: dict[str, str]) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """Reader and writer for a choice shown as a label and written as a short word (`names`:
    word -> label)."""
    words = {label: word for word, label in names.items()}

    def read(text: str) -> str:
        if text not in names:
            raise ValueError(text)
        return names[text]
    return read, words.__getitem__


def pair_of(read_one: Callable[[str], object], order: Callable[[object], object] | None = None
            ) -> tuple[Callable[[str], tuple], Callable[[tuple], str]]:
    """Reader and writer for a two-value setting (a range), written "low,high"; a range given
    high first is read low first (by `order`, else the values' own)."""
    def read(text: str) -> tuple:
        parts = text.split(",")
        if len(parts) != 2:
            raise ValueError(text)
        return tuple(sorted((read_one(parts[0]), read_one(parts[1])), key=order))
    return read, lambda pair: f"{pair[0]},{pair[1]}"


def text_up_to(length: int) -> Callable[[str], str]:
    def read(text: str) -> str:
        if len(text) > length:
            raise ValueError(text)
        return text
    return read
