"""Every session-state key of the app, in one place.

Session state holds only ids, paths and choices (never models or arrays):
cached objects live in ``oaviz.ui.loaders`` and are shared by all sessions.
Widget keys are listed here too, so no two pages can collide on a key.
"""

from __future__ import annotations

import streamlit as st

# --- shared selection (sidebar) ---------------------------------------------------------------
COHORT = "oaviz.cohort"                    # str: path of the selected cohort folder (widget key)
CHECKPOINT = "oaviz.checkpoint"            # str: path of the selected checkpoint folder, "" for none
_PENDING_COHORT = "oaviz.cohort.pending"   # set by pages, applied by the sidebar before it draws
_PENDING_CHECKPOINT = "oaviz.checkpoint.pending"
FLASH = "oaviz.flash"                      # (kind, text) shown once at the top of the next run
MODEL_SET = "oaviz.model_set"              # str: "" for the bundled demo set, else a zoo folder (widget key)
_PENDING_MODEL_SET = "oaviz.model_set.pending"

# --- Data page -------------------------------------------------------------------------------
DATA_TAB = "data.tab"
DATA_KL = "data.filter.kl"
DATA_SPLIT = "data.filter.split"
DATA_SIDE = "data.filter.side"
DATA_VISIT = "data.filter.visit"
DATA_LABEL = "data.filter.label"
DATA_PAGE = "data.grid.page"
DATA_TABLE = "data.table"                  # st.dataframe selection state
DATA_INSPECT = "data.inspect"              # global row id shown in the detail panel
DATA_OVERLAY = "data.detail.overlay"
DATA_VIEWER = "data.detail.viewer"         # key prefix of the detail's radiograph viewer (oaviz.ui.viewer)
DATA_GEN_NAME = "data.generate.name"
DATA_GEN_JOINT = "data.generate.joint"
DATA_GEN_SUBJECTS = "data.generate.subjects"
DATA_GEN_VISITS = "data.generate.visits"
DATA_GEN_SIZE = "data.generate.size"
DATA_GEN_SEED = "data.generate.seed"
DATA_JOBS = "data.jobs"                    # list[str]: run folders of jobs started from the Data page
DATA_IMPORT_FORMAT = "data.import.format"
DATA_IMPORT_SOURCE = "data.import.source"
DATA_IMPORT_NAME = "data.import.name"
DATA_IMPORT_PATH = "data.import.path"
DATA_IMPORT_LABELS = "data.import.labels"
DATA_IMPORT_COLUMNS = "data.import.columns"
DATA_IMPORT_FILES = "data.import.files"
DATA_IMPORT_LABEL_FILE = "data.import.label_file"
DATA_IMPORT_SIZE = "data.import.size"
DATA_IMPORT_KL = "data.import.labels_are_kl"
DATA_IMPORT_ON_ERROR = "data.import.on_error"

# --- Models & training page ------------------------------------------------------------------
MODELS_CARD = "models.card"                # str: checkpoint path whose card is open
MODELS_TABLE = "models.table"              # st.dataframe selection state of the checkpoint table
MODELS_USE = "models.use"                  # "Explore this checkpoint" button of the open card
MODELS_TRAIN_MODEL = "models.train.model"
MODELS_TRAIN_PRESET = "models.train.preset"
MODELS_TRAIN_EPOCHS = "models.train.epochs"
MODELS_TRAIN_COHORT = "models.train.cohort"
MODELS_TRAIN_DEVICE = "models.train.device"
MODELS_SHOW_ALL_JOBS = "models.jobs.show_all"
MODELS_ZOO_COHORT = "models.zoo.cohort"
MODELS_ZOO_PRESET = "models.zoo.preset"

# --- Compare models page ---------------------------------------------------------------------
COMPARE_A = "compare.a"                    # str: checkpoint path of the left model
COMPARE_B = "compare.b"
COMPARE_METHOD = "compare.method"
COMPARE_COLOR = "compare.color"
COMPARE_SELECTION = "compare.selection"    # LinkedSelection: the knees picked on either map
COMPARE_PROBES = "compare.probes"


def cancel_key(run_name: str) -> str:
    """Key of the Cancel button of one job."""
    return f"jobs.cancel.{run_name}"


def loss_chart_key(run_name: str) -> str:
    return f"jobs.loss.{run_name}"


def jobs_seen_key(panel: str) -> str:
    """Names of the jobs a job panel saw running on its last poll (to notice one ending)."""
    return f"jobs.active.{panel}"


def thumb_key(row: int) -> str:
    """Key of the Inspect button under one thumbnail of the Data page grid."""
    return f"data.thumb.{row}"


def use_output_key(run_name: str) -> str:
    """Key of the 'Use this …' button of a finished job."""
    return f"jobs.use.{run_name}"


