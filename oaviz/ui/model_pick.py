"""Which checkpoint a latent page works on: the sidebar's choice when it fits, else a bundled default.

A page asks for a kind of model (anything that can decode a latent, or VAESim
for the prototype page). When the sidebar holds no checkpoint, or one that
cannot do what the page needs, the page falls back to the bundled demo
checkpoint and says so, so every page works on a fresh install.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from oaviz.ui import loaders, state
from oaviz.ui.refs import ModelRef

DECODERS = ("beta_vae", "vaesim")          # models with a vector latent and a decoder
FALLBACK = {"autoencoder": ("beta_vae", "vaesim"), "vaesim": ("vaesim",), "any": ("beta_vae", "vaesim")}


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


def _accepts(kind: str, model_type: str) -> bool:
    if kind == "vaesim":
        return model_type == "vaesim"
    if kind == "autoencoder":
        return model_type in DECODERS
    return True


def current_model(kind: str = "autoencoder") -> PickedModel | None:
    """The checkpoint for this page, loaded once per server; None (with a message) when there is none."""
    entries = loaders.checkpoint_entries()
    by_path = {str(e.path): e for e in entries}
    chosen = state.selected_checkpoint()
    entry = by_path.get(chosen) if chosen else None
    note = None
    if entry is None or not _accepts(kind, entry.model_type):
        wanted = FALLBACK[kind]
        fallback = next((e for t in wanted for e in entries if e.model_type == t and e.origin == "bundled"), None) \
            or next((e for t in wanted for e in entries if e.model_type == t), None)
        if fallback is None:
            need = "a VAESim checkpoint" if kind == "vaesim" else "an autoencoder checkpoint (β-VAE or VAESim)"
            st.info(f"This page needs {need}. Train one on the **Models & training** page.", icon=":material/info:")
            return None
        if entry is not None:
            note = (f"The selected checkpoint ({entry.label}) cannot be used here "
                    f"({entry.model_type} has no {'prototypes' if kind == 'vaesim' else 'decoder'}); "
                    f"showing **{fallback.label}** instead.")
        else:
            note = f"Showing **{fallback.label}**; pick another checkpoint in the sidebar."
        entry = fallback
    if note:
        st.caption(note)
    path = str(entry.path)
    return PickedModel(path=path, model_type=entry.model_type, label=entry.label,
                       loaded=loaders.checkpoint(path), content_hash=loaders.checkpoint_hash(path))


def pick_checkpoint_of(model_type: str, label: str, key: str, missing: str) -> str | None:
    """A selectbox over the checkpoints of one model type (bundled first); None, with ``missing`` shown, when none."""
    entries = [e for e in loaders.checkpoint_entries() if e.model_type == model_type]
    if not entries:
        st.info(missing, icon=":material/info:")
        return None
    labels = {str(e.path): e.label for e in entries}
    return st.selectbox(label, list(labels), key=key, format_func=labels.get)
