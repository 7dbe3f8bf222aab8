"""gpt: Python bindings of the gpt library (libgpt.so, through ctypes).

    import gpt
    m = gpt.Model("runs/tiny/model.ckpt")          # or a Hugging Face GPT-2 folder
    ids = m.tokenizer.encode("ROMEO:")
    for text in m.generate_text("ROMEO:", max_new_tokens=50, temperature=0.8, seed=1):
        print(text, end="", flush=True)
    loss = m.eval_loss(numpy_tokens)                 # (B, T+1) ids
    m.train_init(batch_size=8, seq_len=64, steps=100, lr=1e-3)
    info = m.train_step(numpy_batch)                 # (B, T+1) or (accum, B, T+1)

Every failure of the library raises gpt.GptError with its message; the
library's code is in .code (2: invalid input, 3: I/O, 4: memory, 1: runtime).
Which libgpt.so is loaded: gpt._lib's docstring (GPT_LIBRARY overrides).
"""
import ctypes

from . import _lib
from ._lib import lib

__all__ = ["Model", "Tokenizer", "GptError", "version", "library_path"]

_lib_version = lib.gpt_version().decode()
__version__ = _lib_version
library_path = _lib.path


def version():
    """The version of the loaded libgpt ("0.1.0")."""
    return _lib_version


class GptError(RuntimeError):
    """A failure reported by the library: .code is its gpt_status."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def _check(rc, err):
    if rc:
        raise GptError(rc, err.msg.decode(errors="replace") or "failed")


def _ids_array(ids):
    ids = list(ids)
    return (ctypes.c_int * max(len(ids), 1))(*ids), len(ids)


class Tokenizer:
    """A byte-level BPE tokenizer: "gpt2" (built in), "bytes", or a file made
    by `gpt tokenizer train`."""

    def __init__(self, name="gpt2", _handle=None):
        self._h = ctypes.c_void_p()
        if _handle is not None:
            self._h = _handle
        else:
            err = _lib.Error()
            _check(lib.gpt_tokenizer_open(ctypes.byref(self._h), name.encode(), ctypes.byref(err)),
                   err)

    @classmethod
    def _from_memory(cls, blob, n):
        h, err = ctypes.c_void_p(), _lib.Error()
        _check(lib.gpt_tokenizer_load_memory(ctypes.byref(h), blob, n, ctypes.byref(err)), err)
        return cls(_handle=h)

    def __del__(self):
        if getattr(self, "_h", None):
            lib.gpt_tokenizer_free(self._h)
            self._h = None

    @property
    def name(self):
        return lib.gpt_tokenizer_name(self._h).decode(errors="replace")

    @property
    def vocab_size(self):
        return lib.gpt_tokenizer_vocab_size(self._h)

    @property
    def eot(self):
        """The id of <|endoftext|>, or -1 when the vocabulary has none."""
        return lib.gpt_tokenizer_eot(self._h)

    def encode(self, text, special=False):
        """Text (str or bytes) to a list of ids. With special, the text
        <|endoftext|> becomes the end-of-text id."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        ids, n, err = ctypes.POINTER(ctypes.c_int)(), ctypes.c_size_t(), _lib.Error()
        _check(lib.gpt_tokenizer_encode(self._h, data, len(data), int(special), ctypes.byref(ids),
                                        ctypes.byref(n), ctypes.byref(err)), err)
        try:
            return ids[:n.value]
        finally:
            lib.gpt_free(ids)

    def decode_bytes(self, ids):
        arr, n = _ids_array(ids)
        text, tl, err = ctypes.c_void_p(), ctypes.c_size_t(), _lib.Error()
        _check(lib.gpt_tokenizer_decode(self._h, arr, n, ctypes.byref(text), ctypes.byref(tl),
                                        ctypes.byref(err)), err)
        try:
            return ctypes.string_at(text, tl.value)
        finally:
            lib.gpt_free(text)

    def decode(self, ids):
        """Ids to text (bytes that are not UTF-8 become U+FFFD)."""
        return self.decode_bytes(ids).decode(errors="replace")

    def token_bytes(self, i):
        n = ctypes.c_size_t()
        p = lib.gpt_tokenizer_token(self._h, int(i), ctypes.byref(n))
        return ctypes.string_at(p, n.value) if p else b""


