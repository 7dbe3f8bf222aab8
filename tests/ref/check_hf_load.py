"""Checks that transformers loads a folder written by gpt_hf_save and computes
the logits our engine computed. Run by tests/test_hf.c when the reference
Python is present; exit status 0 on success.

    python check_hf_load.py DIR OUR_LOGITS.bin TOKEN...

OUR_LOGITS.bin: float32 little-endian (T, V), T = number of tokens.
"""
import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging  # noqa: E402

logging.disable_progress_bar()


def main():
    d, logits_path, toks = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3:]]
    model = GPT2LMHeadModel.from_pretrained(d, attn_implementation="eager").eval()
    with torch.no_grad():
        theirs = model(torch.tensor([toks])).logits[0].float().numpy()
    ours = np.fromfile(logits_path, dtype="<f4").reshape(len(toks), -1)
    if ours.shape != theirs.shape:
        print("check_hf_load: shape %s, transformers %s" % (ours.shape, theirs.shape))
        return 1
    # Both fp32; see LOGIT_TOL in test_hf.c for why 1e-4 of the logit scale.
    err = float(np.max(np.abs(ours - theirs) / (np.abs(theirs) + 0.1)))
    tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    print("check_hf_load: max relative error %.3g, lm_head tied: %s" % (err, tied))
    return 0 if err < 1e-4 and tied else 1


if __name__ == "__main__":
    sys.exit(main())
