"""Which checkpoint a latent page works on: the sidebar's choice when it fits, else a bundled default.

A page asks for what the model must be able to do (a ``Cap``: decode a vector
latent, have prototypes, make futures…), never for a model name. When the
sidebar holds no checkpoint, or one without that capability, the page falls
back to the first bundled checkpoint that has it and says so, so every page
works on a fresh install. Capabilities are read from each checkpoint's model
type (``capabilities_of``), without loading weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from oaviz.models.base import Cap, capabilities_of, model_types_with
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
        fallback = next((e for e in entries if can(e, wanted) and e.origin == "bundled"), None) \
            or next((e for e in entries if can(e, wanted)), None)
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
            note = f"Showing **{fallback.label}**; pick another checkpoint in the sidebar."
        entry = fallback
    if note:
        st.caption(note)
    # The sidebar's picker may say "each page's default": name the checkpoint this page really uses.
    st.sidebar.caption(f"This page uses **{entry.label}**.")
    path = str(entry.path)
    return PickedModel(path=path, model_type=entry.model_type, label=entry.label,
                       loaded=loaders.checkpoint(path), content_hash=loaders.checkpoint_hash(path))


def pick_checkpoint_with(cap: Cap, label: str, key: str, missing: str) -> str | None:
    """A selectbox over the checkpoints that have ``cap`` (bundled first); None, with ``missing`` shown, when none."""
    entries = [e for e in loaders.checkpoint_entries() if can(e, cap)]
    if not entries:
        st.info(missing, icon=":material/info:")
        return None
    labels = {str(e.path): e.label for e in entries}
    return st.selectbox(label, list(labels), key=key, format_func=labels.get)