_PRECISIONS = {"auto": 0, "fp32": 1, "bf16": 2}


def _runtime(device, precision, threads):
    if precision not in _PRECISIONS:
        raise ValueError("precision must be auto, fp32 or bf16")
    rt = _lib.Runtime()
    rt.device = device.encode() if device else None
    rt.precision = _PRECISIONS[precision]
    rt.threads = int(threads or 0)
    return rt


def _int32(tokens, what):
    import numpy as np
    a = np.ascontiguousarray(tokens, dtype=np.int32)
    if a.size == 0:
        raise ValueError(what + " is empty")
    return a


class Model:
    """A GPT-2 style model on the CPU or a GPU: one of our checkpoints, a
    Hugging Face GPT-2 folder (model.safetensors + config.json), or freshly
    initialised weights (GPT-2 style, from seed) of a preset ("tiny",
    "gpt2", ...) with any field of config= overriding it (vocab_size,
    max_seq_len, n_layer, n_head, n_embd, mlp_hidden). tokenizer= names the
    tokenizer a new model goes with (saved in its checkpoint)."""

    def __init__(self, path=None, *, preset=None, config=None, seed=1, device="auto",
                 precision="auto", threads=0, tokenizer=None):
        self._h = ctypes.c_void_p()
        self._rt = _runtime(device, precision, threads)
        err = _lib.Error()
        if path is not None and (preset or config):
            raise ValueError("give a path, or a preset and/or a config")
        if path is None and not (preset or config):
            raise ValueError("give a path, or a preset and/or a config")
        if path is not None:
            rc = lib.gpt_model_load(ctypes.byref(self._h), str(path).encode(),
                                    ctypes.byref(self._rt), ctypes.byref(err))
        else:
            cfg = _lib.Config()
            if preset:
                _check(lib.gpt_config_preset(preset.encode(), ctypes.byref(cfg),
                                             ctypes.byref(err)), err)
                cfg.padded_vocab = 0
                if config and "n_embd" in config and "mlp_hidden" not in config:
                    cfg.mlp_hidden = 0  # follows the new width (4 C)
            for k, v in (config or {}).items():
                if k not in dict(_lib.Config._fields_):
                    raise ValueError("unknown config field %r" % k)
                setattr(cfg, k, v)
            rc = lib.gpt_model_create(ctypes.byref(self._h), ctypes.byref(cfg),
                                      ctypes.byref(self._rt), int(seed), ctypes.byref(err))
        _check(rc, err)
        self._tokenizer = Tokenizer(tokenizer) if tokenizer else None
        if tokenizer and path is None:
            # a trained vocabulary travels inside the checkpoint, as gpt train does it
            blob, n = ctypes.c_void_p(), ctypes.c_size_t()
            if tokenizer not in ("gpt2", "bytes"):
                _check(lib.gpt_tokenizer_serialize(self._tokenizer._h, ctypes.byref(blob),
                                                   ctypes.byref(n), ctypes.byref(err)), err)
            try:
                _check(lib.gpt_model_set_tokenizer(self._h, tokenizer.encode(), blob, n,
                                                   ctypes.byref(err)), err)
            finally:
                lib.gpt_free(blob)
        self._train_opts = None

    def __del__(self):
        if getattr(self, "_h", None):
            lib.gpt_model_free(self._h)
            self._h = None

    # ----------------------------------------------------------- describing
    @property
    def config(self):
        c = lib.gpt_model_config(self._h).contents
        return {f: getattr(c, f) for f, _ in _lib.Config._fields_}

    @property
    def device(self):
        return lib.gpt_model_device(self._h).decode()

    @property
    def precision(self):
        return lib.gpt_model_precision(self._h).decode()

    @property
    def step(self):
        """Optimizer steps taken."""
        return lib.gpt_model_step(self._h)

    @property
    def tokenizer(self):
        """The model's tokenizer: the one its checkpoint carries or names
        (gpt2 for a Hugging Face folder), unless one was given."""
        if self._tokenizer is None:
            blob, n = ctypes.c_void_p(), ctypes.c_size_t()
            name = lib.gpt_model_tokenizer(self._h, ctypes.byref(blob), ctypes.byref(n))
            if blob.value:
                self._tokenizer = Tokenizer._from_memory(blob, n.value)
            else:
                self._tokenizer = Tokenizer((name or b"gpt2").decode() or "gpt2")
        return self._tokenizer

    # ------------------------------------------------------------ inference
    def eval_loss(self, tokens):
        """Mean next-token cross-entropy (nats) of tokens (B, T+1) or (T+1,)."""
        a = _int32(tokens, "tokens")
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] < 2:
            raise ValueError("tokens must be (B, T+1) with T >= 1")
        loss, err = ctypes.c_double(), _lib.Error()
        _check(lib.gpt_eval_loss(self._h, a.ctypes.data_as(ctypes.POINTER(ctypes.c_int)),
                                 a.shape[0], a.shape[1] - 1, ctypes.byref(loss),
                                 ctypes.byref(err)), err)
        return loss.value

    def logits(self, tokens):
        """Logits (B, T, V) of tokens (B, T), as a numpy float32 array."""
        import numpy as np
        a = _int32(tokens, "tokens")
        if a.ndim == 1:
            a = a[None, :]
        out = np.empty((a.shape[0], a.shape[1], self.config["vocab_size"]), dtype=np.float32)
        err = _lib.Error()
        _check(lib.gpt_forward_logits(self._h, a.ctypes.data_as(ctypes.POINTER(ctypes.c_int)),
                                      a.shape[0], a.shape[1],
                                      out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                      ctypes.byref(err)), err)
        return out

    def generate(self, prompt, max_new_tokens=64, temperature=1.0, top_k=0, top_p=1.0, seed=1,
                 stop=(), eot=True):
        """Yields new token ids one at a time as they are drawn (KV cache).
        prompt: text or a list of ids. temperature 0 is greedy. The same
        seed draws what `gpt generate --seed` draws. Ends after
        max_new_tokens, after <|endoftext|> (yielded) when eot is true, or
        after the token that completes one of the stop strings."""
        ids = self.tokenizer.encode(prompt, special=True) if isinstance(prompt, (str, bytes)) \
            else [int(i) for i in prompt]
        if not ids:
            if self.tokenizer.eot < 0:
                raise ValueError("empty prompt and no <|endoftext|> to start from")
            ids = [self.tokenizer.eot]
        ctx = self.config["max_seq_len"]
        if len(ids) + max_new_tokens > ctx:
            raise ValueError("prompt (%d tokens) + %d new tokens is more than the model's context "
                             "of %d" % (len(ids), max_new_tokens, ctx))
        so = _lib.SamplerOpts(temperature, top_k, top_p, seed)
        V = self.config["vocab_size"]
        err, sampler = _lib.Error(), ctypes.c_void_p()
        _check(lib.gpt_sampler_create(ctypes.byref(sampler), ctypes.byref(so), V,
                                      ctypes.byref(err)), err)
        try:
            logits = (ctypes.c_float * V)()
            arr, n = _ids_array(ids)
            rows, lens = (ctypes.POINTER(ctypes.c_int) * 1)(arr), (ctypes.c_int * 1)(n)
            _check(lib.gpt_kv_begin(self._h, 1, len(ids) + max_new_tokens - 1, ctypes.byref(err)),
                   err)
            _check(lib.gpt_kv_prefill(self._h, rows, lens, logits, ctypes.byref(err)), err)
            end = self.tokenizer.eot if eot else -1
            text, stops = b"", [s.encode() if isinstance(s, str) else s for s in stop]
            tok = (ctypes.c_int * 1)()
            for k in range(max_new_tokens):
                t = lib.gpt_sample(sampler, logits)
                if t < 0:
                    raise GptError(1, "the model produced no finite logit")
                yield t
                if t == end or k + 1 == max_new_tokens:
                    return
                if stops:
                    old = len(text)
                    text += self.tokenizer.token_bytes(t)
                    if any(s in text[max(0, old - len(s) + 1):] for s in stops):
                        return
                tok[0] = t
                _check(lib.gpt_kv_decode(self._h, tok, logits, ctypes.byref(err)), err)
        finally:
            lib.gpt_sampler_free(sampler)

    def generate_text(self, prompt, **kw):
        """generate(), yielding text pieces (UTF-8 split across tokens is
        held back until it is whole); <|endoftext|> is not yielded."""
        eot, pending = self.tokenizer.eot, b""
        for t in self.generate(prompt, **kw):
            if t == eot:
                break
            pending += self.tokenizer.token_bytes(t)
            try:
                s = pending.decode()
            except UnicodeDecodeError as e:
                if e.reason != "unexpected end of data":
                    s = pending.decode(errors="replace")
                else:
                    continue
            pending = b""
            yield s
        if pending:
            yield pending.decode(errors="replace")

    # ------------------------------------------------------------- training
    def train_init(self, batch_size, seq_len, grad_accum=1, steps=1000, lr=6e-4, min_lr=None,
                   warmup=0, weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, grad_clip=1.0,
                   recompute=False):
        """Allocates gradients, AdamW state and activations for training
        (B = batch_size sequences of seq_len + 1 ids a micro-batch)."""
        o = _lib.TrainOpts()
        lib.gpt_train_opts_default(ctypes.byref(o))
        o.batch_size, o.seq_len, o.grad_accum, o.max_steps = batch_size, seq_len, grad_accum, steps
        o.lr, o.min_lr = lr, lr / 10 if min_lr is None else min_lr
        o.warmup_steps, o.weight_decay, o.beta1, o.beta2, o.eps = warmup, weight_decay, beta1, \
            beta2, eps
        o.grad_clip, o.recompute = grad_clip, int(recompute)
        err = _lib.Error()
        _check(lib.gpt_train_init(self._h, ctypes.byref(o), ctypes.byref(err)), err)
        self._train_opts = o

    def train_step(self, tokens):
        """One optimizer step on tokens (B, T+1), or (grad_accum, B, T+1):
        a dict with step, loss, grad_norm, lr and skipped."""
        o = self._train_opts
        if o is None:
            raise RuntimeError("call train_init first")
        a = _int32(tokens, "tokens")
        want = (o.grad_accum, o.batch_size, o.seq_len + 1)
        if a.shape != want and not (o.grad_accum == 1 and a.shape == want[1:]):
            raise ValueError("tokens must be %s, got %s" % (want, a.shape))
        info, err = _lib.StepInfo(), _lib.Error()
        _check(lib.gpt_train_step(self._h, a.ctypes.data_as(ctypes.POINTER(ctypes.c_int)),
                                  ctypes.byref(info), ctypes.byref(err)), err)
        return {"step": info.step, "loss": info.loss, "grad_norm": info.grad_norm, "lr": info.lr,
                "skipped": bool(info.skipped)}

    def save(self, path, with_optimizer=None):
        """Writes a checkpoint (atomically) that `gpt` loads: with the AdamW
        state when the model has been set up for training (with_optimizer
        None), or as asked."""
        if with_optimizer is None:
            with_optimizer = self._train_opts is not None
        err = _lib.Error()
        _check(lib.gpt_checkpoint_save(self._h, str(path).encode(), int(with_optimizer), None,
                                       ctypes.byref(err)), err)