# --- accessors -------------------------------------------------------------------------------
def selected_cohort() -> str | None:
    """Path of the cohort picked in the sidebar (None before the sidebar has run)."""
    return st.session_state.get(COHORT) or None


def selected_checkpoint() -> str | None:
    """Path of the checkpoint picked in the sidebar, None for none."""
    return st.session_state.get(CHECKPOINT) or None


def request_cohort(path: str) -> None:
    """Ask the sidebar to switch to ``path`` on the next run (a widget's value cannot change mid-run)."""
    st.session_state[_PENDING_COHORT] = str(path)


def selected_model_set() -> str:
    """The model set picked in the sidebar: "" for the bundled demo set, else a zoo folder."""
    return st.session_state.get(MODEL_SET) or ""


def request_model_set(key: str) -> None:
    """Ask the sidebar to switch to the model set ``key`` (and to each page's checkpoint from it) on the next run."""
    st.session_state[_PENDING_MODEL_SET] = str(key)
    st.session_state[_PENDING_CHECKPOINT] = ""


def take_pending_model_set() -> str | None:
    return st.session_state.pop(_PENDING_MODEL_SET, None)


def request_checkpoint(path: str | None) -> None:
    st.session_state[_PENDING_CHECKPOINT] = str(path) if path else ""


def take_pending_cohort() -> str | None:
    return st.session_state.pop(_PENDING_COHORT, None)


def take_pending_checkpoint() -> str | None:
    return st.session_state.pop(_PENDING_CHECKPOINT, None)


def flash(kind: str, text: str) -> None:
    """Show ``text`` (kind: success / info / warning / error) once, at the top of the next run."""
    st.session_state[FLASH] = (kind, text)


def take_flash() -> tuple[str, str] | None:
    return st.session_state.pop(FLASH, None)


OWN_JOBS = "jobs.own"                      # set[str]: run folders of every job this session started


def own_job(run_dir: str) -> None:
    """Record that this session started the job in ``run_dir`` (in the public demo a visitor sees and
    cancels only these)."""
    st.session_state.setdefault(OWN_JOBS, set()).add(str(run_dir))


def owns_job(run_dir: str) -> bool:
    return str(run_dir) in st.session_state.get(OWN_JOBS, set())


def remember_job(key: str, run_dir: str) -> None:
    """Add a run folder to a page's list of jobs (newest first, no duplicates); this session owns it."""
    own_job(run_dir)
    jobs = [j for j in st.session_state.get(key, []) if j != run_dir]
    st.session_state[key] = [run_dir, *jobs][:20]

# --- Latent pages ----------------------------------------------------------------------------
RECON_GRADES = "recon.grades"
RECON_ORDER = "recon.order"
RECON_PAGE = "recon.page"
RECON_VIEWER = "recon.viewer"              # key prefix of the page's viewer toolbar and its large view
RECON_LOOK = "recon.look"                  # image id of the knee shown large
RECON_OVERLAY = "recon.overlay"
INTERP_A = "interp.a"                      # global row id of the first knee
INTERP_B = "interp.b"
INTERP_PATH = "interp.path"
INTERP_STEPS = "interp.steps"
SEVERITY_ROW = "severity.row"
SEVERITY_METHOD = "severity.method"
SEVERITY_RANGE = "severity.range"
SAMPLE_N = "sample.n"
SAMPLE_TEMPERATURE = "sample.temperature"
SAMPLE_SEED = "sample.seed"
PROTO_PICK = "proto.pick"
PROTO_THRESHOLD = "proto.threshold"
PROTO_COMPARE = "proto.compare"
MAP_METHOD = "map.method"
MAP_COLOR = "map.color"
MAP_PARAMS = "map.params"
MAP_CHART = "map.chart"                    # plotly selection state
MAP_DETAIL = "map.detail"                  # global row id in the detail panel
MAP_DECODE_AT = "map.decode_at"            # (x, y) of the last empty-spot click
MAP_UPLOAD = "map.upload"
MAP_MAX_POINTS = "map.max_points"
PROBE_FRACTIONS = "probe.fractions"
PROBE_NOISE = "probe.noise"
PROBE_SEEDS = "probe.seeds"
PROBE_TARGET = "probe.target"
PROBE_NOISE_KIND = "probe.noise_kind"
PROBE_FEATURES = "probe.features"
PROBE_CLASSIFIER = "probe.classifier"
PROBE_METRIC = "probe.metric"
PROBE_JOBS = "probe.jobs"                  # list[str]: run folders of CNN-arm jobs started here
PROBE_HIER_RUN = "probe.hierarchy.run"
AUDIT_METHOD = "audit.method"
AUDIT_K = "audit.k"
AUDIT_PICK = "audit.pick"
AUDIT_CHANGES = "audit.changes"            # dict image_id -> accepted label
AUDIT_NEW_LABEL = "audit.new_label"
