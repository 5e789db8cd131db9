"""``MODEL_CARD.md``: what a run's models are, what they were trained and scored on, how well they did, what they
were never shown, and how to use them. Markdown with YAML front matter, as Hugging Face model cards are written
(https://huggingface.co/docs/hub/model-cards); every string in the front matter is JSON-quoted, which YAML reads.
"""
from __future__ import annotations

import json

from data_utils.corpus_sentiment import SENTIMENT_CORPORA
from data_utils.identity import SYNTHETIC_WARNING

from ..metrics import METRIC_LABELS, METRICS, summarize
from ..report.text import escape_markdown as md
from ..results import RunResult
from .inputs import RunInputs


def model_card(run: RunResult, inputs: RunInputs) -> str:
    """The model card of ``run`` (in memory, with its seeds), whose run directory records ``inputs``."""
    exp, data, config = run.experiment, run.data, run.config
    evaluation = config.get("evaluation", {})
    synthetic = bool(data.get("synthetic"))
    name = data.get("name") or data.get("path", "?")
    scored = "the test split" if evaluation.get("kind", "test-split") == "test-split" else \
        f"every utterance once, by cross-validation ({evaluation.get('kind')})"
    front = {
        "library_name": "keras",
        "tags": ["sentiment-analysis" if _sentiment(data) else "emotion-recognition-in-conversation", "mser",
                 exp.base],
        "datasets": [name],
        "metrics": [m.replace("_", "-") for m in METRICS],
        "mser": {"experiment": exp.name, "architecture": exp.arch, "modalities": list(exp.modalities),
                 "metric": run.metric, "label_scheme": inputs.scheme.name, "classes": list(inputs.class_names),
                 "data_sha256": data.get("sha256", "unknown"), "synthetic": synthetic,
                 "seeds": [s.seed for s in run.seeds], "evaluation": evaluation.get("kind", "test-split")},
    }
    lines = ["---", *_yaml(front), "---", "", f"# {md(exp.name)}", ""]
    if synthetic:
        lines += [f"> **{SYNTHETIC_WARNING}.** These models were trained and scored on the built-in synthetic data: "
                  "they check the pipeline and are not for any real use.", ""]
    seeds = ", ".join(str(s.seed) for s in run.seeds)
    lines += [f"{md(exp.description or exp.arch)} (architecture {md(exp.arch)}), trained once per seed on the "
              f"{', '.join(map(md, exp.modalities))} features of **{md(name)}**; "
              f"seed{'s' if len(run.seeds) != 1 else ''} {seeds}.", ""]
    lines += _data(data, inputs) + _protocol(run, evaluation, scored) + _results(run, scored)
    lines += _configuration(config) + _limits(run, evaluation, inputs) + _how_to(inputs)
    return "\n".join(lines) + "\n"


def _yaml(value, indent: int = 0) -> list[str]:
    pad = " " * indent
    out = []
    for key, item in value.items():
        if isinstance(item, dict):
            out += [f"{pad}{key}:", *_yaml(item, indent + 2)]
        elif isinstance(item, list):
            out += [f"{pad}{key}:", *(f"{pad}- {json.dumps(v, ensure_ascii=False)}" for v in item)]
        else:
            out.append(f"{pad}{key}: {json.dumps(item, ensure_ascii=False)}")
    return out


def _data(data: dict, inputs: RunInputs) -> list[str]:
    digest = str(data.get("sha256", "unknown"))
    identity = f"the built-in {digest.split(':')[1]} preset" if digest.startswith("synthetic:") else \
        f"file {md(data.get('file', data.get('path', '?')))}, SHA-256 {md(digest)}"
    lines = ["## Data", "",
             f"- {identity}, {data.get('dialogues', '?')} dialogues",
             f"- label scheme {md(inputs.scheme.name)}: {', '.join(map(md, inputs.class_names))}",
             f"- inputs: {', '.join(f'{md(m)} ({w}-d)' for m, w in inputs.widths.items())}, standardised with the "
             "training dialogues' statistics (`standardization.npz`)"
             + (f"; the speaker as `{inputs.speaker_input}`" if inputs.speaker_input else "")]
    for modality, record in inputs.extractors.items():
        lines.append(f"- {md(modality)} features made by the saved extractor {md(record['path'])} (SHA-256 "
                     f"{md(record['sha256'])}): new text is embedded the same way")
    return lines + [""]


