"""Finds and loads libgpt.so and declares the C functions the package calls.

Where the library comes from, first match wins:
  1. GPT_LIBRARY: the path of a libgpt.so (for a build tree or a test);
  2. the copy inside this package, built by `pip install ./python` from the
     repository around it (python/setup.py runs make);
  3. the system's search path: an installed libgpt (make install), through
     ctypes.util.find_library and libgpt.so.<major>.
"""
import ctypes
import ctypes.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
MAJOR = 0  # the soname's major version this package speaks to


def _candidates():
    env = os.environ.get("GPT_LIBRARY")
    if env:
        yield env
        return
    for name in sorted(os.listdir(_HERE)):
        if name.startswith("libgpt.so"):
            yield os.path.join(_HERE, name)
    found = ctypes.util.find_library("gpt")
    if found:
        yield found
    yield "libgpt.so.%d" % MAJOR


def load():
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append("%s: %s" % (path, e))
    raise ImportError(
        "gpt: cannot load libgpt.so (set GPT_LIBRARY to its path, reinstall with "
        "`pip install ./python` from the repository, or `make install`): " + "; ".join(errors))


lib, path = load()

c_int, c_int64, c_uint64, c_size_t, c_float, c_double, c_char_p, c_void_p = (
    ctypes.c_int, ctypes.c_int64, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_float,
    ctypes.c_double, ctypes.c_char_p, ctypes.c_void_p)
P = ctypes.POINTER


# The structs gpt.h passes by pointer, field for field (tests/test_python.sh
# compares their layout with the C compiler's).
class Error(ctypes.Structure):
    _fields_ = [("code", c_int), ("msg", ctypes.c_char * 1024)]


class Config(ctypes.Structure):
    _fields_ = [("vocab_size", c_int), ("padded_vocab", c_int), ("max_seq_len", c_int),
                ("n_layer", c_int), ("n_head", c_int), ("n_embd", c_int),
                ("mlp_hidden", c_int), ("ln_eps", c_float)]


class Runtime(ctypes.Structure):
    _fields_ = [("device", c_char_p), ("precision", c_int), ("threads", c_int),
                ("profile", c_int), ("check", c_int), ("memory_limit", c_size_t),
                ("device_index", c_int)]


class TrainOpts(ctypes.Structure):
    _fields_ = [("batch_size", c_int), ("seq_len", c_int), ("grad_accum", c_int),
                ("max_steps", c_int), ("lr", c_float), ("min_lr", c_float),
                ("warmup_steps", c_int), ("weight_decay", c_float), ("beta1", c_float),
                ("beta2", c_float), ("eps", c_float), ("grad_clip", c_float),
                ("recompute", c_int), ("max_bad_steps", c_int)]


class StepInfo(ctypes.Structure):
    _fields_ = [("step", c_int), ("loss", c_float), ("grad_norm", c_float), ("lr", c_float),
                ("skipped", c_int), ("bad_streak", c_int)]


class SamplerOpts(ctypes.Structure):
    _fields_ = [("temperature", c_float), ("top_k", c_int), ("top_p", c_float),
                ("seed", c_uint64)]


IP = P(c_int)
_sigs = {
    "gpt_version": (c_char_p, []),
    "gpt_model_load": (c_int, [P(c_void_p), c_char_p, P(Runtime), P(Error)]),
    "gpt_model_create": (c_int, [P(c_void_p), P(Config), P(Runtime), c_uint64, P(Error)]),
    "gpt_model_free": (None, [c_void_p]),
    "gpt_model_config": (P(Config), [c_void_p]),
    "gpt_model_device": (c_char_p, [c_void_p]),
    "gpt_model_precision": (c_char_p, [c_void_p]),
    "gpt_model_step": (c_int, [c_void_p]),
    "gpt_model_tokenizer": (c_char_p, [c_void_p, P(c_void_p), P(c_size_t)]),
    "gpt_model_set_tokenizer": (c_int, [c_void_p, c_char_p, c_void_p, c_size_t, P(Error)]),
    "gpt_config_preset": (c_int, [c_char_p, P(Config), P(Error)]),
    "gpt_train_opts_default": (None, [P(TrainOpts)]),
    "gpt_train_init": (c_int, [c_void_p, P(TrainOpts), P(Error)]),
    "gpt_train_step": (c_int, [c_void_p, IP, P(StepInfo), P(Error)]),
    "gpt_eval_loss": (c_int, [c_void_p, IP, c_int, c_int, P(c_double), P(Error)]),
    "gpt_forward_logits": (c_int, [c_void_p, IP, c_int, c_int, P(c_float), P(Error)]),
    "gpt_checkpoint_save": (c_int, [c_void_p, c_char_p, c_int, c_void_p, P(Error)]),
    "gpt_kv_begin": (c_int, [c_void_p, c_int, c_int, P(Error)]),
    "gpt_kv_prefill": (c_int, [c_void_p, P(IP), IP, P(c_float), P(Error)]),
    "gpt_kv_decode": (c_int, [c_void_p, IP, P(c_float), P(Error)]),
    "gpt_sampler_opts_validate": (c_int, [P(SamplerOpts), P(Error)]),
    "gpt_sampler_create": (c_int, [P(c_void_p), P(SamplerOpts), c_int, P(Error)]),
    "gpt_sampler_free": (None, [c_void_p]),
    "gpt_sample": (c_int, [c_void_p, P(c_float)]),
    "gpt_tokenizer_open": (c_int, [P(c_void_p), c_char_p, P(Error)]),
    "gpt_tokenizer_load_memory": (c_int, [P(c_void_p), c_void_p, c_size_t, P(Error)]),
    "gpt_tokenizer_free": (None, [c_void_p]),
    "gpt_tokenizer_name": (c_char_p, [c_void_p]),
    "gpt_tokenizer_vocab_size": (c_int, [c_void_p]),
    "gpt_tokenizer_eot": (c_int, [c_void_p]),
    "gpt_tokenizer_encode": (c_int, [c_void_p, c_char_p, c_size_t, c_int, P(IP), P(c_size_t),
                                     P(Error)]),
    "gpt_tokenizer_decode": (c_int, [c_void_p, IP, c_size_t, P(c_void_p), P(c_size_t),
                                     P(Error)]),
    "gpt_tokenizer_token": (c_void_p, [c_void_p, c_int, P(c_size_t)]),
    "gpt_tokenizer_serialize": (c_int, [c_void_p, P(c_void_p), P(c_size_t), P(Error)]),
    "gpt_free": (None, [c_void_p]),
}
for _name, (_res, _args) in _sigs.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args
