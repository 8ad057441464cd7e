"""Which checkpoint a page works on: the sidebar's choice when it fits, else the model set's.

A page asks for what the model must be able to do (a ``Cap``: decode a vector
latent, have prototypes, make futures…), never for a model name. When the
sidebar holds no checkpoint, or one without that capability, the page takes the
first checkpoint with it from the sidebar's model set (the bundled demo set, or
a zoo "trained on <cohort>"); a zoo that left that model out falls back to the
bundled one and says why. Either way the sidebar names the checkpoint the page
uses. Capabilities are read from each checkpoint's model type
(``capabilities_of``), without loading weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from oaviz.models.base import Cap, capabilities_of, model_types_with
from oaviz.services import zoos
from oaviz.ui import loaders, state
from oaviz.ui.refs import ModelRef

# What a page that needs a capability calls the models that have it.
NEEDS = {Cap.VECTOR_LATENT: ("an autoencoder checkpoint", "decoder"), Cap.PROTOTYPES: ("a prototype checkpoint", "prototypes")}


@dataclass(frozen=True)
class PickedModel:
    path: str
    model_type: str
    label: str
    loaded: object  # LoadedCheckpoint (eval mode, frozen, shared between sessions)
    content_hash: str

    @property
    def ref(self) -> ModelRef:
        """The checkpoint's cache key for ``oaviz.ui.cached``."""
        return ModelRef(self.path, self.content_hash)

    @property
    def capabilities(self) -> frozenset[Cap]:
        return capabilities_of(self.model_type)


def can(entry, cap: Cap | None) -> bool:
    """Whether a listed checkpoint (anything with ``model_type``) has ``cap``; None asks for nothing."""
    return cap is None or cap in capabilities_of(entry.model_type)


def current_model(need: Cap | None = Cap.VECTOR_LATENT) -> PickedModel | None:
    """The checkpoint for this page, loaded once per server; None (with a message) when there is none.

    ``need`` None accepts any checkpoint (the fallback is then an autoencoder, as for the latent map).
    """
    entries = loaders.checkpoint_entries()
    by_path = {str(e.path): e for e in entries}
    chosen = state.selected_checkpoint()
    entry = by_path.get(chosen) if chosen else None
    note = None
    if entry is None or not can(entry, need):
        wanted = need or Cap.VECTOR_LATENT
        fallback, set_note = set_default(entries, wanted)
        if fallback is None:
            what, _ = NEEDS.get(wanted, (f"a checkpoint that can {wanted}", wanted))
            st.info(f"This page needs {what} ({', '.join(model_types_with(wanted))}). Train one on the "
                    "**Models & training** page.", icon=":material/info:")
            return None
        if entry is not None:
            _, lacks = NEEDS.get(wanted, ("", wanted))
            note = (f"The selected checkpoint ({entry.label}) cannot be used here "
                    f"({entry.model_type} has no {lacks}); showing **{fallback.label}** instead.")
        else:
            note = set_note or f"Showing **{fallback.label}**; pick another checkpoint in the sidebar."
        entry = fallback
    if note:
        st.caption(note)
    name_in_sidebar(entry)
    path = str(entry.path)
    return PickedModel(path=path, model_type=entry.model_type, label=entry.label,
                       loaded=loaders.checkpoint(path), content_hash=loaders.checkpoint_hash(path))


def name_in_sidebar(entry) -> None:
    """The sidebar's picker may say "each page's checkpoint from the set": name the one this page really uses."""
    st.sidebar.caption(f"This page uses **{entry.label}**.")


def set_default(entries, cap: Cap):
    """(the model set's first checkpoint with ``cap``, None), or when the set has none (the bundled one, or
    any, with a note saying why the set has none); (None, None) when no checkpoint has ``cap``."""
    key = state.selected_model_set()
    found = zoos.set_entry(entries, key, cap)
    if found is not None:
        return found, None
    fallback = zoos.set_entry(entries, zoos.BUNDLED, cap) or next((e for e in entries if can(e, cap)), None)
    if fallback is None or key == zoos.BUNDLED:
        return fallback, None
    chosen = next((s for s in loaders.model_sets() if s.key == key), None)
    why = zoos.missing_reason(chosen, cap) if chosen is not None else ""
    where = f"The set trained on {chosen.cohort}" if chosen is not None else "The selected model set"
    return fallback, (f"{where} has no checkpoint for this page" + (f" ({why})" if why else "")
                      + f"; showing **{fallback.label}** instead.")


def pick_checkpoint_with(cap: Cap, label: str, key: str, missing: str) -> str | None:
    """A selectbox over the checkpoints that have ``cap``, the model set's first (its default); None, with
    ``missing`` shown, when none. The sidebar names the one picked."""
    entries = loaders.checkpoint_entries()
    default, note = set_default(entries, cap)
    if default is None:
        st.info(missing, icon=":material/info:")
        return None
    ordered = [default] + [e for e in entries if can(e, cap) and e != default]
    labels = {str(e.path): e.label for e in ordered}
    # one widget per model set: switching sets starts from the new set's checkpoint
    widget_key = key if not state.selected_model_set() else f"{key}@{state.selected_model_set()}"
    picked = st.selectbox(label, list(labels), key=widget_key, format_func=labels.get)
    if note and picked == str(default.path):
        st.caption(note)
    name_in_sidebar(next(e for e in ordered if str(e.path) == picked))
    return picked