def _protocol(run: RunResult, evaluation: dict, scored: str) -> list[str]:
    train = run.config.get("train_config", {})
    valid = evaluation.get("validation_dialogues")
    held = (f"{len(valid)} validation dialogues held out from the training dialogues "
            f"({', '.join(map(md, valid[:8]))}{', …' if len(valid) > 8 else ''})") if valid is not None else \
        "in each fold, validation dialogues held out from that fold's training dialogues"
    return ["## Protocol", "",
            f"Every seed trained with early stopping on validation {train.get('monitor', 'macro_f1')} (patience "
            f"{train.get('patience', '?')}, at most {train.get('epochs', '?')} epochs; weights: "
            f"{train.get('selection', '?')}), {held}; scored once, after training, on {scored}, real "
            "utterances only (no padding class). Metrics are over every class of the scheme.", ""]


def _results(run: RunResult, scored: str) -> list[str]:
    summary = summarize([s.metrics for s in run.seeds])
    ensemble = run.ensemble() if all(s.probabilities is not None for s in run.seeds) else None
    lines = [f"## Results ({scored}, {int(run.mask.sum())} utterances)", "",
             "| metric | mean ± std over seeds | per seed | seed ensemble |", "|---|---|---|---|"]
    for m in METRICS:
        per_seed = ", ".join(f"{v:.4f}" for v in summary[m]["per_seed"])
        label = f"**{METRIC_LABELS[m]}** (what the run is judged by)" if m == run.metric else METRIC_LABELS[m]
        lines.append(f"| {label} | {summary[m]['mean']:.4f} ± {summary[m]['std']:.4f} | {per_seed} | "
                     f"{'–' if ensemble is None else format(ensemble[m], '.4f')} |")
    return lines + ["", "The seed ensemble averages the seeds' posteriors; `predictions.csv` holds its per-utterance "
                        "posteriors, `seed_<s>/predictions.csv` each seed's.", ""]


def _configuration(config: dict) -> list[str]:
    shown = {"hparams": config.get("hparams", {}), "train_config": config.get("train_config", {}),
             "split_seed": config.get("split_seed")}
    return ["## Training configuration", "", "```json", json.dumps(shown, indent=2, sort_keys=True), "```",
            "", "Everything that was run is in `config.json`.", ""]


def _sentiment(data: dict) -> bool:
    """Whether the run's data are a sentiment corpus (CMU-MOSI, CMU-MOSEI) rather than an emotion one."""
    return data.get("corpus") in SENTIMENT_CORPORA


def _limits(run: RunResult, evaluation: dict, inputs: RunInputs) -> list[str]:
    classes = ", ".join(map(md, inputs.class_names))
    lines = ["## Intended use and limits", "",
             f"- For research on utterance-level sentiment in videos ({md(run.data['corpus'])}): labelling every "
             f"utterance of a video with one of {classes}; the task is sentiment, not emotion." if _sentiment(run.data)
             else "- For research on emotion recognition in conversation: labelling every utterance of a dialogue "
                  f"with one of {classes}. Any other emotion is forced into one of these classes."]
    if evaluation.get("kind", "test-split") == "test-split":
        lines.append(f"- The scores above come from the {len(run.dialogue_ids)} test dialogues, which no model "
                     "trained or selected its epoch on. Dialogues from other corpora, speakers, languages, "
                     "recording conditions or feature extractors were never seen: expect lower scores there.")
    else:
        lines.append("- Each fold's model scored only the session it never saw; the models were never shown other "
                     "corpora, speakers, languages or feature extractors.")
    lines.append("- Features must be built as these were: by the saved extractor where one is recorded, with the "
                 "same widths; the training standardisation is applied by `mser predict` itself.")
    return lines + [""]


def _how_to(inputs: RunInputs) -> list[str]:
    lines = ["## How to predict", "", "```bash"]
    if set(inputs.modalities) == {"text"} and "text" in inputs.extractors:
        lines.append("mser predict RUN_DIR --transcripts new.csv --out predictions.csv   # dialogue_id, turn, text; "
                     "speaker optional")
    lines += ["mser predict RUN_DIR --data new.pkl --out predictions.csv   # features built the same way", "```",
              "", "```python", "from model_utils.trained import load_run", "",
              "table = load_run(\"RUN_DIR\").predict(\"new.pkl\")   # a DataFrame, one row per utterance", "```"]
    return lines
